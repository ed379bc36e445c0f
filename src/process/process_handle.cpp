#include "pyspy/process/process_handle.h"

#include <poll.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "pyspy/process/process.h"

namespace pyspy {

ProcessHandle::ProcessHandle(pid_t pid)
    : pid_(pid), fd_(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0))) {}

bool ProcessHandle::exited() const {
    if (!fd_) return !processAlive(pid_);
    pollfd pfd{fd_.get(), POLLIN, 0};
    const int n = ::poll(&pfd, 1, 0);
    return n > 0 && (pfd.revents & (POLLIN | POLLHUP | POLLERR)) != 0;
}

}  // namespace pyspy
