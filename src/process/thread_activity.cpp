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
    // "<nr> 0x<arg0> ... 0x<arg5> 0x<sp> 0x<pc>"; "-1 0x<sp> 0x<pc>" when not in a call.
    SyscallCall call;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), call.number);
    if (ec != std::errc{}) return activity;
    std::string_view rest = text.substr(static_cast<std::size_t>(end - text.data()));
    const auto hex = [&rest](std::uint64_t& value) {
        if (rest.size() < 4 || rest.substr(0, 3) != " 0x") return false;
        rest.remove_prefix(3);
        auto [valueEnd, valueEc] = std::from_chars(rest.data(), rest.data() + rest.size(), value, 16);
        if (valueEc != std::errc{}) return false;
        rest.remove_prefix(static_cast<std::size_t>(valueEnd - rest.data()));
        return true;
    };
    if (call.number < 0) {
        if (call.number == -1 && hex(activity.sp)) (void)hex(activity.pc);
        return activity;
    }
    for (auto& arg : call.args) {
        if (!hex(arg)) return activity;
    }
    if (hex(activity.sp)) (void)hex(activity.pc);
    activity.call = call;
    if (call.number == SYS_futex) activity.futexWord = call.args[0];
    return activity;
}

std::int64_t syscallOfWaitChannel(std::string_view wchan) {
    const auto has = [wchan](std::string_view part) { return wchan.find(part) != std::string_view::npos; };
    if (has("futex")) return SYS_futex;
    if (has("nanosleep")) return SYS_nanosleep;
    if (has("ep_poll")) return SYS_epoll_wait;
    if (has("poll")) return SYS_poll;
    if (has("select")) return SYS_select;
    if (wchan == "do_wait" || has("wait_consider")) return SYS_wait4;
    return -1;
}

}  // namespace pyspy
