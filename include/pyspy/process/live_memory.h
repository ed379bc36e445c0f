// LiveProcessMemory: reads a running process's memory with process_vm_readv, falling
// back to pread on /proc/PID/mem when the system call is unavailable or refused.
#pragma once

#include <sys/types.h>

#include "pyspy/common/fd.h"
#include "pyspy/process/memory.h"

namespace pyspy {

class LiveProcessMemory : public ProcessMemory {
  public:
    explicit LiveProcessMemory(pid_t pid);

    Status read(std::uint64_t address, void* out, std::size_t size) const override;
    Status readMany(std::span<const ReadRequest> requests) const override;

    pid_t pid() const { return pid_; }

  private:
    Status readProcMem(std::uint64_t address, void* out, std::size_t size) const;

    pid_t pid_;
    mutable bool useProcMem_ = false;  // set once process_vm_readv proved unavailable
    mutable FD procMem_;
};

}  // namespace pyspy
