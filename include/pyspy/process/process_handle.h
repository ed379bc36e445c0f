// ProcessHandle: a pidfd (pidfd_open) held for the whole time a process is observed.
// A pid is only a number: once the process exits and is reaped, the kernel may give it
// to a new process, and reads by pid (process_vm_readv, /proc/PID/...) then see that
// other process. A pidfd refers to one process for its lifetime and becomes readable
// when it exits, so "did the target exit at any point before now?" is one poll(2):
// a caller that reads by pid and then finds exited() false knows every read it made
// was of the right process (a pid is reused only after its process exited).
#pragma once

#include <sys/types.h>

#include "pyspy/common/fd.h"

namespace pyspy {

class ProcessHandle {
  public:
    ProcessHandle() = default;
    // Opens a pidfd for `pid`. On kernels without pidfd_open (< 5.3) exited() falls
    // back to looking the pid up in /proc, which cannot see a reuse.
    explicit ProcessHandle(pid_t pid);

    pid_t pid() const { return pid_; }
    bool pinned() const { return fd_.valid(); }  // a pidfd is held
    // Whether the process has exited (a zombie counts), as of this call.
    bool exited() const;

  private:
    pid_t pid_ = 0;
    FD fd_;
};

}  // namespace pyspy
