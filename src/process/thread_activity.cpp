#include "pyspy/process/thread_activity.h"

#include <sys/syscall.h>

#include <charconv>

namespace pyspy {

ThreadActivity parseSyscallActivity(std::string_view text) {
    ThreadActivity activity;
    if (text.starts_with("running")) {
        activity.running = true;
        return activity;
    }
    // Only futex(2) is of interest: its first argument is the futex word.
    std::uint64_t number = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), number);
    if (ec != std::errc{} || number != SYS_futex) return activity;
    std::string_view rest = text.substr(static_cast<std::size_t>(end - text.data()));
    if (rest.size() < 4 || rest.substr(0, 3) != " 0x") return activity;
    rest.remove_prefix(3);
    std::uint64_t address = 0;
    auto [addressEnd, addressEc] = std::from_chars(rest.data(), rest.data() + rest.size(), address, 16);
    if (addressEc != std::errc{}) return activity;
    activity.futexWord = address;
    return activity;
}

}  // namespace pyspy
