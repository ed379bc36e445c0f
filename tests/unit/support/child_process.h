// ChildProcess: a test helper that starts a real program (a Python target, `sleep`,
// ...) with its stdout on a pipe, waits for its ready line, and kills and reaps it
// when the test ends, so no test leaves a process behind. The child leads its own
// process group and the whole group is killed: a shell's children (`sh -c 'echo ready;
// sleep 30'` forks its sleep) would otherwise outlive the test holding ctest's output
// pipe, and ctest waits for that pipe to close.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

extern char** environ;

namespace pyspy::test {

class ChildProcess {
  public:
    explicit ChildProcess(const std::vector<std::string>& argv) {
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
        posix_spawnattr_t attributes;
        posix_spawnattr_init(&attributes);
        posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETPGROUP);
        posix_spawnattr_setpgroup(&attributes, 0);
        std::vector<char*> args;
        for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
        args.push_back(nullptr);
        const int rc = ::posix_spawnp(&pid_, args[0], &actions, &attributes, args.data(), environ);
        posix_spawnattr_destroy(&attributes);
        posix_spawn_file_actions_destroy(&actions);
        ::close(fds[1]);
        stdout_ = fds[0];
        if (rc != 0) {
            ::close(stdout_);
            throw std::runtime_error("cannot start " + argv[0]);
        }
    }
    ChildProcess(const ChildProcess&) = delete;
    ChildProcess& operator=(const ChildProcess&) = delete;
    ~ChildProcess() {
        kill();
        if (stdout_ >= 0) ::close(stdout_);
    }

    pid_t pid() const { return pid_; }

    // The next line of the child's stdout (without the newline), or nothing on
    // timeout or end of file.
    std::optional<std::string> readLine(std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        for (;;) {
            if (auto pos = buffer_.find('\n'); pos != std::string::npos) {
                std::string line = buffer_.substr(0, pos);
                buffer_.erase(0, pos + 1);
                return line;
            }
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0) return std::nullopt;
            pollfd pfd{stdout_, POLLIN, 0};
            if (::poll(&pfd, 1, static_cast<int>(left.count())) <= 0) return std::nullopt;
            char chunk[4096];
            const ssize_t n = ::read(stdout_, chunk, sizeof chunk);
            if (n <= 0) return std::nullopt;
            buffer_.append(chunk, static_cast<std::size_t>(n));
        }
    }

    // Reads lines until one starts with `prefix`; returns the rest of that line.
    std::optional<std::string> waitFor(const std::string& prefix,
                                       std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        while (std::chrono::steady_clock::now() < deadline) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
            auto line = readLine(left);
            if (!line) return std::nullopt;
            if (line->rfind(prefix, 0) == 0) return line->substr(prefix.size());
        }
        return std::nullopt;
    }

    void kill() {
        if (pid_ > 0) {
            ::kill(-pid_, SIGKILL);  // the group: the child and anything it started
            int status = 0;
            ::waitpid(pid_, &status, 0);
            pid_ = -1;
        }
    }

  private:
    pid_t pid_ = -1;
    int stdout_ = -1;
    std::string buffer_;
};

// The interpreter under test (ctest sets PYSPY_TEST_PYTHON for [interp] tests), or
// the default python3 when a developer runs a test binary by hand.
inline std::string testPython() {
    const char* p = std::getenv("PYSPY_TEST_PYTHON");
    return p != nullptr ? std::string(p) : std::string("python3");
}

}  // namespace pyspy::test
