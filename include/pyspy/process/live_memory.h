// LiveProcessMemory: reads a running process's memory with process_vm_readv, falling
// back to pread on /proc/PID/mem when the system call is unavailable (ENOSYS) or
// refused (EPERM, e.g. by a container's seccomp filter) while the file still works.
#pragma once

#include <sys/types.h>

#include "pyspy/common/fd.h"
#include "pyspy/process/memory.h"

namespace pyspy {

class LiveProcessMemory : public ProcessMemory {
  public:
    enum class Backend {
        Auto,     // process_vm_readv, switching to /proc/PID/mem once it proves unusable
        ProcMem,  // /proc/PID/mem only (tests use it to cover the fallback)
    };

    explicit LiveProcessMemory(pid_t pid, Backend backend = Backend::Auto);

    Status read(std::uint64_t address, void* out, std::size_t size) const override;
    Status readMany(std::span<const ReadRequest> requests) const override;

    pid_t pid() const { return pid_; }
    bool usingProcMem() const { return useProcMem_; }

  private:
    Status readProcMem(std::uint64_t address, void* out, std::size_t size) const;
    ReadError failure(int err, std::uint64_t address, const char* what) const;

    pid_t pid_;
    mutable bool useProcMem_ = false;  // set once process_vm_readv proved unusable
    mutable FD procMem_;
};

}  // namespace pyspy
