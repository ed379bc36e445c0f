#include "pyspy/process/live_memory.h"

#include <fcntl.h>
#include <sys/uio.h>

#include <cerrno>
#include <string>

namespace pyspy {

namespace {

ReadError errnoToReadError(int err, std::uint64_t address) {
    switch (err) {
        case ESRCH: return ReadError{ReadErrorKind::ProcessGone, address, "process exited"};
        case EPERM:
        case EACCES: return ReadError{ReadErrorKind::Permission, address, "permission denied"};
        default: return ReadError{ReadErrorKind::Fault, address, "unreadable address"};
    }
}

}  // namespace

LiveProcessMemory::LiveProcessMemory(pid_t pid) : pid_(pid) {}

Status LiveProcessMemory::read(std::uint64_t address, void* out, std::size_t size) const {
    if (size == 0) return {};
    if (!useProcMem_) {
        iovec local{out, size};
        iovec remote{reinterpret_cast<void*>(address), size};  // NOLINT(performance-no-int-to-ptr)
        const ssize_t n = ::process_vm_readv(pid_, &local, 1, &remote, 1, 0);
        if (n == static_cast<ssize_t>(size)) return {};
        if (n >= 0) return Err{ReadError{ReadErrorKind::Fault, address, "short read"}};
        if (errno != ENOSYS) return Err{errnoToReadError(errno, address)};
        useProcMem_ = true;
    }
    return readProcMem(address, out, size);
}

Status LiveProcessMemory::readMany(std::span<const ReadRequest> requests) const {
    // process_vm_readv takes many remote ranges in one call (at most IOV_MAX).
    constexpr std::size_t kBatch = 512;
    if (useProcMem_) return ProcessMemory::readMany(requests);
    for (std::size_t start = 0; start < requests.size(); start += kBatch) {
        const std::size_t count = std::min(kBatch, requests.size() - start);
        iovec local[kBatch];
        iovec remote[kBatch];
        std::size_t total = 0;
        for (std::size_t i = 0; i < count; ++i) {
            const auto& r = requests[start + i];
            local[i] = iovec{r.out, r.size};
            remote[i] = iovec{reinterpret_cast<void*>(r.address), r.size};  // NOLINT(performance-no-int-to-ptr)
            total += r.size;
        }
        const ssize_t n = ::process_vm_readv(pid_, local, count, remote, count, 0);
        if (n == static_cast<ssize_t>(total)) continue;
        if (n < 0 && errno == ENOSYS) {
            useProcMem_ = true;
            return ProcessMemory::readMany(requests.subspan(start));
        }
        // A partial transfer stops at the first failing range; re-read one by one to report it.
        for (std::size_t i = 0; i < count; ++i) {
            const auto& r = requests[start + i];
            PYSPY_CHECK(read(r.address, r.out, r.size));
        }
    }
    return {};
}

Status LiveProcessMemory::readProcMem(std::uint64_t address, void* out, std::size_t size) const {
    if (!procMem_) {
        const std::string path = "/proc/" + std::to_string(pid_) + "/mem";
        procMem_.reset(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
        if (!procMem_) return Err{errnoToReadError(errno == ENOENT ? ESRCH : errno, address)};
    }
    const ssize_t n = ::pread(procMem_.get(), out, size, static_cast<off_t>(address));
    if (n == static_cast<ssize_t>(size)) return {};
    if (n >= 0) return Err{ReadError{ReadErrorKind::Fault, address, "short read"}};
    return Err{errnoToReadError(errno, address)};
}

}  // namespace pyspy
