// ForkedChild: runs a function in a forked copy of the test process, with a pipe
// from the child to the test, and kills and reaps it when the test ends. The child
// never returns into Catch2: it _exits with the function's result.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstring>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "pyspy/process/process.h"

namespace pyspy::test {

// Writes a trivially copyable value to a pipe (used in children).
template <typename T>
void sendValue(int fd, const T& value) {
    const char* p = reinterpret_cast<const char*>(&value);
    std::size_t left = sizeof(T);
    while (left > 0) {
        const ssize_t n = ::write(fd, p, left);
        if (n <= 0) return;
        p += n;
        left -= static_cast<std::size_t>(n);
    }
}

class ForkedChild {
  public:
    template <typename Body>
    explicit ForkedChild(Body body) {
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
        pid_ = ::fork();
        if (pid_ < 0) throw std::runtime_error("fork failed");
        if (pid_ == 0) {
            ::close(fds[0]);
            int code = 100;
            try {
                if constexpr (std::is_void_v<decltype(body(fds[1]))>) {
                    body(fds[1]);
                    code = 0;
                } else {
                    code = body(fds[1]);
                }
            } catch (...) {
            }
            ::_exit(code);
        }
        ::close(fds[1]);
        fromChild_ = fds[0];
    }
    ForkedChild(const ForkedChild&) = delete;
    ForkedChild& operator=(const ForkedChild&) = delete;
    ~ForkedChild() {
        kill();
        ::close(fromChild_);
    }

    pid_t pid() const { return pid_; }

    // Reads one value the child sent; false on timeout or end of file.
    template <typename T>
    bool receive(T& value, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
        char* p = reinterpret_cast<char*>(&value);
        std::size_t left = sizeof(T);
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        while (left > 0) {
            const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                deadline - std::chrono::steady_clock::now());
            pollfd pfd{fromChild_, POLLIN, 0};
            if (ms.count() <= 0 || ::poll(&pfd, 1, static_cast<int>(ms.count())) <= 0) return false;
            const ssize_t n = ::read(fromChild_, p, left);
            if (n <= 0) return false;
            p += n;
            left -= static_cast<std::size_t>(n);
        }
        return true;
    }

    // Waits for the child to exit by itself and returns its wait status.
    int wait() {
        int status = 0;
        ::waitpid(pid_, &status, 0);
        pid_ = -1;
        return status;
    }

    // Waits until the exited child shows as a zombie in /proc (not reaped yet).
    bool waitUntilZombie(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        while (std::chrono::steady_clock::now() < deadline) {
            const auto stat = readThreadStat(pid_, pid_);
            if (stat.ok() && stat->state == 'Z') return true;
            ::usleep(1000);
        }
        return false;
    }

    void kill() {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            int status = 0;
            ::waitpid(pid_, &status, 0);
            pid_ = -1;
        }
    }

  private:
    pid_t pid_ = -1;
    int fromChild_ = -1;
};

// The pid of a process that has just exited and been reaped.
inline pid_t deadPid() {
    const pid_t pid = ::fork();
    if (pid == 0) ::_exit(0);
    int status = 0;
    ::waitpid(pid, &status, 0);
    return pid;
}

// Blocks a forked child forever (until the test kills it).
[[noreturn]] inline void sleepForever() {
    for (;;) ::pause();
}

}  // namespace pyspy::test
