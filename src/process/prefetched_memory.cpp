#include "pyspy/process/prefetched_memory.h"

namespace pyspy {

Status PrefetchedMemory::prefetch(std::uint64_t address, std::size_t size) {
    PYSPY_TRY(auto bytes, readBytes(underlying_, address, size));
    regions_.push_back(Region{address, std::move(bytes)});
    return {};
}

void PrefetchedMemory::add(std::uint64_t address, std::vector<std::uint8_t> bytes) {
    regions_.push_back(Region{address, std::move(bytes)});
}

const PrefetchedMemory::Region* PrefetchedMemory::find(std::uint64_t address, std::size_t size) const {
    for (const auto& region : regions_) {
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
    std::vector<ReadRequest> misses;
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
