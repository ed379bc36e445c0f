// TEMPORARY (branch top-wait): stateName/parseStateName until main's wait_state.cpp is
// merged in; removed before that merge.
#include "pyspy/process/wait_state.h"

namespace pyspy {

namespace {
constexpr std::string_view kNames[kThreadStateCount] = {"running", "gil", "lock", "io", "sleep", "child", "other"};
}

std::string_view stateName(ThreadState state) {
    const auto i = static_cast<std::size_t>(state);
    return i < kThreadStateCount ? kNames[i] : "other";
}

std::optional<ThreadState> parseStateName(std::string_view name) {
    for (std::size_t i = 0; i < kThreadStateCount; ++i) {
        if (kNames[i] == name) return static_cast<ThreadState>(i);
    }
    return std::nullopt;
}

}  // namespace pyspy
