// What a thread is doing at one instant, from /proc/PID/task/TID/syscall: whether it is
// running (or runnable), and, when it sleeps in futex(2), on which futex word — how dump
// tells a thread waiting for the GIL (asleep on the GIL's condition variable or mutex)
// from one blocked elsewhere. ThreadStatReader (thread_stats.h) reads the file.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace pyspy {

struct ThreadActivity {
    bool running = false;                    // runnable or on a CPU (stat state R)
    std::optional<std::uint64_t> futexWord;  // the futex it sleeps on, if in futex(2)
};

// Parses the text of a /proc/.../syscall file: "running" (the kernel writes it exactly
// when the task's state is TASK_RUNNING), "<nr> <arg0> ... <sp> <pc>" while blocked in
// a system call, "-1 <sp> <pc>" when stopped outside one. Anything else: not running.
ThreadActivity parseSyscallActivity(std::string_view text);

}  // namespace pyspy
