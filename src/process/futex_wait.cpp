#include "pyspy/process/futex_wait.h"

#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <string>

#include "pyspy/common/fd.h"

namespace pyspy {

std::optional<std::uint64_t> parseFutexWait(std::string_view text) {
    // "<number> <arg0> <arg1> ... <sp> <pc>" while in a system call; "running" or "-1 ..."
    // otherwise. Only futex(2) is of interest: its first argument is the futex word.
    std::uint64_t number = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), number);
    if (ec != std::errc{} || number != SYS_futex) return std::nullopt;
    std::string_view rest = text.substr(static_cast<std::size_t>(end - text.data()));
    if (rest.size() < 4 || rest.substr(0, 3) != " 0x") return std::nullopt;
    rest.remove_prefix(3);
    std::uint64_t address = 0;
    auto [addressEnd, addressEc] = std::from_chars(rest.data(), rest.data() + rest.size(), address, 16);
    if (addressEc != std::errc{}) return std::nullopt;
    return address;
}

Result<std::optional<std::uint64_t>> futexWaitAddress(pid_t pid, pid_t tid) {
    const std::string path = "/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid) + "/syscall";
    FD fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) {
        const auto kind = errno == ENOENT ? ReadErrorKind::ProcessGone
                          : errno == EACCES || errno == EPERM ? ReadErrorKind::Permission
                                                               : ReadErrorKind::Fault;
        return Err{ReadError{kind, 0, "cannot open " + path}};
    }
    char buffer[256];  // 9 numbers in hex at most: ample
    const ssize_t n = ::read(fd.get(), buffer, sizeof buffer - 1);
    if (n <= 0) return Err{ReadError{ReadErrorKind::Fault, 0, "cannot read " + path}};
    return parseFutexWait(std::string_view(buffer, static_cast<std::size_t>(n)));
}

}  // namespace pyspy
