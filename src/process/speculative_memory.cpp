#include "pyspy/process/speculative_memory.h"

#include <algorithm>
#include <cstring>
#include <memory>

namespace pyspy {

void SpeculativeMemory::begin() {
    // Every buffer here is a member reused tick after tick: a steady sampler allocates nothing.
    regions_.clear();
    active_ = true;
    std::swap(ranges_, recorded_);
    recorded_.clear();
    recordedBytes_ = 0;
    lastPrefetchRanges_ = 0;
    if (ranges_.empty()) return;
    // Merge ranges that overlap, touch, or are less than kMaxGap apart: the kernel pins
    // each range's pages on its own (a VMA lookup and a page-table walk per range), which
    // costs more than copying a few bytes in between. A gap shorter than a page lies on
    // the pages of the two ranges it separates, which are read anyway: merging never
    // makes the batched read touch an unmapped page.
    static_assert(kMaxGap < 4096);
    std::sort(ranges_.begin(), ranges_.end(), [](const Range& a, const Range& b) { return a.address < b.address; });
    std::vector<Range>& merged = merged_;
    merged.clear();
    for (const auto& r : ranges_) {
        if (!merged.empty() && r.address <= merged.back().address + merged.back().size + kMaxGap) {
            const std::uint64_t end = std::max(merged.back().address + merged.back().size, r.address + r.size);
            merged.back().size = static_cast<std::size_t>(end - merged.back().address);
        } else {
            merged.push_back(r);
        }
    }
    std::size_t total = 0;
    for (const auto& r : merged) total += r.size;
    if (total > copyCapacity_) {
        copy_ = std::make_unique_for_overwrite<std::uint8_t[]>(total);  // not zeroed: every byte is read into
        copyCapacity_ = total;
    }
    std::vector<ReadRequest>& requests = requests_;
    requests.clear();
    std::size_t offset = 0;
    for (const auto& r : merged) {
        requests.push_back({r.address, copy_.get() + offset, r.size});
        regions_.push_back(Region{r.address, offset, r.size});
        offset += r.size;
    }
    if (!underlying_.readMany(requests).ok()) {
        // Some range is gone (a freed frame, an exited thread): read live this time and
        // record afresh.
        regions_.clear();
        return;
    }
    lastPrefetchRanges_ = merged.size();
}

void SpeculativeMemory::end() {
    active_ = false;
    regions_.clear();
}

const SpeculativeMemory::Region* SpeculativeMemory::find(std::uint64_t address, std::size_t size) const {
    auto it = std::upper_bound(regions_.begin(), regions_.end(), address,
                               [](std::uint64_t a, const Region& r) { return a < r.address; });
    if (it == regions_.begin()) return nullptr;
    --it;
    if (address - it->address + size <= it->size) return &*it;
    return nullptr;
}

void SpeculativeMemory::record(std::uint64_t address, std::size_t size) const {
    if (!active_ || !recording_ || size == 0 || size > kMaxRangeBytes) return;
    if (recorded_.size() >= kMaxRanges || recordedBytes_ + size > kMaxTotalBytes) return;
    recorded_.push_back(Range{address, size});
    recordedBytes_ += size;
}

Status SpeculativeMemory::read(std::uint64_t address, void* out, std::size_t size) const {
    if (!active_) return underlying_.read(address, out, size);
    record(address, size);
    if (const Region* region = find(address, size)) {
        std::memcpy(out, copy_.get() + region->offset + (address - region->address), size);
        return {};
    }
    return underlying_.read(address, out, size);
}

Status SpeculativeMemory::readMany(std::span<const ReadRequest> requests) const {
    if (!active_) return underlying_.readMany(requests);
    std::vector<ReadRequest>& misses = misses_;
    misses.clear();
    for (const auto& request : requests) {
        record(request.address, request.size);
        if (const Region* region = find(request.address, request.size)) {
            std::memcpy(request.out, copy_.get() + region->offset + (request.address - region->address), request.size);
        } else {
            misses.push_back(request);
        }
    }
    if (misses.empty()) return {};
    return underlying_.readMany(misses);
}

}  // namespace pyspy
