// What a thread is doing at one instant, from /proc/PID/task/TID/syscall: whether it is
// running (or runnable), and, when it sleeps in futex(2), on which futex word — how dump
// tells a thread waiting for the GIL (asleep on the GIL's condition variable or mutex)
// from one blocked elsewhere. ThreadStatReader (thread_stats.h) reads the file.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "pyspy/process/wait_state.h"

namespace pyspy {

struct ThreadActivity {
    bool running = false;                    // runnable or on a CPU (stat state R)
    std::optional<std::uint64_t> futexWord;  // the futex it sleeps on, if in futex(2)
    std::optional<SyscallCall> call;         // the system call it is blocked in, if any
    // A timed wait (futex with a timeout, poll, nanosleep) interrupted by a ptrace stop
    // (our own pause) resumes as restart_syscall(2), whose number names no call but whose
    // argument registers are still the original call's. `call` is then that call: the
    // one seen at this thread's previous read when the arguments are the same, else the
    // one the kernel's wait channel names (/proc/PID/task/TID/wchan: futex_*, poll_*,
    // do_select, ep_poll, *nanosleep, do_wait), else restart_syscall itself.
    bool restarted = false;
    // The user stack pointer and program counter the file shows (blocked in a call, or
    // stopped outside one); 0 when running.
    std::uint64_t sp = 0;
    std::uint64_t pc = 0;
};

// The system call a kernel wait channel (a function name from /proc/.../wchan) is a
// sleep of: SYS_futex, SYS_poll, SYS_select, SYS_epoll_wait, SYS_nanosleep, SYS_wait4; -1
// for any other.
std::int64_t syscallOfWaitChannel(std::string_view wchan);

// Parses the text of a /proc/.../syscall file: "running" (the kernel writes it exactly
// when the task's state is TASK_RUNNING), "<nr> <arg0> ... <sp> <pc>" while blocked in
// a system call, "-1 <sp> <pc>" when stopped outside one. Anything else: not running.
ThreadActivity parseSyscallActivity(std::string_view text);

}  // namespace pyspy
