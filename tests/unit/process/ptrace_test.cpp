// ThreadPause against forked children whose threads count in shared memory: paused
// counters freeze, every thread shows 't', and everything runs again afterwards on
// every path (scope end, exception, move, failure).
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <catch2/catch.hpp>
#include <fstream>
#include <stdexcept>
#include <string>
#include <thread>

#include "forked_child.h"
#include "pyspy/process/process.h"
#include "pyspy/process/ptrace.h"
#include "pyspy/process/thread_stats.h"

using namespace pyspy;
using namespace std::chrono_literals;

namespace {

constexpr int kWorkers = 3;  // plus the main thread: 4 counting threads

// Counters in memory shared with the forked child (mapped before fork).
struct SharedCounters {
    std::array<std::atomic<std::uint64_t>, kWorkers + 1> counts{};
    std::atomic<std::uint64_t> threadsCreated{0};
};

class SharedMemory {
  public:
    SharedMemory() {
        void* p = ::mmap(nullptr, sizeof(SharedCounters), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) throw std::runtime_error("mmap failed");
        counters_ = new (p) SharedCounters();
    }
    ~SharedMemory() { ::munmap(counters_, sizeof(SharedCounters)); }
    SharedCounters& operator*() const { return *counters_; }
    SharedCounters* operator->() const { return counters_; }

  private:
    SharedCounters* counters_;
};

std::array<std::uint64_t, kWorkers + 1> snapshot(const SharedCounters& shared) {
    std::array<std::uint64_t, kWorkers + 1> values{};
    for (std::size_t i = 0; i < values.size(); ++i) values[i] = shared.counts[i].load();
    return values;
}

// A child with kWorkers threads plus its main thread, each bumping its own counter.
test::ForkedChild countingChild(SharedCounters& shared) {
    return test::ForkedChild([&shared](int toTest) {
        for (int i = 1; i <= kWorkers; ++i) {
            std::thread([&shared, i] {
                for (;;) shared.counts[i].fetch_add(1, std::memory_order_relaxed);
            }).detach();
        }
        // Announce once every worker has counted at least once.
        bool announced = false;
        for (;;) {
            shared.counts[0].fetch_add(1, std::memory_order_relaxed);
            if (!announced) {
                bool all = true;
                for (int i = 1; i <= kWorkers; ++i) all = all && shared.counts[i].load() > 0;
                if (all) {
                    test::sendValue(toTest, 1);
                    announced = true;
                }
            }
        }
    });
}

// True when every counter advances within `within`.
bool allCountersMove(const SharedCounters& shared, std::chrono::milliseconds within = 5s) {
    const auto before = snapshot(shared);
    const auto deadline = std::chrono::steady_clock::now() + within;
    while (std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(10ms);
        const auto now = snapshot(shared);
        bool all = true;
        for (std::size_t i = 0; i < now.size(); ++i) all = all && now[i] > before[i];
        if (all) return true;
    }
    return false;
}

// True when two samples 50 ms apart are equal: nothing ran in between.
bool countersFrozen(const SharedCounters& shared) {
    const auto before = snapshot(shared);
    std::this_thread::sleep_for(50ms);
    return snapshot(shared) == before;
}

char threadState(pid_t pid, pid_t tid) {
    const auto stat = readThreadStat(pid, tid);
    return stat.ok() ? stat->state : '?';
}

bool allThreadsTraceStopped(pid_t pid) {
    const auto threads = listThreads(pid);
    if (threads.empty()) return false;
    for (const pid_t tid : threads) {
        if (threadState(pid, tid) != 't') return false;
    }
    return true;
}

// The TracerPid line of /proc/PID/task/TID/status: 0 when nobody traces the thread.
int tracerOf(pid_t pid, pid_t tid) {
    std::ifstream status("/proc/" + std::to_string(pid) + "/task/" + std::to_string(tid) + "/status");
    std::string line;
    while (std::getline(status, line)) {
        if (line.rfind("TracerPid:", 0) == 0) return std::stoi(line.substr(10));
    }
    return -1;
}

// True when no thread of `pid` is traced (threads that exit while we look are skipped).
bool noThreadTraced(pid_t pid) {
    for (const pid_t tid : listThreads(pid)) {
        const int tracer = tracerOf(pid, tid);
        if (tracer > 0) {
            UNSCOPED_INFO("thread " << tid << " traced by " << tracer << " state " << threadState(pid, tid));
            return false;
        }
    }
    return true;
}

}  // namespace

TEST_CASE("ThreadPause stops every thread and resumes them at scope end", "[ptrace]") {
    SharedMemory shared;
    auto child = countingChild(*shared);
    int ready = 0;
    REQUIRE(child.receive(ready));
    REQUIRE(allCountersMove(*shared));

    {
        auto pause = ThreadPause::pauseAll(child.pid());
        REQUIRE(pause.ok());
        REQUIRE(pause->threads().size() == kWorkers + 1);
        CHECK(pause->threads().front() == child.pid());
        CHECK(countersFrozen(*shared));
        CHECK(allThreadsTraceStopped(child.pid()));
        CHECK(tracerOf(child.pid(), child.pid()) == ::getpid());
    }
    CHECK(allCountersMove(*shared));
    CHECK(noThreadTraced(child.pid()));
    CHECK_FALSE(allThreadsTraceStopped(child.pid()));

    SECTION("resume() detaches at once and is idempotent") {
        auto pause = ThreadPause::pauseAll(child.pid());
        REQUIRE(pause.ok());
        CHECK(countersFrozen(*shared));
        pause->resume();
        CHECK(pause->threads().empty());
        CHECK(allCountersMove(*shared));
        pause->resume();
        CHECK(noThreadTraced(child.pid()));
    }
    SECTION("moving hands the pause over; the moved-from object resumes nothing") {
        auto first = ThreadPause::pauseAll(child.pid());
        REQUIRE(first.ok());
        {
            ThreadPause moved(std::move(first.value()));
            CHECK(first->threads().empty());
            CHECK(moved.threads().size() == kWorkers + 1);
            CHECK(countersFrozen(*shared));
        }
        CHECK(allCountersMove(*shared));
        CHECK(noThreadTraced(child.pid()));
    }
    SECTION("an exception thrown while paused still resumes the target") {
        try {
            auto pause = ThreadPause::pauseAll(child.pid());
            REQUIRE(pause.ok());
            CHECK(countersFrozen(*shared));
            throw std::runtime_error("failure while paused");
        } catch (const std::runtime_error&) {
        }
        CHECK(allCountersMove(*shared));
        CHECK(noThreadTraced(child.pid()));
    }
}

TEST_CASE("ThreadPause pauses a child that creates threads continuously", "[ptrace]") {
    SharedMemory shared;
    test::ForkedChild child([&shared](int toTest) {
        // Two spawners, each creating short-lived threads as fast as it can.
        for (int s = 0; s < 2; ++s) {
            std::thread([&shared] {
                for (;;) {
                    std::thread([&shared] { shared->threadsCreated.fetch_add(1); }).join();
                }
            }).detach();
            std::thread([&shared] {
                for (;;) {
                    std::thread([&shared] { shared->threadsCreated.fetch_add(1); }).detach();
                    std::this_thread::sleep_for(100us);
                }
            }).detach();
        }
        while (shared->threadsCreated.load() < 100) std::this_thread::sleep_for(1ms);
        test::sendValue(toTest, 1);
        test::sleepForever();
    });
    int ready = 0;
    REQUIRE(child.receive(ready));

    for (int attempt = 0; attempt < 20; ++attempt) {
        INFO("attempt " << attempt);
        const auto started = std::chrono::steady_clock::now();
        auto pause = ThreadPause::pauseAll(child.pid(), 5000ms);
        REQUIRE(pause.ok());
        CHECK(std::chrono::steady_clock::now() - started < 3s);
        const auto created = shared->threadsCreated.load();
        std::this_thread::sleep_for(20ms);
        CHECK(shared->threadsCreated.load() == created);  // no thread ran to bump it
        // Every thread that exists now is one we stopped.
        for (const pid_t tid : listThreads(child.pid())) {
            INFO("thread " << tid);
            CHECK(threadState(child.pid(), tid) == 't');
        }
    }
    const auto created = shared->threadsCreated.load();
    std::this_thread::sleep_for(50ms);
    CHECK(shared->threadsCreated.load() > created);
    CHECK(noThreadTraced(child.pid()));
}

TEST_CASE("ThreadPause of a missing or zombie process is ProcessGone and attaches nothing", "[ptrace]") {
    const auto missing = ThreadPause::pauseAll(test::deadPid());
    REQUIRE_FALSE(missing.ok());
    CHECK(missing.error().kind == ReadErrorKind::ProcessGone);
    CHECK(ThreadPause::pauseAll(0).error().kind == ReadErrorKind::ProcessGone);

    test::ForkedChild zombie([](int) { return 7; });
    REQUIRE(zombie.waitUntilZombie());
    const auto paused = ThreadPause::pauseAll(zombie.pid());
    REQUIRE_FALSE(paused.ok());
    CHECK(paused.error().kind == ReadErrorKind::ProcessGone);
    // We never took its exit status: the parent still reaps it normally.
    const int status = zombie.wait();
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 7);
}

TEST_CASE("ThreadPause without permission fails with Permission and attaches nothing", "[ptrace]") {
    REQUIRE(::geteuid() == 0);  // the test drops from root to nobody
    SharedMemory shared;
    auto target = countingChild(*shared);
    int ready = 0;
    REQUIRE(target.receive(ready));
    const pid_t targetPid = target.pid();
    test::ForkedChild nobody([targetPid](int toTest) {
        if (::setresgid(65534, 65534, 65534) != 0 || ::setresuid(65534, 65534, 65534) != 0) return 1;
        const auto pause = ThreadPause::pauseAll(targetPid);
        test::sendValue(toTest, pause.ok() ? -1 : static_cast<int>(pause.error().kind));
        return 0;
    });
    int kind = -2;
    REQUIRE(nobody.receive(kind));
    CHECK(kind == static_cast<int>(ReadErrorKind::Permission));
    CHECK(noThreadTraced(targetPid));
    CHECK(allCountersMove(*shared));
}

TEST_CASE("ThreadPause gives up on a thread that cannot stop and detaches it once it can", "[ptrace]") {
    // A vfork parent sleeps uninterruptibly until its child exits, so ptrace cannot
    // stop it: pauseAll must time out without leaving it stopped afterwards.
    SharedMemory shared;
    test::ForkedChild child([&shared](int toTest) {
        const pid_t forked = ::vfork();
        if (forked == 0) {
            test::sendValue(toTest, 1);
            ::usleep(800 * 1000);
            ::_exit(0);
        }
        for (;;) shared->counts[0].fetch_add(1, std::memory_order_relaxed);
    });
    int ready = 0;
    REQUIRE(child.receive(ready));
    std::this_thread::sleep_for(50ms);  // the parent is now blocked in vfork
    REQUIRE(threadState(child.pid(), child.pid()) == 'D');

    const auto paused = ThreadPause::pauseAll(child.pid(), 200ms);
    REQUIRE_FALSE(paused.ok());
    CHECK(paused.error().what.find("timed out") != std::string::npos);

    // Once the vfork child exits, the thread runs or sits in its pending trap until our
    // next ptrace call on this thread; a second pause must work and its end must free it.
    std::this_thread::sleep_for(1200ms);
    {
        auto again = ThreadPause::pauseAll(child.pid(), 2000ms);
        REQUIRE(again.ok());
        CHECK(countersFrozen(*shared));
    }
    const auto before = shared->counts[0].load();
    std::this_thread::sleep_for(50ms);
    CHECK(shared->counts[0].load() > before);
    CHECK(noThreadTraced(child.pid()));
}

TEST_CASE("ThreadPause of a target killed while paused ends cleanly and leaves no traced zombie", "[ptrace]") {
    SharedMemory shared;
    auto child = countingChild(*shared);
    int ready = 0;
    REQUIRE(child.receive(ready));
    const pid_t pid = child.pid();
    {
        auto pause = ThreadPause::pauseAll(pid);
        REQUIRE(pause.ok());
        REQUIRE(::kill(pid, SIGKILL) == 0);  // the threads die while we still trace them
    }
    // Traced threads of a dead process linger until their tracer reaps them; the
    // parent can collect the process only once none is left.
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    bool collected = false;
    while (!collected && std::chrono::steady_clock::now() < deadline) {
        (void)ThreadPause::pauseAll(pid, 100ms);  // a later call on this thread reaps leftovers
        int status = 0;
        const pid_t r = ::waitpid(pid, &status, WNOHANG);
        collected = r == pid || (r < 0 && errno == ECHILD);
        if (!collected) std::this_thread::sleep_for(10ms);
    }
    CHECK(collected);
    CHECK(listThreads(pid).empty());
}

TEST_CASE("ThreadStatReader::activity of threads we stopped: running if stopped outside a system call", "[ptrace]") {
    // The child's main thread sleeps in a pipe read; its one worker spins.
    SharedMemory shared;
    test::ForkedChild child([&shared](int toTest) {
        std::thread([&shared] {
            for (;;) shared->counts[1].fetch_add(1, std::memory_order_relaxed);
        }).detach();
        while (shared->counts[1].load() == 0) {
        }
        test::sendValue(toTest, 1);
        int fds[2];
        if (::pipe(fds) != 0) ::_exit(1);
        char byte = 0;
        for (;;) (void)::read(fds[0], &byte, 1);  // never written: asleep in read(2)
    });
    int ready = 0;
    REQUIRE(child.receive(ready));
    ThreadStatReader reader(child.pid());
    const auto tids = reader.threads(true);
    REQUIRE(tids.size() == 2);
    std::this_thread::sleep_for(50ms);  // the main thread reaches its read
    auto pause = ThreadPause::pauseAll(child.pid());
    REQUIRE(pause.ok());
    auto sleeping = reader.activity(tids[0], true);
    auto spinning = reader.activity(tids[1], true);
    REQUIRE(sleeping.ok());
    REQUIRE(spinning.ok());
    CHECK_FALSE(sleeping.value().running);
    CHECK(spinning.value().running);
}
