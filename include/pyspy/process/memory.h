// ProcessMemory: the one interface in front of every read of a target's memory.
// Implemented by LiveProcessMemory (process_vm_readv, /proc/PID/mem fallback), by
// BufferMemory (a fake backed by buffers, for unit tests) and later by a core file.
//
// Every byte read through it is untrusted: callers bound lengths, depths and loops.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "pyspy/common/result.h"

namespace pyspy {

// One range of a batched read.
struct ReadRequest {
    std::uint64_t address = 0;
    void* out = nullptr;
    std::size_t size = 0;
};

class ProcessMemory {
  public:
    virtual ~ProcessMemory() = default;

    // Reads exactly `size` bytes at `address` into `out`; a short read is an error.
    virtual Status read(std::uint64_t address, void* out, std::size_t size) const = 0;

    // Reads several ranges, all-or-nothing. Implementations batch them into as few
    // system calls as they can; the default reads them one by one.
    virtual Status readMany(std::span<const ReadRequest> requests) const;
};

// Typed read of a trivially copyable value.
template <typename T>
Result<T> readValue(const ProcessMemory& memory, std::uint64_t address) {
    static_assert(std::is_trivially_copyable_v<T>);
    T value{};
    PYSPY_CHECK(memory.read(address, &value, sizeof(T)));
    return value;
}

inline Result<std::uint64_t> readPointer(const ProcessMemory& memory, std::uint64_t address) {
    return readValue<std::uint64_t>(memory, address);
}

// Reads `size` bytes into a vector. Callers bound `size` before calling.
Result<std::vector<std::uint8_t>> readBytes(const ProcessMemory& memory, std::uint64_t address, std::size_t size);

// Reads a NUL-terminated C string of at most `maxLength` bytes (without the NUL).
// A string that reaches the bound is returned cut at the bound.
Result<std::string> readCString(const ProcessMemory& memory, std::uint64_t address, std::size_t maxLength);

// A non-owning view of bytes copied from `address` in the target: typed, bounds-checked
// field access. The hot paths (frames, code headers) read into reused buffers and look
// at them through a view, so a sample costs no allocation per frame.
class RemoteView {
  public:
    RemoteView() = default;
    RemoteView(std::uint64_t address, std::span<const std::uint8_t> bytes) : address_(address), bytes_(bytes) {}

    std::uint64_t address() const { return address_; }
    std::size_t size() const { return bytes_.size(); }
    std::span<const std::uint8_t> bytes() const { return bytes_; }

    // Field of type T at byte `offset`; an offset outside the block is an Invalid error.
    template <typename T>
    Result<T> field(std::int64_t offset) const {
        static_assert(std::is_trivially_copyable_v<T>);
        if (offset < 0 || static_cast<std::uint64_t>(offset) + sizeof(T) > bytes_.size()) {
            return Err{invalid("field offset outside the block", address_ + static_cast<std::uint64_t>(offset))};
        }
        T value;
        std::memcpy(&value, bytes_.data() + offset, sizeof(T));
        return value;
    }
    Result<std::uint64_t> pointer(std::int64_t offset) const { return field<std::uint64_t>(offset); }

  private:
    std::uint64_t address_ = 0;
    std::span<const std::uint8_t> bytes_;
};

// A fixed-size local copy of a remote struct, with typed field access by byte offset.
// Reads once, then every field comes from the copy (one system call per struct).
class RemoteBlock {
  public:
    RemoteBlock() = default;
    RemoteBlock(std::uint64_t address, std::vector<std::uint8_t> bytes) : address_(address), bytes_(std::move(bytes)) {}

    static Result<RemoteBlock> read(const ProcessMemory& memory, std::uint64_t address, std::size_t size);

    std::uint64_t address() const { return address_; }
    std::size_t size() const { return bytes_.size(); }
    const std::vector<std::uint8_t>& bytes() const { return bytes_; }
    RemoteView view() const { return RemoteView(address_, bytes_); }
    operator RemoteView() const { return view(); }  // NOLINT(google-explicit-constructor): a block is a view

    template <typename T>
    Result<T> field(std::int64_t offset) const {
        return view().field<T>(offset);
    }
    Result<std::uint64_t> pointer(std::int64_t offset) const { return field<std::uint64_t>(offset); }

  private:
    std::uint64_t address_ = 0;
    std::vector<std::uint8_t> bytes_;
};

// A fake ProcessMemory backed by local buffers placed at chosen addresses.
// Reads that are not wholly inside one segment fail with ReadErrorKind::Fault.
class BufferMemory : public ProcessMemory {
  public:
    void map(std::uint64_t address, std::vector<std::uint8_t> bytes);
    // Convenience: place a trivially copyable value.
    template <typename T>
    void put(std::uint64_t address, const T& value) {
        std::vector<std::uint8_t> bytes(sizeof(T));
        std::memcpy(bytes.data(), &value, sizeof(T));
        map(address, std::move(bytes));
    }

    Status read(std::uint64_t address, void* out, std::size_t size) const override;

    // How many read() calls were served: lets tests check that bulk paths stay bulk.
    std::size_t readCount() const { return reads_; }

  private:
    struct Segment {
        std::uint64_t address;
        std::vector<std::uint8_t> bytes;
    };
    std::vector<Segment> segments_;
    mutable std::size_t reads_ = 0;
};

}  // namespace pyspy
