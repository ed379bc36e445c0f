// ProcessTree against real forked trees: children and grandchildren are found with
// their chains, each once, and a process whose parent has exited still brings in the
// children it starts afterwards.
#include <signal.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

#include "forked_child.h"
#include "pyspy/common/error.h"
#include "pyspy/process/process_tree.h"

using namespace pyspy;
using namespace pyspy::test;

namespace {

const TreeMember* findMember(const std::vector<TreeMember>& members, pid_t pid) {
    const auto it = std::find_if(members.begin(), members.end(), [pid](const TreeMember& m) { return m.pid == pid; });
    return it == members.end() ? nullptr : &*it;
}

// Kills a process that is not our child (re-parented away from us) when the test ends.
struct KillAtEnd {
    std::vector<pid_t> pids;
    ~KillAtEnd() {
        for (const pid_t pid : pids) {
            if (pid > 0) ::kill(pid, SIGKILL);
        }
    }
};

}  // namespace

TEST_CASE("ProcessTree keeps an orphaned member and finds the children it starts later", "[process_tree]") {
    // root -> g -> h; g exits after 500 ms (h is re-parented), then h starts i at 1 s.
    ForkedChild root([](int fd) {
        if (::fork() == 0) {
            sendValue(fd, ::getpid());  // g
            if (::fork() == 0) {
                sendValue(fd, ::getpid());  // h
                ::usleep(1'000'000);
                if (::fork() == 0) {
                    sendValue(fd, ::getpid());  // i
                    sleepForever();
                }
                sleepForever();
            }
            ::usleep(500'000);
            ::_exit(0);
        }
        sleepForever();
    });
    KillAtEnd cleanup;
    pid_t g = 0, h = 0, i = 0;
    REQUIRE(root.receive(g));
    REQUIRE(root.receive(h));
    cleanup.pids = {g, h};

    ProcessTree tree(root.pid());
    const std::vector<TreeMember> first = tree.scan();
    REQUIRE(first.size() == 2);
    const TreeMember* gm = findMember(first, g);
    const TreeMember* hm = findMember(first, h);
    REQUIRE(gm != nullptr);
    REQUIRE(hm != nullptr);
    CHECK(gm->chain == std::vector<pid_t>{root.pid(), g});
    CHECK(hm->chain == std::vector<pid_t>{root.pid(), g, h});
    CHECK(tree.scan().empty());  // each process is reported once

    REQUIRE(root.receive(i));
    cleanup.pids.push_back(i);
    const auto status = readProcessStatus(h);
    REQUIRE(status);
    CHECK(status->parent != g);  // h was re-parented: only the tree's memory links it
    const std::vector<TreeMember> later = tree.scan();
    REQUIRE(later.size() == 1);
    CHECK(later[0].pid == i);
    CHECK(later[0].parent == h);
    CHECK(later[0].chain == std::vector<pid_t>{root.pid(), g, h, i});
    CHECK(tree.members().size() == 4);
    CHECK(tree.root().pid == root.pid());
}

TEST_CASE("ProcessTree of a missing pid is NoSuchProcess", "[process_tree]") {
    const pid_t dead = deadPid();
    try {
        ProcessTree tree(dead);
        FAIL("no error");
    } catch (const FatalError& e) {
        CHECK(e.kind() == ErrorKind::NoSuchProcess);
    }
}

TEST_CASE("readProcessStatus: the CPU time used so far grows while the process runs", "[process_tree]") {
    const auto before = readProcessStatus(::getpid());
    REQUIRE(before);
    CHECK(before->pid == ::getpid());
    // Burn about 50 ms of CPU (clock ticks are 10 ms).
    const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(50);
    volatile std::uint64_t spins = 0;
    while (std::chrono::steady_clock::now() < end) spins = spins + 1;
    const auto after = readProcessStatus(::getpid());
    REQUIRE(after);
    CHECK(after->cpuSeconds > before->cpuSeconds);
    CHECK(after->cpuSeconds - before->cpuSeconds < 5.0);
    CHECK_FALSE(readProcessStatus(deadPid()));
}
