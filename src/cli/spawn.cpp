#include "pyspy/cli/spawn.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include <fmt/format.h>

#include "pyspy/common/error.h"
#include "pyspy/process/process.h"
#include "pyspy/process/process_tree.h"

extern char** environ;

namespace pyspy {

namespace {

int shellExitCode(int status) {
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return 1;
}

}  // namespace

SpawnedProgram::SpawnedProgram(const std::vector<std::string>& argv) {
    if (argv.empty()) throw FatalError(ErrorKind::Usage, "no program given after --");
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    // The child must not inherit our blocked SIGINT/SIGTERM (StopSignals): reset its mask.
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t empty;
    sigemptyset(&empty);
    posix_spawnattr_setsigmask(&attr, &empty);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
    // Orphans of the program come to us, not to init: end() finds them as descendants.
    ::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    const int rc = ::posix_spawnp(&pid_, args[0], nullptr, &attr, args.data(), environ);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) {
        pid_ = -1;
        throw FatalError(ErrorKind::Usage, fmt::format("cannot start {}: {}", argv[0], std::strerror(rc)));
    }
}

SpawnedProgram::~SpawnedProgram() {
    if (pid_ <= 0) return;
    try {
        (void)end(std::chrono::milliseconds(0));
    } catch (...) {
        // A destructor: the kill of the program itself below is what must happen.
        if (!exitCode_) {
            ::kill(pid_, SIGKILL);
            (void)wait();
        }
    }
}

std::vector<pid_t> SpawnedProgram::reapAndListDescendants() {
    int status = 0;
    for (pid_t r; (r = ::waitpid(-1, &status, WNOHANG)) > 0;) {
        if (r == pid_ && !exitCode_) exitCode_ = shellExitCode(status);
    }
    std::vector<pid_t> running;
    ProcessTree tree(::getpid());
    for (const TreeMember& member : tree.scan()) {
        const auto now = readProcessStatus(member.pid);
        if (now && now->state != 'Z' && now->startTime == member.startTime) running.push_back(member.pid);
    }
    return running;
}

int SpawnedProgram::end(std::chrono::milliseconds grace) {
    using Clock = std::chrono::steady_clock;
    constexpr std::chrono::milliseconds kPoll{20};
    constexpr std::chrono::milliseconds kAfterKill{5000};  // SIGKILL cannot be refused: a bound, not a wait
    for (const int signal : {SIGINT, SIGTERM, SIGKILL}) {
        std::vector<pid_t> running = reapAndListDescendants();
        if (running.empty()) break;
        for (const pid_t pid : running) ::kill(pid, signal);
        const auto deadline = Clock::now() + (signal == SIGKILL ? kAfterKill : grace);
        while (!running.empty() && Clock::now() < deadline) {
            std::this_thread::sleep_for(kPoll);
            running = reapAndListDescendants();
        }
    }
    return exitCode_ ? *exitCode_ : wait();
}

std::optional<int> SpawnedProgram::poll() {
    if (exitCode_) return exitCode_;
    int status = 0;
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
        exitCode_ = shellExitCode(status);
    } else if (r < 0 && errno == ECHILD) {
        // Reaped elsewhere (a ptrace wait on its main thread): the status is lost.
        exitCode_ = 0;
    }
    return exitCode_;
}

int SpawnedProgram::wait() {
    while (!exitCode_) {
        int status = 0;
        const pid_t r = ::waitpid(pid_, &status, 0);
        if (r == pid_) {
            exitCode_ = shellExitCode(status);
        } else if (r < 0 && errno != EINTR) {
            exitCode_ = 0;  // see poll()
        }
    }
    return *exitCode_;
}

std::unique_ptr<PythonProcess> SpawnedProgram::attachWhenReady(double timeoutSeconds) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeoutSeconds);
    auto delay = std::chrono::milliseconds(5);
    for (;;) {
        if (poll()) {
            throw FatalError(
                ErrorKind::TargetExited,
                fmt::format("process {} exited (status {}) before its interpreter could be read", pid_, *exitCode_));
        }
        try {
            return PythonProcess::attach(pid_);
        } catch (const FatalError& e) {
            // Still exec'ing, loading libpython, or initializing the interpreter.
            const bool starting = e.kind() == ErrorKind::NotPython || e.kind() == ErrorKind::TargetExited ||
                                  e.kind() == ErrorKind::NoSuchProcess;
            if (!starting || std::chrono::steady_clock::now() >= deadline) {
                if (poll()) {
                    throw FatalError(ErrorKind::TargetExited,
                                     fmt::format("process {} exited (status {}) before its interpreter could be read",
                                                 pid_, *exitCode_));
                }
                throw;
            }
        }
        std::this_thread::sleep_for(delay);
        delay = std::min(delay * 2, std::chrono::milliseconds(100));
    }
}

}  // namespace pyspy
