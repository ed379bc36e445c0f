// parseFutexWait: the futex address of a thread blocked in futex(2), from the text of
// /proc/PID/task/TID/syscall; and futexWaitAddress on a live thread of this process.
#include <catch2/catch.hpp>

#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include "pyspy/process/futex_wait.h"

using namespace pyspy;

TEST_CASE("parseFutexWait takes the first argument of futex only", "[futex_wait]") {
    const std::string futex = std::to_string(SYS_futex);
    CHECK(parseFutexWait(futex + " 0x7f12345678a0 0x189 0x0 0x0 0x0 0xffffffff 0x7ffd1000 0x7f0011\n") ==
          std::optional<std::uint64_t>{0x7f12345678a0});
    CHECK(parseFutexWait("running\n") == std::nullopt);
    CHECK(parseFutexWait("-1 0x7ffd1000 0x7f0011\n") == std::nullopt);
    CHECK(parseFutexWait(std::to_string(SYS_nanosleep) + " 0x7f1234 0x0 0x0 0x0 0x0 0x0 0x1 0x2\n") == std::nullopt);
    CHECK(parseFutexWait(futex) == std::nullopt);  // cut short
    CHECK(parseFutexWait(futex + " 0xzz") == std::nullopt);
    CHECK(parseFutexWait("") == std::nullopt);
}

TEST_CASE("futexWaitAddress finds the condition variable a thread sleeps on", "[futex_wait]") {
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
    bool found = false;
    for (int i = 0; i < 200 && !found; ++i) {  // until the thread is asleep in the wait
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
        if (tid == 0) continue;
        auto wait = futexWaitAddress(::getpid(), tid);
        REQUIRE(wait.ok());
        found = wait.value() && *wait.value() >= begin && *wait.value() < begin + sizeof cond;
    }
    {
        std::lock_guard<std::mutex> lock(mutex);
        done = true;
    }
    cond.notify_all();
    sleeper.join();
    CHECK(found);
}
