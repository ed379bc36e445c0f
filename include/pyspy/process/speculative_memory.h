// SpeculativeMemory: makes a repeated walk cheap. A sampler reads nearly the same
// small ranges every tick (interpreter, thread states, frames, code headers), each
// costing a system call. Between begin() and end() this layer records the ranges read;
// the next begin() copies all of them in one batched read (process_vm_readv with many
// ranges) and serves every read it covers from that copy. A read it does not cover goes
// to the underlying memory (and is recorded for next time). Of a paused process the
// results are the same as without it; only the number of system calls changes. Of a
// running one, a read it serves shows the process as it was at begin() (merged ranges
// cover the gaps between recorded ones too), a read it does not cover as it is now: a
// pointer read live must not be followed through this copy, which may still hold what
// was at that address before (FrameWalker decodes new code objects live for that).
//
// Outside begin()/end() every read goes straight through. Not thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "pyspy/process/memory.h"

namespace pyspy {

class SpeculativeMemory : public ProcessMemory {
  public:
    explicit SpeculativeMemory(const ProcessMemory& underlying) : underlying_(underlying) {}

    void begin();  // one batched read of the previous snapshot's ranges; start recording
    void end();    // drop the copy; the recorded ranges wait for the next begin()
    void setRecording(bool recording) { recording_ = recording; }  // off for rare, large walks

    Status read(std::uint64_t address, void* out, std::size_t size) const override;
    Status readMany(std::span<const ReadRequest> requests) const override;

    std::size_t lastPrefetchRanges() const { return lastPrefetchRanges_; }

    static constexpr std::size_t kMaxRangeBytes = 64 * 1024;  // bigger reads are not replayed
    static constexpr std::size_t kMaxRanges = 512;
    static constexpr std::size_t kMaxTotalBytes = 1024 * 1024;
    static constexpr std::size_t kMaxGap = 4095;  // ranges closer than this are read as one

  private:
    struct Range {
        std::uint64_t address;
        std::size_t size;
    };
    struct Region {
        std::uint64_t address;
        std::size_t offset;  // into copy_
        std::size_t size;
    };
    const Region* find(std::uint64_t address, std::size_t size) const;
    void record(std::uint64_t address, std::size_t size) const;

    const ProcessMemory& underlying_;
    bool active_ = false;
    bool recording_ = true;
    std::unique_ptr<std::uint8_t[]> copy_;  // the batched read's bytes; regions_ says which are valid
    std::size_t copyCapacity_ = 0;
    std::vector<Region> regions_;  // sorted by address
    mutable std::vector<Range> recorded_;
    // Scratch space of begin() and readMany(), kept for its capacity.
    std::vector<Range> ranges_, merged_;
    std::vector<ReadRequest> requests_;
    mutable std::vector<ReadRequest> misses_;
    mutable std::size_t recordedBytes_ = 0;
    std::size_t lastPrefetchRanges_ = 0;
};

}  // namespace pyspy
