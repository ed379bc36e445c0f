// Why a thread is not running: the state of one thread sample, from the system call it
// sleeps in (/proc/PID/task/TID/syscall: its number and arguments, read by
// ThreadStatReader). `running` is the kernel's TASK_RUNNING (on a CPU or runnable).
// A futex sleep is a `lock` unless the python layer knows the futex is the GIL's (then
// `gil`); an I/O call names its file descriptor, which FdDescriber turns into a kind
// (socket, pipe, file, tty, epoll) and, for a TCP/UDP socket, its peer address.
#pragma once

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace pyspy {

class ProcessMemory;

enum class ThreadState : std::uint8_t {
    Running,  // on a CPU or runnable
    Gil,      // asleep waiting to take the GIL
    Lock,     // asleep on a futex that is not the GIL's (Lock, Condition, Event, Queue, ...)
    Io,       // blocked in read/recv/send/accept/connect/poll/select/epoll on a descriptor
    Sleep,    // time.sleep (nanosleep, clock_nanosleep, or select/poll with no descriptor)
    Child,    // waiting for a child process (wait4, waitid)
    Other,    // any other system call, stopped, or not known
};
inline constexpr std::size_t kThreadStateCount = 7;

// "running", "gil", "lock", "io", "sleep", "child", "other".
std::string_view stateName(ThreadState state);
// The inverse of stateName; nullopt for anything else.
std::optional<ThreadState> parseStateName(std::string_view name);

// A system call in progress, as the syscall file shows it.
struct SyscallCall {
    std::int64_t number = -1;
    std::array<std::uint64_t, 6> args{};
};

// x86-64 system call name ("recvfrom"), or "syscall N" for one not in the table.
std::string syscallName(std::int64_t number);

enum class FdKind : std::uint8_t { Unknown, Socket, Pipe, File, Tty, Epoll, Other };
std::string_view fdKindName(FdKind kind);  // "socket", "pipe", ..., "" for Unknown

// The state a blocked system call puts a thread in (Lock for every futex wait), and,
// for an I/O call, the descriptor it waits on when the call's own arguments name it
// (read, recv, epoll_wait, ...); poll and select keep theirs in memory: see waitFd.
struct SyscallWait {
    ThreadState state = ThreadState::Other;
    std::optional<int> fd;
};
SyscallWait classifySyscall(const SyscallCall& call);

// For poll/ppoll/select/pselect6: the first descriptor in the caller's arrays, read from
// the target's memory (one small bounded read). A poll or select with no descriptor is a
// sleep (Python's time.sleep before 3.11): returned as {Sleep, nullopt}. Other calls:
// classifySyscall's answer. Without `memory`, nothing is read: a poll or select with
// descriptors is io on an unknown one (what the sampler needs when no kind is asked for).
SyscallWait waitFd(const SyscallCall& call, const ProcessMemory* memory);

// What a descriptor of the target is: its kind and a short detail (a socket's peer
// "10.0.0.5:5432" or "unix", a file's path, a tty's name). Cached per descriptor by the
// text of its /proc/PID/fd/N link, so a steady wait costs one readlink per lookup and
// the socket tables (/proc/PID/net/tcp, tcp6, udp, udp6) are read only when the link
// changes and a peer is asked for.
struct FdInfo {
    FdKind kind = FdKind::Unknown;
    std::string detail;  // "" when unknown or not asked for
};

class FdDescriber {
  public:
    explicit FdDescriber(pid_t pid) : pid_(pid) {}
    // `peer`: also find a socket's peer address. An fd that cannot be read: Unknown.
    FdInfo describe(int fd, bool peer);

  private:
    struct Entry {
        std::string link;
        FdInfo info;
        bool peerLooked = false;
    };
    pid_t pid_;
    std::unordered_map<int, Entry> cache_;
};

// Parses a /proc/net/{tcp,tcp6,udp,udp6} table and returns the remote address
// ("127.0.0.1:5432", "[::1]:80") of the socket with inode `inode`, if listed there; for a
// listening socket "listening 127.0.0.1:8000", for one without a peer "local ADDRESS".
std::optional<std::string> socketPeerFromTable(std::string_view table, std::uint64_t inode, bool ipv6);

// The thread's state and wait detail, as ThreadStack and ThreadSample carry them.
struct WaitReason {
    std::int64_t syscallNumber = -1;
    std::string syscall;    // the system call's name ("" when running or not known)
    std::optional<int> fd;  // the descriptor an I/O wait is on
    FdInfo fdInfo;          // its kind and detail, when looked up
};

}  // namespace pyspy
