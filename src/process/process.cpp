#include "pyspy/process/process.h"
#include "pyspy/process/thread_stats.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string_view>

#include "pyspy/common/error.h"
#include "pyspy/common/fd.h"
#include "pyspy/process/maps.h"

namespace pyspy {

namespace detail {

// Shared with maps.cpp so every permission failure gives the same advice.
[[noreturn]] void throwPermissionDenied(pid_t pid) {
    throw FatalError(ErrorKind::PermissionDenied,
                     "permission denied reading process " + std::to_string(pid) +
                         ": run pyspy-cpp as the same user as the target or as root, grant CAP_SYS_PTRACE, "
                         "or check /proc/sys/kernel/yama/ptrace_scope");
}

}  // namespace detail

namespace {

constexpr std::size_t kCommandLineLimit = 4096;
constexpr std::size_t kCommNameLimit = 64;  // the kernel's is 16 (TASK_COMM_LEN); a bound all the same

// Parses a stat line "TID (COMM) STATE ...". The name may hold spaces and parentheses,
// but the kernel writes nothing after it that contains ')', so the last ')' ends it.
std::optional<ThreadStat> parseStat(std::string_view text) {
    const std::size_t open = text.find(" (");
    const std::size_t close = text.rfind(')');
    if (open == std::string_view::npos || close == std::string_view::npos || close < open + 2) return std::nullopt;
    ThreadStat stat;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + open, stat.tid);
    if (ec != std::errc() || end != text.data() + open) return std::nullopt;
    if (close + 2 >= text.size() || text[close + 1] != ' ') return std::nullopt;
    stat.comm = std::string(text.substr(open + 2, close - open - 2));
    stat.state = text[close + 2];
    return stat;
}

// The state letter of a whole process, or 0 when /proc/PID does not exist.
char processState(pid_t pid) {
    std::string text;
    if (!readProcFile(procPath(pid, "/stat"), 1024, text)) return 0;
    const auto stat = parseStat(text);
    return stat ? stat->state : 0;
}

bool isDead(char state) {
    return state == 'Z' || state == 'X' || state == 'x';
}

// Tries to read one byte of a readable mapping; returns 0 on success, else the errno
// that decides the outcome (EFAULT when no mapping could be read for another reason).
int probeOneByte(pid_t pid, const std::vector<MemoryMapping>& mappings) {
    constexpr int kMaxAttempts = 8;  // [vvar] and guard pages refuse reads; try a few
    int attempts = 0;
    int lastError = EFAULT;
    for (const auto& mapping : mappings) {
        if (!mapping.readable || mapping.size() == 0) continue;
        if (++attempts > kMaxAttempts) break;
        char byte = 0;
        iovec local{&byte, 1};
        iovec remote{reinterpret_cast<void*>(mapping.start), 1};  // NOLINT(performance-no-int-to-ptr)
        if (::process_vm_readv(pid, &local, 1, &remote, 1, 0) == 1) return 0;
        lastError = errno;
        if (lastError == ENOSYS || lastError == EPERM) {
            // Unavailable (old kernel) or refused (e.g. a seccomp filter in a container):
            // LiveProcessMemory would fall back to /proc/PID/mem, so decide by that.
            FD mem(::open(procPath(pid, "/mem").c_str(), O_RDONLY | O_CLOEXEC));
            if (!mem) return errno == ENOENT ? ESRCH : errno;
            if (::pread(mem.get(), &byte, 1, static_cast<off_t>(mapping.start)) == 1) return 0;
            lastError = errno;
        }
        if (lastError == EACCES || lastError == EPERM || lastError == ESRCH) return lastError;
    }
    return lastError;
}

// Escapes a byte that is not printable ASCII as \xNN, keeping valid UTF-8 sequences.
void appendEscaped(std::string& out, std::string_view bytes) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::size_t i = 0;
    while (i < bytes.size()) {
        const auto c = static_cast<unsigned char>(bytes[i]);
        if (c >= 0x20 && c < 0x7f) {
            out.push_back(static_cast<char>(c));
            ++i;
            continue;
        }
        // A UTF-8 lead byte followed by the right number of continuation bytes.
        std::size_t length = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
        if (length > 0 && i + length <= bytes.size()) {
            bool valid = true;
            for (std::size_t k = 1; k < length; ++k) {
                valid = valid && (static_cast<unsigned char>(bytes[i + k]) & 0xc0) == 0x80;
            }
            if (valid) {
                out.append(bytes.substr(i, length));
                i += length;
                continue;
            }
        }
        out += "\\x";
        out.push_back(kHex[c >> 4]);
        out.push_back(kHex[c & 0xf]);
        ++i;
    }
}

}  // namespace

std::string procPath(pid_t pid, std::string_view tail) {
    return "/proc/" + std::to_string(pid) + std::string(tail);
}

bool readProcFile(const std::string& path, std::size_t limit, std::string& out) {
    out.clear();
    FD fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) return false;
    char buffer[4096];
    while (out.size() < limit) {
        const std::size_t want = std::min(sizeof buffer, limit - out.size());
        const ssize_t n = ::read(fd.get(), buffer, want);
        if (n > 0) {
            out.append(buffer, static_cast<std::size_t>(n));
        } else if (n == 0) {
            break;
        } else if (errno != EINTR) {
            return false;
        }
    }
    return true;
}

void checkProcessAccessible(pid_t pid) {
    const std::string who = "process " + std::to_string(pid);
    if (pid <= 0) throw FatalError(ErrorKind::NoSuchProcess, who + " does not exist");
    const char state = processState(pid);
    if (state == 0) throw FatalError(ErrorKind::NoSuchProcess, who + " does not exist");
    if (isDead(state)) {
        throw FatalError(ErrorKind::NoSuchProcess, who + " is a zombie: it exited and its parent has not reaped it");
    }
    const std::vector<MemoryMapping> mappings = readMaps(pid);  // throws NoSuchProcess / PermissionDenied
    switch (probeOneByte(pid, mappings)) {
        case EACCES:
        case EPERM:
            detail::throwPermissionDenied(pid);
        case ESRCH:
            throw FatalError(ErrorKind::NoSuchProcess, who + " exited");
        default:
            break;  // readable, or no mapping to probe (a kernel thread): nothing more to learn here
    }
}

bool processAlive(pid_t pid) {
    if (pid <= 0) return false;
    const char state = processState(pid);
    return state != 0 && !isDead(state);
}

std::string readCommandLine(pid_t pid) {
    // One byte past the bound tells whether the command line was cut.
    std::string raw;
    if (!readProcFile(procPath(pid, "/cmdline"), kCommandLineLimit + 1, raw)) return {};
    const bool truncated = raw.size() > kCommandLineLimit;
    if (truncated) raw.resize(kCommandLineLimit);
    while (!raw.empty() && raw.back() == '\0') raw.pop_back();
    if (raw.empty()) {
        // No arguments (a process in the middle of an exec, exiting, or a kernel thread):
        // its name in brackets, as ps shows it.
        std::string name;
        if (!readProcFile(procPath(pid, "/comm"), kCommNameLimit, name)) return {};
        while (!name.empty() && (name.back() == '\n' || name.back() == '\0')) name.pop_back();
        if (name.empty()) return {};
        std::string out = "[";
        appendEscaped(out, name);
        return out + "]";
    }

    std::string out;
    std::string_view rest = raw;
    for (;;) {
        const std::size_t nul = rest.find('\0');
        appendEscaped(out, rest.substr(0, nul));
        if (nul == std::string_view::npos) break;
        out.push_back(' ');
        rest.remove_prefix(nul + 1);
    }
    if (truncated) out += "...";
    return out;
}

std::string readExecutablePath(pid_t pid) {
    char buffer[PATH_MAX];
    const ssize_t n = ::readlink(procPath(pid, "/exe").c_str(), buffer, sizeof buffer);
    if (n <= 0 || static_cast<std::size_t>(n) >= sizeof buffer) return {};
    return std::string(buffer, static_cast<std::size_t>(n));
}

std::optional<ProcessStatus> readProcessStatus(pid_t pid) {
    std::string text;
    if (!readProcFile(procPath(pid, "/stat"), 4096, text)) return std::nullopt;
    const auto stat = parseStat(text);
    if (!stat) return std::nullopt;
    // After "(COMM) ": state is field 3, ppid field 4, utime and stime fields 14 and 15,
    // starttime field 22.
    std::string_view rest = std::string_view(text).substr(text.rfind(')') + 2);
    ProcessStatus status;
    status.pid = stat->tid;
    status.state = stat->state;
    unsigned long long cpuTicks = 0;
    static const double ticksPerSecond = static_cast<double>(::sysconf(_SC_CLK_TCK));
    for (int field = 3; field <= 22 && !rest.empty(); ++field) {
        const std::size_t space = rest.find(' ');
        const std::string_view token = rest.substr(0, space);
        if (field == 4) std::from_chars(token.data(), token.data() + token.size(), status.parent);
        if (field == 14 || field == 15) {
            unsigned long long ticks = 0;
            std::from_chars(token.data(), token.data() + token.size(), ticks);
            cpuTicks += ticks;
            if (field == 15 && ticksPerSecond > 0) status.cpuSeconds = static_cast<double>(cpuTicks) / ticksPerSecond;
        }
        if (field == 22) {
            if (std::from_chars(token.data(), token.data() + token.size(), status.startTime).ec != std::errc()) {
                return std::nullopt;
            }
            return status;
        }
        if (space == std::string_view::npos) break;
        rest.remove_prefix(space + 1);
    }
    return std::nullopt;
}

std::vector<pid_t> listThreads(pid_t pid) {
    return TaskDirectory(pid).list();
}

TaskDirectory::TaskDirectory(pid_t pid)
    : pid_(pid), fd_(::open(procPath(pid, "/task").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) {}

std::vector<pid_t> TaskDirectory::list() const {
    std::vector<pid_t> threads;
    if (!fd_ || ::lseek(fd_.get(), 0, SEEK_SET) != 0) return threads;
    alignas(dirent64) char buffer[8192];
    // Bounded: a process has at most a few hundred thousand threads (pid_max).
    for (int chunk = 0; chunk < 100000; ++chunk) {
        const ssize_t n = ::getdents64(fd_.get(), buffer, sizeof buffer);
        if (n <= 0) break;
        for (ssize_t offset = 0; offset < n;) {
            const auto* entry = reinterpret_cast<const dirent64*>(buffer + offset);
            if (entry->d_reclen == 0) break;
            offset += entry->d_reclen;
            const std::string_view name = entry->d_name;
            pid_t tid = 0;
            const auto [end, ec] = std::from_chars(name.data(), name.data() + name.size(), tid);
            if (ec == std::errc() && end == name.data() + name.size() && tid > 0) threads.push_back(tid);
        }
    }
    // Main thread first, then ascending: stable output and the leader is sampled first.
    std::sort(threads.begin(), threads.end(), [pid = pid_](pid_t a, pid_t b) {
        if ((a == pid) != (b == pid)) return a == pid;
        return a < b;
    });
    return threads;
}

Result<ThreadStat> readThreadStat(pid_t pid, pid_t tid) {
    const std::string path = procPath(pid, "/task/" + std::to_string(tid) + "/stat");
    std::string text;
    if (!readProcFile(path, 4096, text)) {
        const int err = errno;
        if (err == ENOENT || err == ESRCH) return Err{ReadError{ReadErrorKind::ProcessGone, 0, "thread exited"}};
        if (err == EACCES || err == EPERM) return Err{ReadError{ReadErrorKind::Permission, 0, "cannot read " + path}};
        return Err{ReadError{ReadErrorKind::Fault, 0, "cannot read " + path + ": " + std::strerror(err)}};
    }
    auto stat = parseStat(text);
    if (!stat) return Err{invalid("malformed " + path)};
    return std::move(*stat);
}

bool ThreadStatReader::wokeFromCall(pid_t tid) const {
    const auto it = files_.find(tid);
    return it != files_.end() && it->second.woke;
}

std::optional<ThreadActivity> ThreadStatReader::reentering(pid_t tid) {
    auto it = files_.find(tid);
    if (it == files_.end() || !it->second.woke || !it->second.blocked || it->second.isStat) return std::nullopt;
    char buffer[1024];
    const ssize_t n = ::pread(it->second.fd.get(), buffer, sizeof buffer - 1, 0);
    if (n <= 0) return std::nullopt;
    const ThreadActivity now = parseSyscallActivity(std::string_view(buffer, static_cast<std::size_t>(n)));
    const ThreadActivity& before = *it->second.blocked;
    const bool sameCall = now.call && now.call->number == before.call->number && now.call->args == before.call->args;
    const bool atSyscallInstruction =
        !now.call && !now.running && now.sp != 0 && now.sp == before.sp && before.pc >= 2 && now.pc == before.pc - 2;
    if (!sameCall && !atSyscallInstruction) return std::nullopt;
    return before;
}

}  // namespace pyspy

// ---------------------------------------------------------------------------------
// ThreadStatReader (thread_stats.h)

namespace pyspy {

ThreadStatReader::ThreadStatReader(pid_t pid, std::chrono::milliseconds relistInterval)
    : pid_(pid), tasks_(pid), relistInterval_(relistInterval) {}

const std::vector<pid_t>& ThreadStatReader::threads(bool relist) {
    const auto now = std::chrono::steady_clock::now();
    if (relist || !listed_ || now - listedAt_ >= relistInterval_) {
        threads_ = tasks_.list();
        listedAt_ = now;
        listed_ = true;
        // Forget the files of threads that are gone.
        std::erase_if(files_, [&](const auto& entry) {
            return std::find(threads_.begin(), threads_.end(), entry.first) == threads_.end();
        });
    }
    return threads_;
}

Result<ThreadActivity> ThreadStatReader::activity(pid_t tid, bool stoppedByUs) {
    auto it = files_.find(tid);
    if (it == files_.end()) {
        const std::string task = procPath(pid_, "/task/" + std::to_string(tid));
        ThreadFile file{FD(::open((task + "/syscall").c_str(), O_RDONLY | O_CLOEXEC)), false, std::nullopt,
                        std::nullopt, false};
        if (!file.fd && (errno == EACCES || errno == EPERM)) {
            file = ThreadFile{FD(::open((task + "/stat").c_str(), O_RDONLY | O_CLOEXEC)), true, std::nullopt,
                              std::nullopt, false};
        }
        if (!file.fd) {
            const int err = errno;
            if (err == ENOENT || err == ESRCH) return Err{ReadError{ReadErrorKind::ProcessGone, 0, "thread exited"}};
            if (err == EACCES || err == EPERM)
                return Err{ReadError{ReadErrorKind::Permission, 0, "cannot read " + task}};
            return Err{ReadError{ReadErrorKind::Fault, 0, "cannot read " + task + ": " + std::strerror(err)}};
        }
        it = files_.emplace(tid, std::move(file)).first;
    }
    char buffer[1024];
    const ssize_t n = ::pread(it->second.fd.get(), buffer, sizeof buffer - 1, 0);
    if (n <= 0) {
        files_.erase(it);  // ESRCH once the thread has exited
        return Err{ReadError{ReadErrorKind::ProcessGone, 0, "thread exited"}};
    }
    const std::string_view text(buffer, static_cast<std::size_t>(n));
    if (it->second.isStat) {
        auto stat = parseStat(text);
        if (!stat) return Err{invalid("malformed stat of thread " + std::to_string(tid))};
        ThreadActivity activity;
        activity.running = stat->running() || (stoppedByUs && stat->state == 't');
        return activity;
    }
    auto activity = parseSyscallActivity(text);
    if (stoppedByUs && text.starts_with("-1 ")) activity.running = true;
    if (activity.call && activity.call->number == SYS_restart_syscall) {
        activity.restarted = true;
        const auto& last = it->second.lastCall;
        if (last && last->args == activity.call->args) {
            activity.call = last;  // the same call, resolved before
        } else {
            std::string wchan;
            const std::string path = procPath(pid_, "/task/" + std::to_string(tid) + "/wchan");
            if (readProcFile(path, 128, wchan)) {
                if (const std::int64_t number = syscallOfWaitChannel(wchan); number >= 0)
                    activity.call->number = number;
            }
        }
        if (activity.call->number == SYS_futex) activity.futexWord = activity.call->args[0];
    }
    it->second.lastCall = activity.call;
    it->second.woke = activity.running && it->second.blocked.has_value();
    if (activity.call) {
        it->second.blocked = activity;
    } else if (!activity.running) {
        it->second.blocked.reset();
    }
    return activity;
}

}  // namespace pyspy
