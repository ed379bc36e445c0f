#include "pyspy/process/prefetched_memory.h"

#include <cstring>

namespace pyspy {

Result<std::span<const std::uint8_t>> PrefetchedMemory::prefetch(std::uint64_t address, std::size_t size) {
    if (used_ == regions_.size()) regions_.emplace_back();
    Region& region = regions_[used_];
    region.address = address;
    region.bytes.resize(size);
    PYSPY_CHECK(underlying_.read(address, region.bytes.data(), size));
    ++used_;
    return std::span<const std::uint8_t>(region.bytes);
}

void PrefetchedMemory::clear() {
    for (auto& region : regions_) {
        if (region.bytes.capacity() > kMaxKeptBytes) std::vector<std::uint8_t>().swap(region.bytes);
    }
    used_ = 0;
}

Status PrefetchedMemory::extend(std::size_t more) {
    if (used_ == 0 || more == 0) return {};
    Region& region = regions_[used_ - 1];
    const std::size_t had = region.bytes.size();
    region.bytes.resize(had + more);
    if (auto status = underlying_.read(region.address + had, region.bytes.data() + had, more); !status.ok()) {
        region.bytes.resize(had);
        return status;
    }
    return {};
}

const PrefetchedMemory::Region* PrefetchedMemory::find(std::uint64_t address, std::size_t size) const {
    for (std::size_t i = 0; i < used_; ++i) {
        const Region& region = regions_[i];
        const std::uint64_t end = region.address + region.bytes.size();
        if (address >= region.address && address <= end && size <= end - address) return &region;
    }
    return nullptr;
}

Status PrefetchedMemory::read(std::uint64_t address, void* out, std::size_t size) const {
    if (const Region* region = find(address, size)) {
        std::memcpy(out, region->bytes.data() + (address - region->address), size);
        return {};
    }
    return underlying_.read(address, out, size);
}

Status PrefetchedMemory::readMany(std::span<const ReadRequest> requests) const {
    std::vector<ReadRequest>& misses = misses_;
    misses.clear();
    for (const auto& request : requests) {
        if (const Region* region = find(request.address, request.size)) {
            std::memcpy(request.out, region->bytes.data() + (request.address - region->address), request.size);
        } else {
            misses.push_back(request);
        }
    }
    if (misses.empty()) return {};
    return underlying_.readMany(misses);
}

}  // namespace pyspy
