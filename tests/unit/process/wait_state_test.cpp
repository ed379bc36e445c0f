// wait_state.h: the state a blocked system call puts a thread in, the descriptor it
// waits on (from the arguments, or for poll/select from the target's memory: a fake
// here), the socket tables' peer addresses, and FdDescriber on this process's own
// descriptors (a pipe, a TCP connection to a listener of ours, a file).
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>

#include "pyspy/common/fd.h"
#include "pyspy/process/memory.h"
#include "pyspy/process/thread_activity.h"
#include "pyspy/process/wait_state.h"

using namespace pyspy;

namespace {

SyscallCall call(std::int64_t number, std::array<std::uint64_t, 6> args = {}) {
    return SyscallCall{number, args};
}

}  // namespace

TEST_CASE("state names round-trip", "[wait_state]") {
    for (std::size_t i = 0; i < kThreadStateCount; ++i) {
        const auto state = static_cast<ThreadState>(i);
        CHECK(parseStateName(stateName(state)) == state);
    }
    CHECK(stateName(ThreadState::Io) == "io");
    CHECK_FALSE(parseStateName("idle"));
}

TEST_CASE("classifySyscall: the class of a blocked call and the descriptor in its arguments", "[wait_state]") {
    CHECK(classifySyscall(call(SYS_recvfrom, {7})).state == ThreadState::Io);
    CHECK(classifySyscall(call(SYS_recvfrom, {7})).fd == 7);
    CHECK(classifySyscall(call(SYS_read, {3})).fd == 3);
    CHECK(classifySyscall(call(SYS_epoll_wait, {4})).state == ThreadState::Io);
    CHECK(classifySyscall(call(SYS_futex, {0x1000})).state == ThreadState::Lock);
    CHECK_FALSE(classifySyscall(call(SYS_futex, {0x1000})).fd);
    CHECK(classifySyscall(call(SYS_clock_nanosleep)).state == ThreadState::Sleep);
    CHECK(classifySyscall(call(SYS_nanosleep)).state == ThreadState::Sleep);
    CHECK(classifySyscall(call(SYS_wait4, {1234})).state == ThreadState::Child);
    CHECK(classifySyscall(call(SYS_waitid)).state == ThreadState::Child);
    CHECK(classifySyscall(call(SYS_getpid)).state == ThreadState::Other);
    CHECK(classifySyscall(call(SYS_read, {0xffffffffffffffffULL})).fd == std::nullopt);  // not a descriptor
    CHECK(syscallName(SYS_recvfrom) == "recvfrom");
    CHECK(syscallName(SYS_clock_nanosleep) == "clock_nanosleep");
    CHECK(syscallName(100000) == "syscall 100000");
}

TEST_CASE("waitFd: poll and select read their descriptor from memory; none is a sleep", "[wait_state]") {
    BufferMemory memory;
    // struct pollfd {int fd; short events, revents;}[2]: the first is ignored (fd -1).
    std::int32_t pollfds[4] = {-1, 1, 9, 1};
    std::vector<std::uint8_t> bytes(sizeof pollfds);
    std::memcpy(bytes.data(), pollfds, sizeof pollfds);
    memory.map(0x1000, bytes);
    CHECK(waitFd(call(SYS_poll, {0x1000, 2, 5000}), &memory).fd == 9);
    CHECK(waitFd(call(SYS_poll, {0x1000, 2, 5000}), &memory).state == ThreadState::Io);
    CHECK(waitFd(call(SYS_ppoll, {0x1000, 2}), &memory).fd == 9);
    CHECK(waitFd(call(SYS_poll, {0, 0, 5000}), &memory).state == ThreadState::Sleep);
    CHECK_FALSE(waitFd(call(SYS_poll, {0x9000, 1, 5000}), &memory).fd);  // unreadable: no descriptor, still io
    CHECK(waitFd(call(SYS_poll, {0x9000, 1, 5000}), &memory).state == ThreadState::Io);
    // select(nfds, readfds, writefds, exceptfds, timeout): fd 70 in the write set.
    std::uint64_t set[2] = {0, std::uint64_t{1} << 6};
    std::vector<std::uint8_t> setBytes(sizeof set);
    std::memcpy(setBytes.data(), set, sizeof set);
    memory.map(0x2000, setBytes);
    CHECK(waitFd(call(SYS_select, {71, 0, 0x2000, 0, 0x3000}), &memory).fd == 70);
    CHECK_FALSE(waitFd(call(SYS_select, {70, 0, 0x2000, 0, 0x3000}), &memory).fd);  // beyond nfds
    // Python's time.sleep before 3.11: select(0, NULL, NULL, NULL, &timeout).
    CHECK(waitFd(call(SYS_select, {0, 0, 0, 0, 0x3000}), &memory).state == ThreadState::Sleep);
    CHECK(waitFd(call(SYS_pselect6, {0, 0, 0, 0, 0x3000}), &memory).state == ThreadState::Sleep);
    CHECK(waitFd(call(SYS_recvfrom, {5}), &memory).fd == 5);
    // No memory: nothing read, the state all the same.
    CHECK(waitFd(call(SYS_poll, {0x1000, 2, 5000}), nullptr).state == ThreadState::Io);
    CHECK_FALSE(waitFd(call(SYS_poll, {0x1000, 2, 5000}), nullptr).fd);
    CHECK(waitFd(call(SYS_select, {0, 0, 0, 0, 0x3000}), nullptr).state == ThreadState::Sleep);
}

TEST_CASE("parseSyscallActivity keeps the call and all six arguments", "[wait_state]") {
    const auto activity =
        parseSyscallActivity(std::to_string(SYS_recvfrom) + " 0x5 0x7f00 0x400 0x0 0x0 0x0 0x7ffd1000 0x7f0011\n");
    REQUIRE(activity.call);
    CHECK(activity.call->number == SYS_recvfrom);
    CHECK(activity.call->args[0] == 5);
    CHECK(activity.call->args[2] == 0x400);
    CHECK_FALSE(activity.futexWord);
    CHECK(activity.sp == 0x7ffd1000);
    CHECK(activity.pc == 0x7f0011);
    const auto stopped = parseSyscallActivity("-1 0x7ffd1000 0x7f000f\n");
    CHECK_FALSE(stopped.call);
    CHECK_FALSE(stopped.running);
    CHECK(stopped.sp == 0x7ffd1000);
    CHECK(stopped.pc == 0x7f000f);
    CHECK_FALSE(parseSyscallActivity("running\n").call);
    CHECK_FALSE(parseSyscallActivity(std::to_string(SYS_read) + " 0x5 0x7f").call);  // cut short
}

TEST_CASE("socketPeerFromTable: the remote address of a socket by inode", "[wait_state]") {
    const std::string tcp =
        "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
        "   0: 0100007F:1538 00000000:0000 0A 00000000:00000000 00:00000000 00000000   0        0 111 1 0 100 0 0 "
        "10 0\n"
        "   1: 0100007F:9C40 0500000A:1538 01 00000000:00000000 00:00000000 00000000   0        0 222 1 0 20 4 30 "
        "10 -1\n";
    CHECK(socketPeerFromTable(tcp, 222, false) == std::optional<std::string>("10.0.0.5:5432"));
    CHECK(socketPeerFromTable(tcp, 111, false) == std::optional<std::string>("listening 127.0.0.1:5432"));
    CHECK_FALSE(socketPeerFromTable(tcp, 333, false));
    const std::string tcp6 =
        "  sl  local_address                         remote_address                        st tx_queue rx_queue tr "
        "tm->when retrnsmt   uid  timeout inode\n"
        "   0: 00000000000000000000000001000000:9C40 00000000000000000000000001000000:0050 01 00000000:00000000 "
        "00:00000000 00000000     0        0 444 1 0\n"
        "   1: 0000000000000000FFFF00000100007F:9C41 0000000000000000FFFF00000100007F:0051 01 00000000:00000000 "
        "00:00000000 00000000     0        0 555 1 0\n";
    CHECK(socketPeerFromTable(tcp6, 444, true) == std::optional<std::string>("[::1]:80"));
    CHECK(socketPeerFromTable(tcp6, 555, true) == std::optional<std::string>("127.0.0.1:81"));
    CHECK_FALSE(socketPeerFromTable("garbage\nwith no fields\n\n", 1, false));
}

TEST_CASE("syscallOfWaitChannel: the call a restarted wait sleeps in", "[wait_state]") {
    CHECK(syscallOfWaitChannel("futex_do_wait") == SYS_futex);
    CHECK(syscallOfWaitChannel("futex_wait_queue_me") == SYS_futex);
    CHECK(syscallOfWaitChannel("poll_schedule_timeout.constprop.0") == SYS_poll);
    CHECK(syscallOfWaitChannel("do_select") == SYS_select);
    CHECK(syscallOfWaitChannel("ep_poll") == SYS_epoll_wait);
    CHECK(syscallOfWaitChannel("hrtimer_nanosleep") == SYS_nanosleep);
    CHECK(syscallOfWaitChannel("do_wait") == SYS_wait4);
    CHECK(syscallOfWaitChannel("pipe_read") == -1);
    CHECK(syscallOfWaitChannel("") == -1);
}

TEST_CASE("FdDescriber names this process's descriptors", "[wait_state]") {
    FdDescriber describer(::getpid());
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    const FD readEnd(fds[0]), writeEnd(fds[1]);
    CHECK(describer.describe(readEnd.get(), true).kind == FdKind::Pipe);

    const FD listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    REQUIRE(listener);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(listener.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    REQUIRE(::listen(listener.get(), 1) == 0);
    socklen_t length = sizeof address;
    REQUIRE(::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&address), &length) == 0);
    const FD client(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    REQUIRE(::connect(client.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    const FdInfo info = describer.describe(client.get(), true);
    CHECK(info.kind == FdKind::Socket);
    CHECK(info.detail == "127.0.0.1:" + std::to_string(ntohs(address.sin_port)));
    CHECK(describer.describe(client.get(), false).detail.empty());  // no peer asked for

    const FD file(::open("/proc/self/exe", O_RDONLY | O_CLOEXEC));
    const FdInfo fileInfo = describer.describe(file.get(), true);
    CHECK(fileInfo.kind == FdKind::File);
    CHECK(fileInfo.detail.starts_with("/"));
    CHECK(describer.describe(100000, true).kind == FdKind::Unknown);
    CHECK(describer.describe(-1, true).kind == FdKind::Unknown);
}
