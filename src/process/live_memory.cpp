#include "pyspy/process/live_memory.h"

#include <fcntl.h>
#include <sys/uio.h>

#include <algorithm>
#include <cerrno>
#include <string>

#include "pyspy/process/process.h"

namespace pyspy {

namespace {

ReadError errnoToReadError(int err, std::uint64_t address) {
    switch (err) {
        case ESRCH:
            return ReadError{ReadErrorKind::ProcessGone, address, "process exited"};
        case EPERM:
        case EACCES:
            return ReadError{ReadErrorKind::Permission, address, "permission denied"};
        default:
            return ReadError{ReadErrorKind::Fault, address, "unreadable address"};
    }
}

}  // namespace

LiveProcessMemory::LiveProcessMemory(pid_t pid, Backend backend)
    : pid_(pid), useProcMem_(backend == Backend::ProcMem) {}

Status LiveProcessMemory::read(std::uint64_t address, void* out, std::size_t size) const {
    if (size == 0) return {};
    if (!useProcMem_) {
        iovec local{out, size};
        iovec remote{reinterpret_cast<void*>(address), size};  // NOLINT(performance-no-int-to-ptr)
        const ssize_t n = ::process_vm_readv(pid_, &local, 1, &remote, 1, 0);
        if (n == static_cast<ssize_t>(size)) return {};
        if (n >= 0) return Err{ReadError{ReadErrorKind::Fault, address, "short read"}};
        const int err = errno;
        if (err != ENOSYS && err != EPERM) return Err{errnoToReadError(err, address)};
        // Unavailable or refused: /proc/PID/mem goes through a different check and
        // may still work. Once it opens, it is the path for every later read.
        Status viaFile = readProcMem(address, out, size);
        if (procMem_) useProcMem_ = true;
        return viaFile;
    }
    return readProcMem(address, out, size);
}

Status LiveProcessMemory::readMany(std::span<const ReadRequest> requests) const {
    // process_vm_readv takes many remote ranges in one call (at most IOV_MAX).
    constexpr std::size_t kBatch = 512;
    for (std::size_t start = 0; start < requests.size(); start += kBatch) {
        if (useProcMem_) return ProcessMemory::readMany(requests.subspan(start));
        const std::size_t count = std::min(kBatch, requests.size() - start);
        iovec local[kBatch];
        iovec remote[kBatch];
        std::size_t locals = 0;
        std::size_t total = 0;
        for (std::size_t i = 0; i < count; ++i) {
            const auto& r = requests[start + i];
            // Destinations that follow each other in our memory (SpeculativeMemory lays
            // its ranges out back to back) are one local range: up to 8 ranges the kernel
            // copies the list on its stack, beyond that it allocates.
            auto* out = static_cast<std::uint8_t*>(r.out);
            if (locals > 0 &&
                static_cast<std::uint8_t*>(local[locals - 1].iov_base) + local[locals - 1].iov_len == out) {
                local[locals - 1].iov_len += r.size;
            } else {
                local[locals++] = iovec{out, r.size};
            }
            remote[i] = iovec{reinterpret_cast<void*>(r.address), r.size};  // NOLINT(performance-no-int-to-ptr)
            total += r.size;
        }
        const ssize_t n = ::process_vm_readv(pid_, local, locals, remote, count, 0);
        if (n == static_cast<ssize_t>(total)) continue;
        if (n < 0 && errno == ESRCH) return Err{errnoToReadError(ESRCH, requests[start].address)};
        // A partial transfer stops at the first failing range, and ENOSYS/EPERM need the
        // fallback decision of read(): go one by one to report the right range and error.
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
    ssize_t n = -1;
    do {
        n = ::pread(procMem_.get(), out, size, static_cast<off_t>(address));
    } while (n < 0 && errno == EINTR);
    if (n == static_cast<ssize_t>(size)) return {};
    const int err = n < 0 ? errno : EFAULT;
    // Once the target has exited its open mem file reads as empty rather than failing
    // with ESRCH; tell that apart from a bad address (only on this rare path).
    if (err != EPERM && err != EACCES && !processAlive(pid_)) return Err{errnoToReadError(ESRCH, address)};
    return Err{errnoToReadError(err, address)};
}

}  // namespace pyspy
