// /proc facts: accessibility checks (missing, zombie, unprivileged), thread lists,
// thread stat lines with hostile names, command lines.
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <thread>

#include "forked_child.h"
#include "pyspy/common/error.h"
#include "pyspy/process/process.h"
#include "support/child_process.h"

using namespace pyspy;

namespace {

// The ErrorKind checkProcessAccessible throws, or 0 when it does not throw.
int accessKind(pid_t pid) {
    try {
        checkProcessAccessible(pid);
        return 0;
    } catch (const FatalError& error) {
        return static_cast<int>(error.kind());
    }
}

}  // namespace

TEST_CASE("checkProcessAccessible accepts a live child we may read", "[process]") {
    test::ChildProcess child({"/bin/sh", "-c", "echo ready; sleep 30"});
    REQUIRE(child.waitFor("ready"));  // exec has finished
    CHECK_NOTHROW(checkProcessAccessible(child.pid()));
    CHECK(processAlive(child.pid()));
}

TEST_CASE("checkProcessAccessible: a missing process is NoSuchProcess", "[process]") {
    const pid_t pid = test::deadPid();
    CHECK(accessKind(pid) == static_cast<int>(ErrorKind::NoSuchProcess));
    CHECK(accessKind(0) == static_cast<int>(ErrorKind::NoSuchProcess));
    CHECK_FALSE(processAlive(pid));
}

TEST_CASE("checkProcessAccessible: a zombie is NoSuchProcess and says so", "[process]") {
    test::ForkedChild child([](int) { return 0; });
    REQUIRE(child.waitUntilZombie());
    CHECK_FALSE(processAlive(child.pid()));
    try {
        checkProcessAccessible(child.pid());
        FAIL("no error for a zombie");
    } catch (const FatalError& error) {
        CHECK(error.kind() == ErrorKind::NoSuchProcess);
        CHECK_THAT(error.what(), Catch::Contains("zombie"));
    }
}

TEST_CASE("checkProcessAccessible: an unprivileged user reading a root process is PermissionDenied", "[process]") {
    REQUIRE(::geteuid() == 0);  // the test drops from root to nobody
    test::ChildProcess rootTarget({"/bin/sh", "-c", "echo ready; sleep 30"});
    REQUIRE(rootTarget.waitFor("ready"));  // exec has finished
    const pid_t target = rootTarget.pid();
    test::ForkedChild nobody([target](int toTest) {
        if (::setresgid(65534, 65534, 65534) != 0 || ::setresuid(65534, 65534, 65534) != 0) return 1;
        int kind = -1;
        std::string message;
        try {
            checkProcessAccessible(target);
            kind = 0;
        } catch (const FatalError& error) {
            kind = static_cast<int>(error.kind());
            message = error.what();
        }
        test::sendValue(toTest, kind);
        const bool advice = message.find("CAP_SYS_PTRACE") != std::string::npos &&
                            message.find("ptrace_scope") != std::string::npos &&
                            message.find(std::to_string(target)) != std::string::npos;
        test::sendValue(toTest, advice);
        return 0;
    });
    int kind = -1;
    bool advice = false;
    REQUIRE(nobody.receive(kind));
    REQUIRE(nobody.receive(advice));
    CHECK(kind == static_cast<int>(ErrorKind::PermissionDenied));
    CHECK(advice);
}

TEST_CASE("readThreadStat parses a thread name with spaces and parentheses", "[process]") {
    const char* const name = "a) b (c) ) d";  // 12 bytes: within the kernel's 15
    std::atomic<pid_t> tid{0};
    std::atomic<bool> done{false};
    std::thread thread([&] {
        ::prctl(PR_SET_NAME, name, 0, 0, 0);
        tid = static_cast<pid_t>(::syscall(SYS_gettid));
        while (!done) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    });
    while (tid == 0) std::this_thread::yield();

    const auto stat = readThreadStat(::getpid(), tid);
    done = true;
    thread.join();
    REQUIRE(stat.ok());
    CHECK(stat->tid == tid);
    CHECK(stat->comm == name);
    CHECK((stat->state == 'S' || stat->state == 'R'));

    const auto gone = readThreadStat(::getpid(), tid);  // joined: the thread has exited
    REQUIRE_FALSE(gone.ok());
    CHECK(gone.error().kind == ReadErrorKind::ProcessGone);
}

TEST_CASE("listThreads puts the main thread first, then ascending", "[process]") {
    test::ForkedChild child([](int toTest) {
        std::vector<std::thread> threads;
        for (int i = 0; i < 4; ++i) threads.emplace_back([] { test::sleepForever(); });
        test::sendValue(toTest, 1);
        test::sleepForever();
    });
    int ready = 0;
    REQUIRE(child.receive(ready));
    const auto threads = listThreads(child.pid());
    REQUIRE(threads.size() == 5);
    CHECK(threads[0] == child.pid());
    CHECK(std::is_sorted(threads.begin() + 1, threads.end()));
    CHECK(listThreads(test::deadPid()).empty());
}

TEST_CASE("readCommandLine joins arguments and escapes control bytes", "[process]") {
    // The ready line comes after exec has set the arguments up (right after spawn they read as empty).
    test::ChildProcess child({"/bin/sh", "-c", "echo ready; sleep 30", "two words", "tab\there", "caf\xc3\xa9"});
    REQUIRE(child.waitFor("ready"));
    const auto line = readCommandLine(child.pid());
    CHECK(line == "/bin/sh -c echo ready; sleep 30 two words tab\\x09here caf\xc3\xa9");
    CHECK(readExecutablePath(child.pid()).find("sh") != std::string::npos);
    CHECK(readCommandLine(test::deadPid()).empty());
    CHECK(readExecutablePath(test::deadPid()).empty());
}

TEST_CASE("readCommandLine names a process without arguments in brackets, as ps does", "[process]") {
    // A zombie has released its memory, arguments included: only its name is left.
    test::ChildProcess child({"/bin/sh", "-c", "echo ready; exec /bin/true"});
    REQUIRE(child.waitFor("ready"));
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    std::optional<ProcessStatus> status;
    while ((status = readProcessStatus(child.pid())) && status->state != 'Z' &&
           std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    REQUIRE(status);
    REQUIRE(status->state == 'Z');
    CHECK(readCommandLine(child.pid()) == "[true]");
}

TEST_CASE("readCommandLine is bounded", "[process]") {
    test::ChildProcess child({"/bin/sh", "-c", "echo ready; sleep 30", std::string(10000, 'y')});
    REQUIRE(child.waitFor("ready"));
    const auto line = readCommandLine(child.pid());
    CHECK(line.size() == 4096 + 3);
    CHECK(line.ends_with("yyy..."));
}
