// Facts about a live process from /proc: existence, command line, threads.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pyspy/common/result.h"

namespace pyspy {

struct ThreadStat {
    pid_t tid = 0;
    char state = '?';  // the state letter of /proc/PID/task/TID/stat: R, S, D, t, Z, ...
    std::string comm;  // the kernel's thread name (15 bytes at most)

    bool running() const { return state == 'R'; }
};

// Throws FatalError: NoSuchProcess (absent or a zombie), PermissionDenied (cannot
// read its memory: the message says to run as the same user or root, grant
// CAP_SYS_PTRACE, or check /proc/sys/kernel/yama/ptrace_scope).
void checkProcessAccessible(pid_t pid);

// "/proc/PID" + tail.
std::string procPath(pid_t pid, std::string_view tail);
// Reads at most `limit` bytes of a /proc file into `out`. On failure false, errno set.
bool readProcFile(const std::string& path, std::size_t limit, std::string& out);

bool processAlive(pid_t pid);  // exists and is not a zombie

// Arguments joined by spaces (escaped, bounded length); with none (a process in the
// middle of an exec, exiting, or a kernel thread) its name in brackets, as ps shows it.
std::string readCommandLine(pid_t pid);
std::string readExecutablePath(pid_t pid);  // the /proc/PID/exe link target, or ""

// A process's place in the process tree, from /proc/PID/stat. (pid, startTime) names
// one process for the life of the system: a reused pid has a later start time.
struct ProcessStatus {
    pid_t pid = 0;
    pid_t parent = 0;  // ppid: init or a subreaper once the parent has exited
    char state = '?';
    unsigned long long startTime = 0;  // clock ticks after boot (field 22)
    double cpuSeconds = 0;             // utime + stime (fields 14 and 15): CPU time used so far
};
std::optional<ProcessStatus> readProcessStatus(pid_t pid);  // nullopt: gone or unreadable

std::vector<pid_t> listThreads(pid_t pid);  // from /proc/PID/task, main thread first
Result<ThreadStat> readThreadStat(pid_t pid, pid_t tid);

}  // namespace pyspy
