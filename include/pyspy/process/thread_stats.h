// TaskDirectory: /proc/PID/task kept open, listed again with one lseek and a getdents64
// or two (opendir would cost an open, an fstat and a close each time). The open
// directory also pins the process it was opened for: once that process is gone the list
// is empty, even if its pid has been reused.
//
// ThreadStatReader: the OS state of a process's threads, read many times a second at
// a low cost. The task directory is listed again only every `relistInterval` (or when
// asked), and each thread's file stays open, so a read is one pread(2). The file is
// /proc/PID/task/TID/syscall, not stat: "running" there means exactly stat's state R
// (TASK_RUNNING), a sleeping thread shows the system call it sleeps in (the futex word
// of a GIL wait), and the kernel makes it in ~2 us against ~10 us for stat, which
// formats fifty fields (measured: 1.8 vs 9.6 us per pread on the 2-vCPU test VM).
// Where syscall cannot be read (it needs ptrace access), stat serves for the state.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <unordered_map>
#include <vector>

#include "pyspy/common/fd.h"
#include "pyspy/common/result.h"
#include "pyspy/process/process.h"
#include "pyspy/process/thread_activity.h"

namespace pyspy {

class TaskDirectory {
  public:
    explicit TaskDirectory(pid_t pid);
    pid_t pid() const { return pid_; }
    // The thread ids, main thread first, then ascending; empty when the process is gone.
    std::vector<pid_t> list() const;

  private:
    pid_t pid_;
    FD fd_;
};

class ThreadStatReader {
  public:
    explicit ThreadStatReader(pid_t pid, std::chrono::milliseconds relistInterval = std::chrono::milliseconds(250));

    // The thread ids, main thread first; listed again when stale or when `relist`.
    const std::vector<pid_t>& threads(bool relist = false);
    // The process's task directory (open since construction: pins the process).
    const TaskDirectory& tasks() const { return tasks_; }
    // The activity of one thread (need not be in threads()). ProcessGone when it exited.
    // `stoppedByUs`: the thread is in a ptrace stop of ours; it then counts as running if
    // it stopped outside a system call (it was running or runnable when interrupted).
    Result<ThreadActivity> activity(pid_t tid, bool stoppedByUs = false);

    // A thread blocked in a system call that a pause of ours interrupted is runnable when
    // let go, until it gets a CPU to enter the call again: on a loaded machine the next
    // read may find it "running" though it runs no code of its own. wokeFromCall: the
    // last read found it running and the one before blocked in a call. reentering, for
    // such a thread once stopped by us again: that call, if the thread is still on its
    // way back into it (its syscall file shows the same call, or shows it stopped outside
    // a call at the same stack pointer with the program counter on the system call
    // instruction, 2 bytes before where the call returns to); else nullopt.
    bool wokeFromCall(pid_t tid) const;
    std::optional<ThreadActivity> reentering(pid_t tid);

  private:
    pid_t pid_;
    TaskDirectory tasks_;
    std::chrono::milliseconds relistInterval_;
    std::chrono::steady_clock::time_point listedAt_{};
    bool listed_ = false;
    std::vector<pid_t> threads_;
    struct ThreadFile {
        FD fd;
        bool isStat = false;                  // the stat fallback, not the syscall file
        std::optional<SyscallCall> lastCall;  // the call seen at the previous read (see ThreadActivity::restarted)
        // The call of the last read that found the thread blocked, with where it was.
        std::optional<ThreadActivity> blocked;
        bool woke = false;  // the last read found it running, the one before blocked
    };
    std::unordered_map<pid_t, ThreadFile> files_;
};

}  // namespace pyspy
