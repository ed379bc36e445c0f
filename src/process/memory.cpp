#include "pyspy/process/memory.h"

#include <algorithm>

namespace pyspy {

Status ProcessMemory::readMany(std::span<const ReadRequest> requests) const {
    for (const auto& request : requests) {
        PYSPY_CHECK(read(request.address, request.out, request.size));
    }
    return {};
}

Result<std::vector<std::uint8_t>> readBytes(const ProcessMemory& memory, std::uint64_t address, std::size_t size) {
    std::vector<std::uint8_t> bytes(size);
    if (size > 0) PYSPY_CHECK(memory.read(address, bytes.data(), size));
    return bytes;
}

Result<std::string> readCString(const ProcessMemory& memory, std::uint64_t address, std::size_t maxLength) {
    // Read in chunks that do not cross a page boundary, so a string that ends just
    // before an unmapped page is still read.
    constexpr std::uint64_t kPage = 4096;
    std::string out;
    std::uint64_t cursor = address;
    while (out.size() < maxLength) {
        std::size_t chunk = static_cast<std::size_t>(kPage - (cursor % kPage));
        chunk = std::min(chunk, maxLength - out.size());
        char buffer[kPage];
        PYSPY_CHECK(memory.read(cursor, buffer, chunk));
        const char* end = static_cast<const char*>(std::memchr(buffer, '\0', chunk));
        if (end != nullptr) {
            out.append(buffer, static_cast<std::size_t>(end - buffer));
            return out;
        }
        out.append(buffer, chunk);
        cursor += chunk;
    }
    return out;
}

Result<RemoteBlock> RemoteBlock::read(const ProcessMemory& memory, std::uint64_t address, std::size_t size) {
    PYSPY_TRY(auto bytes, readBytes(memory, address, size));
    return RemoteBlock(address, std::move(bytes));
}

void BufferMemory::map(std::uint64_t address, std::vector<std::uint8_t> bytes) {
    segments_.push_back(Segment{address, std::move(bytes)});
}

Status BufferMemory::read(std::uint64_t address, void* out, std::size_t size) const {
    ++reads_;
    for (const auto& segment : segments_) {
        const std::uint64_t begin = segment.address;
        const std::uint64_t end = begin + segment.bytes.size();
        if (address >= begin && address <= end && size <= end - address) {
            std::memcpy(out, segment.bytes.data() + (address - begin), size);
            return {};
        }
    }
    return Err{ReadError{ReadErrorKind::Fault, address, "not mapped in the fake memory"}};
}

}  // namespace pyspy
