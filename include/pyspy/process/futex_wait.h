// The futex a sleeping thread waits on, from /proc/PID/task/TID/syscall: how dump tells
// a thread waiting for the GIL (asleep on the GIL's condition variable or mutex) from
// one blocked elsewhere.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string_view>

#include "pyspy/common/result.h"

namespace pyspy {

// The futex word address of `tid` when it is blocked in futex(2), nothing when it is
// running or in another system call. Needs the same access as reading its memory.
Result<std::optional<std::uint64_t>> futexWaitAddress(pid_t pid, pid_t tid);

// Parses the text of a /proc/.../syscall file ("202 0x7f.. 0x80 ..." or "running").
std::optional<std::uint64_t> parseFutexWait(std::string_view text);

}  // namespace pyspy
