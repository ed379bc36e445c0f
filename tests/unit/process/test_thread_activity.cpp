// parseSyscallActivity: running, or the futex word of a thread blocked in futex(2), from
// the text of /proc/PID/task/TID/syscall; and ThreadStatReader::activity on live threads
// of this process (a spinning one runs, one asleep on a condition variable waits on it).
#include <catch2/catch.hpp>

#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include "pyspy/process/thread_activity.h"
#include "pyspy/process/thread_stats.h"

using namespace pyspy;

TEST_CASE("parseSyscallActivity: running, or the first argument of futex only", "[thread_activity]") {
    const std::string futex = std::to_string(SYS_futex);
    CHECK(
        parseSyscallActivity(futex + " 0x7f12345678a0 0x189 0x0 0x0 0x0 0xffffffff 0x7ffd1000 0x7f0011\n").futexWord ==
        std::optional<std::uint64_t>{0x7f12345678a0});
    CHECK(parseSyscallActivity("running\n").running);
    CHECK_FALSE(parseSyscallActivity("running\n").futexWord);
    CHECK_FALSE(
        parseSyscallActivity(futex + " 0x7f12345678a0 0x189 0x0 0x0 0x0 0xffffffff 0x7ffd1000 0x7f0011\n").running);
    CHECK(parseSyscallActivity("-1 0x7ffd1000 0x7f0011\n").futexWord == std::nullopt);
    CHECK(parseSyscallActivity(std::to_string(SYS_nanosleep) + " 0x7f1234 0x0 0x0 0x0 0x0 0x0 0x1 0x2\n").futexWord ==
          std::nullopt);
    CHECK(parseSyscallActivity(futex).futexWord == std::nullopt);  // cut short
    CHECK(parseSyscallActivity(futex + " 0xzz").futexWord == std::nullopt);
    CHECK(parseSyscallActivity("").futexWord == std::nullopt);
}

TEST_CASE("ThreadStatReader::activity finds the condition variable a thread sleeps on", "[thread_activity]") {
    std::mutex mutex;
    std::condition_variable cond;
    bool done = false;
    std::atomic<pid_t> tid{0};
    std::thread sleeper([&] {
        tid = static_cast<pid_t>(::syscall(SYS_gettid));
        std::unique_lock<std::mutex> lock(mutex);
        cond.wait(lock, [&] { return done; });
    });
    const auto begin = reinterpret_cast<std::uint64_t>(&cond);
    ThreadStatReader reader(::getpid());
    bool found = false;
    for (int i = 0; i < 200 && !found; ++i) {  // until the thread is asleep in the wait
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
        if (tid == 0) continue;
        auto activity = reader.activity(tid);
        REQUIRE(activity.ok());
        CHECK_FALSE(activity.value().running);
        const auto word = activity.value().futexWord;
        found = word && *word >= begin && *word < begin + sizeof cond;
    }
    {
        std::lock_guard<std::mutex> lock(mutex);
        done = true;
    }
    cond.notify_all();
    sleeper.join();
    CHECK(found);
}
