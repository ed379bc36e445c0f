// ThreadPause: stops every thread of a process with ptrace (PTRACE_SEIZE +
// PTRACE_INTERRUPT) for a consistent snapshot, and resumes them (PTRACE_DETACH) in
// its destructor on every path: return, exception, or Ctrl-C handled by the caller.
// If pyspy-cpp is killed, the kernel detaches and the target runs on; a Ctrl-Z waits
// for the pause to end (pause_gate.h).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <vector>

#include "pyspy/common/result.h"
#include "pyspy/process/thread_stats.h"

namespace pyspy {

class ThreadPause {
  public:
    // Pauses all threads of `pid`, including threads created while pausing.
    // Fails with ProcessGone / Permission errors; never leaves a thread stopped.
    static Result<ThreadPause> pauseAll(pid_t pid, std::chrono::milliseconds timeout = std::chrono::milliseconds(2000));
    // The same for the process of `tasks`, kept open by a caller that pauses it often.
    // `recent`: a recent listing of its threads (may be stale: a thread in it that has
    // exited is skipped, and the directory is listed again to find new ones); empty
    // means list first. Saves one directory listing per pause.
    static Result<ThreadPause> pauseAll(const TaskDirectory& tasks, std::vector<pid_t> recent,
                                        std::chrono::milliseconds timeout = std::chrono::milliseconds(2000));

    ThreadPause(ThreadPause&& other) noexcept;
    ThreadPause& operator=(ThreadPause&& other) noexcept;
    ThreadPause(const ThreadPause&) = delete;
    ThreadPause& operator=(const ThreadPause&) = delete;
    ~ThreadPause();

    const std::vector<pid_t>& threads() const { return threads_; }
    // When the first thread was seen stopped. Before that the target ran (or waited for
    // a CPU, on a loaded machine: the interrupt takes effect only once it is scheduled).
    // The stop is seen when the tracer wakes from its wait, so the true stop is earlier
    // by that wake-up (microseconds): a pause timed from here is a slight underestimate.
    std::chrono::steady_clock::time_point stoppedAt() const { return stoppedAt_; }
    // Detaches now (idempotent). Returns the time just before the last thread was let
    // go: waking a target thread may preempt the caller inside that very system call
    // (the scheduler can run the woken thread on the waker's CPU for a whole time
    // slice, ~3 ms measured), so a clock read after it returns says nothing about how
    // long the target was stopped.
    std::chrono::steady_clock::time_point resume();

  private:
    ThreadPause(pid_t pid, std::vector<pid_t> threads, std::chrono::steady_clock::time_point stoppedAt)
        : pid_(pid), threads_(std::move(threads)), stoppedAt_(stoppedAt), inGate_(true) {}
    pid_t pid_ = 0;
    std::vector<pid_t> threads_;
    std::chrono::steady_clock::time_point stoppedAt_{};
    bool inGate_ = false;  // counted in pause_gate until resume()
};

}  // namespace pyspy
