// PrefetchedMemory: serves reads from regions copied in bulk beforehand (e.g. a
// thread's whole frame stack on 3.11+) and passes every other read through, so a
// walk costs one system call per region instead of one per frame.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "pyspy/process/memory.h"

namespace pyspy {

class PrefetchedMemory : public ProcessMemory {
  public:
    explicit PrefetchedMemory(const ProcessMemory& underlying) : underlying_(underlying) {}

    // Copies [address, address + size) now and returns the copy (valid until the next
    // prefetch, extend or clear). Fails like a read would; nothing is kept then.
    Result<std::span<const std::uint8_t>> prefetch(std::uint64_t address, std::size_t size);
    // Grows the newest region by the `more` bytes that follow it. Fails like a read
    // would; the region is kept as it was then.
    Status extend(std::size_t more);
    // Forgets every region. Buffers of up to kMaxKeptBytes are kept for later prefetches
    // (a walk every tick, the sampler, then allocates nothing: CPython's stack chunks are
    // 16 KiB); larger ones, from an odd target or a corrupt length, are freed.
    void clear();
    static constexpr std::size_t kMaxKeptBytes = std::size_t{64} * 1024;

    Status read(std::uint64_t address, void* out, std::size_t size) const override;
    // Not reentrant (its scratch list of misses is a member), like SpeculativeMemory.
    Status readMany(std::span<const ReadRequest> requests) const override;

  private:
    struct Region {
        std::uint64_t address;
        std::vector<std::uint8_t> bytes;
    };
    const Region* find(std::uint64_t address, std::size_t size) const;

    const ProcessMemory& underlying_;
    std::vector<Region> regions_;  // the first used_ are valid
    std::size_t used_ = 0;
    mutable std::vector<ReadRequest> misses_;  // readMany's scratch, kept for its capacity
};

}  // namespace pyspy
