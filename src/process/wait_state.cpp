#include "pyspy/process/wait_state.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <fmt/format.h>
#include <algorithm>
#include <charconv>
#include <climits>

#include "pyspy/process/memory.h"
#include "pyspy/process/process.h"

namespace pyspy {

namespace {

constexpr std::array<std::string_view, kThreadStateCount> kStateNames = {"running", "gil",   "lock", "io",
                                                                         "sleep",   "child", "other"};

// The system calls a Python thread may block in, and their class. The numbers come from
// the C library's <sys/syscall.h>, never typed here.
struct SyscallInfo {
    std::int64_t number;
    std::string_view name;
    ThreadState state;
    bool fdInArg0;  // the descriptor waited on is the first argument
};

#define PYSPY_SYSCALL(name, state, fd)            \
    SyscallInfo {                                 \
        SYS_##name, #name, ThreadState::state, fd \
    }
constexpr SyscallInfo kSyscalls[] = {
    PYSPY_SYSCALL(read, Io, true),
    PYSPY_SYSCALL(write, Io, true),
    PYSPY_SYSCALL(readv, Io, true),
    PYSPY_SYSCALL(writev, Io, true),
    PYSPY_SYSCALL(pread64, Io, true),
    PYSPY_SYSCALL(pwrite64, Io, true),
    PYSPY_SYSCALL(preadv, Io, true),
    PYSPY_SYSCALL(pwritev, Io, true),
    PYSPY_SYSCALL(recvfrom, Io, true),
    PYSPY_SYSCALL(recvmsg, Io, true),
    PYSPY_SYSCALL(recvmmsg, Io, true),
    PYSPY_SYSCALL(sendto, Io, true),
    PYSPY_SYSCALL(sendmsg, Io, true),
    PYSPY_SYSCALL(sendmmsg, Io, true),
    PYSPY_SYSCALL(accept, Io, true),
    PYSPY_SYSCALL(accept4, Io, true),
    PYSPY_SYSCALL(connect, Io, true),
    PYSPY_SYSCALL(sendfile, Io, true),
    PYSPY_SYSCALL(splice, Io, true),
    PYSPY_SYSCALL(fsync, Io, true),
    PYSPY_SYSCALL(fdatasync, Io, true),
    PYSPY_SYSCALL(epoll_wait, Io, true),
    PYSPY_SYSCALL(epoll_pwait, Io, true),
#ifdef SYS_epoll_pwait2
    PYSPY_SYSCALL(epoll_pwait2, Io, true),
#endif
    PYSPY_SYSCALL(poll, Io, false),
    PYSPY_SYSCALL(ppoll, Io, false),
    PYSPY_SYSCALL(select, Io, false),
    PYSPY_SYSCALL(pselect6, Io, false),
    PYSPY_SYSCALL(io_getevents, Io, false),
    PYSPY_SYSCALL(io_uring_enter, Io, true),
    PYSPY_SYSCALL(futex, Lock, false),
#ifdef SYS_futex_waitv
    PYSPY_SYSCALL(futex_waitv, Lock, false),
#endif
    PYSPY_SYSCALL(flock, Lock, true),
    PYSPY_SYSCALL(semop, Lock, false),
    PYSPY_SYSCALL(semtimedop, Lock, false),
    PYSPY_SYSCALL(nanosleep, Sleep, false),
    PYSPY_SYSCALL(clock_nanosleep, Sleep, false),
    PYSPY_SYSCALL(pause, Sleep, false),
    PYSPY_SYSCALL(wait4, Child, false),
    PYSPY_SYSCALL(waitid, Child, false),
    PYSPY_SYSCALL(openat, Other, false),
    PYSPY_SYSCALL(open, Other, false),
    PYSPY_SYSCALL(rt_sigtimedwait, Other, false),
    PYSPY_SYSCALL(rt_sigsuspend, Other, false),
    PYSPY_SYSCALL(ioctl, Other, false),
    PYSPY_SYSCALL(msgrcv, Other, false),
    PYSPY_SYSCALL(mmap, Other, false),
    PYSPY_SYSCALL(munmap, Other, false),
    PYSPY_SYSCALL(madvise, Other, false),
    PYSPY_SYSCALL(exit_group, Other, false),
    PYSPY_SYSCALL(restart_syscall, Other, false),
    PYSPY_SYSCALL(sched_yield, Running, false),
};
#undef PYSPY_SYSCALL

const SyscallInfo* findSyscall(std::int64_t number) {
    const auto* it = std::find_if(std::begin(kSyscalls), std::end(kSyscalls),
                                  [number](const SyscallInfo& info) { return info.number == number; });
    return it == std::end(kSyscalls) ? nullptr : it;
}

// A descriptor number taken from a system call argument, if it can be one.
std::optional<int> asFd(std::uint64_t value) {
    if (value > static_cast<std::uint64_t>(INT_MAX)) return std::nullopt;
    return static_cast<int>(value);
}

std::optional<std::uint64_t> linkInode(std::string_view link, std::string_view prefix) {
    // "socket:[12345]", "pipe:[12345]"
    if (!link.starts_with(prefix) || link.size() < prefix.size() + 4 || link.substr(prefix.size(), 2) != ":[" ||
        link.back() != ']') {
        return std::nullopt;
    }
    std::string_view digits = link.substr(prefix.size() + 2, link.size() - prefix.size() - 3);
    std::uint64_t inode = 0;
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), inode);
    if (ec != std::errc{} || end != digits.data() + digits.size()) return std::nullopt;
    return inode;
}

// A socket table of the target's network namespace, bounded (64 MB: ~400,000 sockets).
std::string readTable(const std::string& path) {
    std::string text;
    if (!readProcFile(path, std::size_t{64} << 20, text)) text.clear();
    return text;
}

FdKind kindOfLink(std::string_view link) {
    if (link.starts_with("socket:")) return FdKind::Socket;
    if (link.starts_with("pipe:")) return FdKind::Pipe;
    if (link == "anon_inode:[eventpoll]") return FdKind::Epoll;
    if (link.starts_with("/dev/pts/") || link.starts_with("/dev/tty") || link == "/dev/console") return FdKind::Tty;
    if (link.starts_with("/")) return FdKind::File;
    return FdKind::Other;
}

std::optional<std::uint32_t> hexField(std::string_view text) {
    std::uint32_t value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value, 16);
    if (ec != std::errc{} || end != text.data() + text.size()) return std::nullopt;
    return value;
}

// "0100007F:1538" (IPv4, the address in host byte order as printed by the kernel) or a
// 32-digit IPv6 address made of four such words: "127.0.0.1:5432", "[::1]:80".
std::optional<std::string> formatAddress(std::string_view field, bool ipv6) {
    const auto colon = field.find(':');
    if (colon == std::string_view::npos) return std::nullopt;
    const auto port = hexField(field.substr(colon + 1));
    const std::string_view address = field.substr(0, colon);
    if (!port || *port > 0xffff) return std::nullopt;
    if (!ipv6) {
        const auto word = address.size() == 8 ? hexField(address) : std::nullopt;
        if (!word) return std::nullopt;
        return fmt::format("{}.{}.{}.{}:{}", *word & 0xff, (*word >> 8) & 0xff, (*word >> 16) & 0xff, *word >> 24,
                           *port);
    }
    if (address.size() != 32) return std::nullopt;
    std::array<std::uint8_t, 16> bytes{};
    for (std::size_t i = 0; i < 4; ++i) {
        const auto word = hexField(address.substr(i * 8, 8));
        if (!word) return std::nullopt;
        for (std::size_t b = 0; b < 4; ++b) bytes[i * 4 + b] = static_cast<std::uint8_t>(*word >> (8 * b));
    }
    // An IPv4-mapped address (::ffff:a.b.c.d) reads as IPv4.
    const bool mapped = std::all_of(bytes.begin(), bytes.begin() + 10, [](std::uint8_t b) { return b == 0; }) &&
                        bytes[10] == 0xff && bytes[11] == 0xff;
    if (mapped) return fmt::format("{}.{}.{}.{}:{}", bytes[12], bytes[13], bytes[14], bytes[15], *port);
    std::array<unsigned, 8> groups{};
    for (std::size_t i = 0; i < 8; ++i) groups[i] = static_cast<unsigned>((bytes[i * 2] << 8) | bytes[i * 2 + 1]);
    // The longest run of two or more zero groups is written "::" (RFC 5952).
    std::size_t bestAt = 8;
    std::size_t bestLength = 1;
    for (std::size_t i = 0; i < 8;) {
        std::size_t j = i;
        while (j < 8 && groups[j] == 0) ++j;
        if (j - i > bestLength) {
            bestAt = i;
            bestLength = j - i;
        }
        i = j == i ? i + 1 : j;
    }
    std::string text = "[";
    for (std::size_t i = 0; i < 8; ++i) {
        if (i == bestAt) {
            text += "::";
            i += bestLength - 1;
            continue;
        }
        if (i > 0 && text.back() != ':') text += ':';
        text += fmt::format("{:x}", groups[i]);
    }
    return fmt::format("{}]:{}", text, *port);
}

}  // namespace

std::string_view stateName(ThreadState state) {
    const auto index = static_cast<std::size_t>(state);
    return index < kStateNames.size() ? kStateNames[index] : "other";
}

std::optional<ThreadState> parseStateName(std::string_view name) {
    for (std::size_t i = 0; i < kStateNames.size(); ++i) {
        if (kStateNames[i] == name) return static_cast<ThreadState>(i);
    }
    return std::nullopt;
}

std::string syscallName(std::int64_t number) {
    if (const SyscallInfo* info = findSyscall(number)) return std::string(info->name);
    return fmt::format("syscall {}", number);
}

std::string_view fdKindName(FdKind kind) {
    switch (kind) {
        case FdKind::Socket:
            return "socket";
        case FdKind::Pipe:
            return "pipe";
        case FdKind::File:
            return "file";
        case FdKind::Tty:
            return "tty";
        case FdKind::Epoll:
            return "epoll";
        case FdKind::Other:
            return "other";
        case FdKind::Unknown:
            break;
    }
    return "";
}

SyscallWait classifySyscall(const SyscallCall& call) {
    const SyscallInfo* info = findSyscall(call.number);
    if (info == nullptr) return {};
    SyscallWait wait{info->state, std::nullopt};
    if (info->fdInArg0) wait.fd = asFd(call.args[0]);
    return wait;
}

SyscallWait waitFd(const SyscallCall& call, const ProcessMemory* memory) {
    SyscallWait wait = classifySyscall(call);
    if (call.number == SYS_poll || call.number == SYS_ppoll) {
        // poll(struct pollfd* fds, nfds_t nfds, ...): {int fd; short events; short revents;}
        if (call.args[1] == 0 || call.args[0] == 0) return {ThreadState::Sleep, std::nullopt};
        // The first entry with a descriptor (a negative fd is ignored by poll).
        const std::size_t count = std::min<std::uint64_t>(call.args[1], 16);
        std::array<std::int32_t, 32> entries{};
        if (memory != nullptr && memory->read(call.args[0], entries.data(), count * 8).ok()) {
            for (std::size_t i = 0; i < count; ++i) {
                if (entries[i * 2] >= 0) {
                    wait.fd = entries[i * 2];
                    break;
                }
            }
        }
    } else if (call.number == SYS_select || call.number == SYS_pselect6) {
        // select(int nfds, fd_set* read, fd_set* write, fd_set* except, ...)
        const std::uint64_t nfds = call.args[0];
        if (nfds == 0 || (call.args[1] == 0 && call.args[2] == 0 && call.args[3] == 0)) {
            return {ThreadState::Sleep, std::nullopt};
        }
        const std::size_t bytes = static_cast<std::size_t>((std::min<std::uint64_t>(nfds, 1024) + 63) / 64 * 8);
        std::array<std::uint64_t, 16> set{};
        for (int which = 1; which <= 3 && !wait.fd; ++which) {
            if (call.args[static_cast<std::size_t>(which)] == 0) continue;
            if (memory == nullptr ||
                !memory->read(call.args[static_cast<std::size_t>(which)], set.data(), bytes).ok()) {
                continue;
            }
            for (std::size_t word = 0; word < bytes / 8 && !wait.fd; ++word) {
                if (set[word] != 0)
                    wait.fd = static_cast<int>(word * 64 + static_cast<std::size_t>(__builtin_ctzll(set[word])));
            }
        }
        if (wait.fd && static_cast<std::uint64_t>(*wait.fd) >= nfds) wait.fd.reset();
    }
    return wait;
}

std::optional<std::string> socketPeerFromTable(std::string_view table, std::uint64_t inode, bool ipv6) {
    // "  sl  local_address rem_address   st tx_queue:rx_queue tr:tm->when retrnsmt   uid  timeout inode"
    std::size_t lineStart = table.find('\n');  // skip the header
    std::size_t lines = 0;
    while (lineStart != std::string_view::npos && lineStart + 1 < table.size() && ++lines < 1000000) {
        const std::size_t lineEnd = table.find('\n', lineStart + 1);
        std::string_view line = table.substr(
            lineStart + 1, lineEnd == std::string_view::npos ? std::string_view::npos : lineEnd - lineStart - 1);
        lineStart = lineEnd;
        std::array<std::string_view, 10> fields{};
        std::size_t count = 0;
        std::size_t pos = 0;
        while (count < fields.size()) {
            pos = line.find_first_not_of(' ', pos);
            if (pos == std::string_view::npos) break;
            const std::size_t end = line.find(' ', pos);
            fields[count++] = line.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos);
            if (end == std::string_view::npos) break;
            pos = end;
        }
        if (count < 10) continue;
        std::uint64_t value = 0;
        auto [end, ec] = std::from_chars(fields[9].data(), fields[9].data() + fields[9].size(), value);
        if (ec != std::errc{} || value != inode) continue;
        // A listening socket (TCP state 0A) or one with no peer: its own address.
        const bool noPeer = fields[2].find_first_not_of("0:") == std::string_view::npos;
        if (fields[3] == "0A" || noPeer) {
            const auto local = formatAddress(fields[1], ipv6);
            if (!local) return std::nullopt;
            return (fields[3] == "0A" ? "listening " : "local ") + *local;
        }
        return formatAddress(fields[2], ipv6);
    }
    return std::nullopt;
}

FdInfo FdDescriber::describe(int fd, bool peer) {
    if (fd < 0) return {};
    char link[512];
    const std::string path = procPath(pid_, "/fd/" + std::to_string(fd));
    const ssize_t n = ::readlink(path.c_str(), link, sizeof link - 1);
    if (n <= 0) {
        cache_.erase(fd);
        return {};
    }
    const std::string_view text(link, static_cast<std::size_t>(n));
    if (cache_.size() > 4096) cache_.clear();  // bounded: a process with churning descriptors
    Entry& entry = cache_[fd];
    if (entry.link != text) {
        entry = Entry{std::string(text), FdInfo{kindOfLink(text), ""}, false};
        if (entry.info.kind == FdKind::File || entry.info.kind == FdKind::Tty) entry.info.detail = entry.link;
    }
    if (peer && !entry.peerLooked && entry.info.kind == FdKind::Socket) {
        entry.peerLooked = true;
        if (const auto inode = linkInode(entry.link, "socket")) {
            for (const auto& [table, ipv6] :
                 {std::pair{"tcp", false}, std::pair{"tcp6", true}, std::pair{"udp", false}, std::pair{"udp6", true}}) {
                const std::string text = readTable(procPath(pid_, std::string("/net/") + table));
                if (auto address = socketPeerFromTable(text, *inode, ipv6)) {
                    entry.info.detail = *address;
                    break;
                }
            }
            if (entry.info.detail.empty()) {
                const std::string unix = readTable(procPath(pid_, "/net/unix"));
                if (unix.find(" " + std::to_string(*inode) + " ") != std::string::npos ||
                    unix.find(" " + std::to_string(*inode) + "\n") != std::string::npos) {
                    entry.info.detail = "unix";
                }
            }
        }
    }
    FdInfo info = entry.info;
    if (!peer && info.kind == FdKind::Socket) info.detail.clear();
    return info;
}

}  // namespace pyspy
