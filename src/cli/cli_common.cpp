#include "pyspy/cli/cli_common.h"

#include <unistd.h>

#include <array>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <span>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "pyspy/cli/option_values.h"
#include "pyspy/process/pause_gate.h"
#include "pyspy/process/process.h"
#include "pyspy/process/process_tree.h"

namespace pyspy {

void dieNow(ErrorKind kind, const std::string& message) {
    const std::string line = fmt::format("{}: error: {}\n", kProgram, message);
    (void)!::write(STDERR_FILENO, line.data(), line.size());
    ::_exit(exitCode(kind));
}

void addSamplingOptions(CLI::App& cmd, SamplingArgs& args, const char* programHelp, const char* subprocessesHelp) {
    cmd.add_option("-p,--pid", args.pid, "Process id of the target")->check(CLI::PositiveNumber)->type_name(kPidValue);
    cmd.add_option("program", args.program, programHelp)->type_name(kCommandValue);
    cmd.add_option("-r,--rate", args.rate, "Samples per second")
        ->check(CLI::Range(0.1, 100000.0))
        ->capture_default_str();
    cmd.add_flag("-n,--nonblocking", args.nonblocking, "Do not pause the target while sampling");
    cmd.add_flag("-g,--gil", args.gil, "Only threads holding the GIL");
    cmd.add_flag("-i,--idle", args.idle, "Include idle threads");
    cmd.add_flag("--full-filenames", args.fullFilenames, "Show full paths instead of short names");
    cmd.add_flag("--native", args.native,
                 "Also sample native (C/C++) frames, merged with the Python frames (docs/native.md)");
    cmd.add_flag("--native-all", args.nativeAll,
                 "Like --native, and keep the interpreter's own native frames (PyObject_Call, ...)");
    cmd.add_option("--thread-name", args.threadNames,
                   "Only threads whose name matches this regular expression (repeatable; with --tid: either)")
        ->allow_extra_args(false);
    cmd.add_option("--tid", args.tids, "Only the thread with this OS thread id (repeatable)")
        ->check(CLI::PositiveNumber)
        ->allow_extra_args(false);
    cmd.add_flag("-s,--subprocesses", args.subprocesses, subprocessesHelp);
    cmd.add_option("--wait-for-python", args.waitSeconds,
                   "With -s and a target that is not Python: seconds to wait for its first Python descendant "
                   "(default: 10 for --pid, as long as the program runs for -- PROGRAM)")
        ->check(CLI::NonNegativeNumber)
        ->type_name("SECONDS");
}

std::string notPythonRootNote(pid_t pid, const std::string& command, const char* verb) {
    return fmt::format("process {} ({}) is not Python; {} its Python descendants", pid, command, verb);
}

namespace {

// The first descendant of `pid` that is Python, for the hint of an error; bounded (it
// runs on an error path, and each look is an attach).
std::optional<pid_t> firstPythonDescendant(pid_t pid) {
    constexpr std::size_t kMaxLooks = 32;
    try {
        ProcessTree tree(pid);
        std::size_t looks = 0;
        for (const TreeMember& member : tree.scan()) {
            if (member.pid == pid) continue;
            if (++looks > kMaxLooks) break;
            try {
                (void)PythonProcess::attach(member.pid);
                return member.pid;
            } catch (const FatalError&) {
                // not Python (or gone): look further
            }
        }
    } catch (const FatalError&) {
        // the root itself is gone: no hint
    }
    return std::nullopt;
}

// Runs `attach`; a NotPython error from it gains a hint when `pid` has a Python descendant.
template <typename Attach>
auto attachWithSubprocessesHint(pid_t pid, Attach attach) {
    try {
        return attach();
    } catch (const FatalError& e) {
        if (e.kind() != ErrorKind::NotPython) throw;
        const std::optional<pid_t> python = firstPythonDescendant(pid);
        if (!python) throw;
        throw FatalError(ErrorKind::NotPython,
                         fmt::format("{}; its descendant process {} ({}) is Python: add -s (--subprocesses) to include "
                                     "it",
                                     e.what(), *python, readCommandLine(*python)));
    }
}

}  // namespace

std::unique_ptr<PythonProcess> attachOrSuggestSubprocesses(pid_t pid, const LocateOptions& locate) {
    return attachWithSubprocessesHint(pid, [&] { return PythonProcess::attach(pid, locate); });
}

std::optional<double> pythonWaitSeconds(const SamplingArgs& args) {
    if (args.waitSeconds) return args.waitSeconds;
    if (args.program.empty()) return kDefaultPythonWaitSeconds;
    return std::nullopt;
}

TreeRecording::Root attachSamplingTarget(const SamplingArgs& args, std::optional<SpawnedProgram>& program,
                                         std::unique_ptr<PythonProcess>& process) {
    const bool hasProgram = !args.program.empty();
    (void)ThreadFilter(args.threadNames, args.tids);  // a bad regex is a usage error, before any attach
    if ((args.native || args.nativeAll) && args.nonblocking) {
        throw FatalError(ErrorKind::Usage,
                         "--native needs the target paused: it cannot be combined with --nonblocking");
    }
    if (hasProgram == (args.pid > 0)) {
        throw FatalError(ErrorKind::Usage, "give either --pid PID or -- PROGRAM ARGS..., not both or neither");
    }
    if (args.waitSeconds && !args.subprocesses) {
        throw FatalError(ErrorKind::Usage,
                         "--wait-for-python needs -s: it bounds the wait for the target's first Python "
                         "descendant when the target is not Python");
    }
    if (hasProgram) {
        program.emplace(args.program);
        // posix_spawn returns once the program has exec'd: its executable is known. One not
        // named python may still load libpython (an embedding program): the recording
        // tries it as it tries a new child, and else profiles its Python descendants.
        if (args.subprocesses && readExecutablePath(program->pid()).find("python") == std::string::npos) {
            return TreeRecording::Root{program->pid(), nullptr, true};
        }
        const pid_t pid = program->pid();
        process = attachWithSubprocessesHint(pid, [&] { return program->attachWhenReady(); });
    } else if (args.subprocesses) {
        try {
            process = PythonProcess::attach(args.pid);
        } catch (const FatalError& e) {
            if (e.kind() != ErrorKind::NotPython) throw;
            std::fprintf(stderr, "%s: note: %s\n", kProgram,
                         notPythonRootNote(args.pid, readCommandLine(args.pid)).c_str());
            return TreeRecording::Root{args.pid, nullptr, false};
        }
    } else {
        process = attachOrSuggestSubprocesses(args.pid);
    }
    if (args.gil && !process->gilEnabled()) {
        throw FatalError(ErrorKind::Usage,
                         fmt::format("--gil: process {} runs a free-threaded Python {}, which has no GIL; sample "
                                     "without --gil (threads running Python code are active)",
                                     process->pid(), process->target().version.toString()));
    }
    return TreeRecording::Root{process->pid(), process.get(), false};
}

SamplerOptions samplerOptions(const SamplingArgs& args) {
    SamplerOptions options;
    options.rateHz = args.rate;
    options.pause = !args.nonblocking;
    options.gilOnly = args.gil;
    options.includeIdle = args.idle;
    options.native = args.native || args.nativeAll;
    options.nativeAll = args.nativeAll;
    options.threads = ThreadFilter(args.threadNames, args.tids);
    return options;
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

namespace {

sigset_t signalSet(std::span<const int> signals) {
    sigset_t set;
    sigemptyset(&set);
    for (const int sig : signals) sigaddset(&set, sig);
    return set;
}

// The signals StopSignals blocks and takes synchronously: the two that stop a run, and Ctrl-Z.
sigset_t stopSignalSet() {
    static constexpr std::array kStopSignals{SIGINT, SIGTERM, SIGTSTP};
    return signalSet(kStopSignals);
}

// Ctrl-Z: stop this process the way SIGTSTP's own disposition would (the default
// action, or the handler ncurses installs for `top`, which restores the terminal
// first), but only once no target is held in a pause: new pauses are refused and the
// ones in flight end first (at most one pause timeout, 2 s). Runs on the thread that
// owns StopSignals; the signal is unblocked in this thread only, so it is taken here.
void stopForJobControl() {
    (void)pause_gate::closeAndDrain(std::chrono::milliseconds(5000));
    const sigset_t tstp = signalSet(std::array{SIGTSTP});
    pthread_sigmask(SIG_UNBLOCK, &tstp, nullptr);
    ::raise(SIGTSTP);  // stops here until SIGCONT (ignored if our process group is orphaned)
    pthread_sigmask(SIG_BLOCK, &tstp, nullptr);
    pause_gate::open();
}

}  // namespace

BlockedSignals::BlockedSignals(std::initializer_list<int> signals)
    : BlockedSignals(signalSet(std::span<const int>(signals.begin(), signals.size()))) {}

BlockedSignals::BlockedSignals(const sigset_t& signals) {
    pthread_sigmask(SIG_BLOCK, &signals, &oldMask_);
}

BlockedSignals::~BlockedSignals() {
    pthread_sigmask(SIG_SETMASK, &oldMask_, nullptr);
}

namespace {

sigset_t stopAndRequestSet(std::initializer_list<int> requests) {
    sigset_t set = stopSignalSet();
    for (int signal : requests) sigaddset(&set, signal);
    return set;
}

}  // namespace

StopSignals::StopSignals(std::initializer_list<int> requests) : set_(stopAndRequestSet(requests)), blocked_(set_) {}

StopSignals::~StopSignals() {
    const timespec zero{0, 0};
    while (sigtimedwait(&set_, nullptr, &zero) > 0) {
    }
}

int StopSignals::wait(std::chrono::milliseconds timeout) {
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(timeout).count();
    const timespec ts{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
    const int sig = sigtimedwait(&set_, nullptr, &ts);
    if (sig == SIGTSTP) {
        stopForJobControl();
        return 0;
    }
    return sig > 0 ? sig : 0;
}

}  // namespace pyspy
