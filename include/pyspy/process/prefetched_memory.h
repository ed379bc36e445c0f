// PrefetchedMemory: serves reads from regions copied in bulk beforehand (e.g. a
// thread's whole frame stack on 3.11+) and passes every other read through, so a
// walk costs one system call per region instead of one per frame.
#pragma once

#include <cstdint>
#include <vector>

#include "pyspy/process/memory.h"

namespace pyspy {

class PrefetchedMemory : public ProcessMemory {
  public:
    explicit PrefetchedMemory(const ProcessMemory& underlying) : underlying_(underlying) {}

    // Copies [address, address + size) now. Fails like a read would; nothing is kept then.
    Status prefetch(std::uint64_t address, std::size_t size);
    // Serves [address, address + bytes.size()) from bytes the caller has read already.
    void add(std::uint64_t address, std::vector<std::uint8_t> bytes);
    void clear() { regions_.clear(); }

    Status read(std::uint64_t address, void* out, std::size_t size) const override;
    Status readMany(std::span<const ReadRequest> requests) const override;

  private:
    struct Region {
        std::uint64_t address;
        std::vector<std::uint8_t> bytes;
    };
    const Region* find(std::uint64_t address, std::size_t size) const;

    const ProcessMemory& underlying_;
    std::vector<Region> regions_;
};

}  // namespace pyspy
