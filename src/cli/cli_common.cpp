#include "pyspy/cli/cli_common.h"

#include <unistd.h>

#include <ctime>

#include <fmt/format.h>

namespace pyspy {

void dieNow(ErrorKind kind, const std::string& message) {
    const std::string line = fmt::format("{}: error: {}\n", kProgram, message);
    (void)!::write(STDERR_FILENO, line.data(), line.size());
    ::_exit(exitCode(kind));
}

Watchdog::Watchdog(double seconds) {
    if (seconds <= 0) return;
    thread_ = std::thread([this, seconds] {
        std::unique_lock lock(mutex_);
        if (!cv_.wait_for(lock, std::chrono::duration<double>(seconds), [this] { return done_; })) {
            dieNow(ErrorKind::Timeout, fmt::format("gave up after {} s (use --timeout to wait longer)", seconds));
        }
    });
}

Watchdog::~Watchdog() {
    {
        std::lock_guard lock(mutex_);
        done_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
}

StopSignals::StopSignals() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, &oldMask_);
}

StopSignals::~StopSignals() {
    // Drop a signal still pending from the stop, so restoring the mask does not kill us.
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    const timespec zero{0, 0};
    while (sigtimedwait(&set, nullptr, &zero) > 0) {
    }
    pthread_sigmask(SIG_SETMASK, &oldMask_, nullptr);
}

int StopSignals::wait(std::chrono::milliseconds timeout) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(timeout).count();
    const timespec ts{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
    const int sig = sigtimedwait(&set, nullptr, &ts);
    return sig > 0 ? sig : 0;
}

}  // namespace pyspy
