// Helpers shared by the commands: the program name, one-line errors, the watchdog,
// and signal handling for commands that run until Ctrl-C.
#pragma once

#include <signal.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "pyspy/cli/spawn.h"
#include "pyspy/cli/tree_recording.h"
#include "pyspy/common/error.h"
#include "pyspy/sampling/sampler.h"

namespace CLI {
class App;
}

namespace pyspy {

inline constexpr const char* kProgram = "pyspy-cpp";

// Writes "pyspy-cpp: error: MESSAGE" with write(2) and _exits: safe from any thread,
// also while a target is paused (the kernel detaches a dying tracer's tracees).
[[noreturn]] void dieNow(ErrorKind kind, const std::string& message);

// Ends the process if the command outlives its bound (seconds <= 0: no bound).
class Watchdog {
  public:
    explicit Watchdog(double seconds);
    ~Watchdog();
    Watchdog(const Watchdog&) = delete;
    Watchdog& operator=(const Watchdog&) = delete;

  private:
    std::mutex mutex_;
    std::condition_variable cv_;
    bool done_ = false;
    std::thread thread_;
};

// The options every sampling command (record, top) shares, with py-spy's names.
struct SamplingArgs {
    pid_t pid = 0;
    std::vector<std::string> program;  // -- PROGRAM ARGS
    double rate = 100;
    bool nonblocking = false;
    bool gil = false;
    bool idle = false;
    bool fullFilenames = false;
    bool native = false;                   // --native
    bool nativeAll = false;                // --native-all (implies --native)
    std::vector<std::string> threadNames;  // --thread-name REGEX (repeatable)
    std::vector<pid_t> tids;               // --tid TID (repeatable)
    bool subprocesses = false;             // -s
    std::optional<double> waitSeconds;     // --wait-for-python: for the first Python process under a root that is not
};

// How long `-s` waits for the first Python process under a --pid root that is not
// Python when --wait-for-python is not given (a program started with -- PROGRAM: its whole life).
inline constexpr double kDefaultPythonWaitSeconds = 10.0;

// Registers --pid, the positional program, --rate, --nonblocking, --gil, --idle,
// --full-filenames, --native, --native-all, --thread-name, --tid, -s (with its help
// text) and --wait-for-python on `cmd`, bound to `args` (which must outlive parsing).
void addSamplingOptions(CLI::App& cmd, SamplingArgs& args, const char* programHelp, const char* subprocessesHelp);

// Checks that exactly one of --pid and -- PROGRAM was given, that --native comes
// without --nonblocking and that every --thread-name is a regex (FatalError(Usage)), then
// attaches to the pid, or starts the program and attaches once its interpreter is up.
// Under -s a root that is not Python is accepted (`process` stays empty; the note says
// so on stderr), and so is a started program whose executable is not named python (the
// recording attaches it later if it turns out to be Python). Create StopSignals first,
// so the sampler thread started later inherits the mask.
TreeRecording::Root attachSamplingTarget(const SamplingArgs& args, std::optional<SpawnedProgram>& program,
                                         std::unique_ptr<PythonProcess>& process);

// The --wait-for-python bound for TreeRecording::checkPythonFound: --wait-for-python, else the default for a
// --pid root, none for a program (it is waited for as long as it runs).
std::optional<double> pythonWaitSeconds(const SamplingArgs& args);

// Attaches to `pid` (PythonProcess::attach). A process that is not Python gets an error
// that suggests -s when one of its descendants is Python.
std::unique_ptr<PythonProcess> attachOrSuggestSubprocesses(pid_t pid, const LocateOptions& locate = {});

// "process N (COMMAND) is not Python; profiling its Python descendants": said once when
// -s accepts a root that is not Python (`verb`: what is done with the descendants).
std::string notPythonRootNote(pid_t pid, const std::string& command, const char* verb = "profiling");

// The sampler options the shared arguments decide (rate, pause, --gil, --idle, --native,
// the thread filter).
SamplerOptions samplerOptions(const SamplingArgs& args);

// Blocks `signals` in the calling thread from construction on (threads started later
// inherit the mask) and restores the thread's old mask when destroyed: a signal still
// pending then is delivered at that point.
class BlockedSignals {
  public:
    explicit BlockedSignals(std::initializer_list<int> signals);
    explicit BlockedSignals(const sigset_t& signals);
    ~BlockedSignals();
    BlockedSignals(const BlockedSignals&) = delete;
    BlockedSignals& operator=(const BlockedSignals&) = delete;

  private:
    sigset_t oldMask_{};
};

// Holds back Ctrl-Z (SIGTSTP) in a command that pauses its target from the calling
// thread without polling for signals (dump): a stop asked for meanwhile takes effect
// when this is destroyed, after every pause has ended. Create it before any thread.
class DeferredJobStop : BlockedSignals {
  public:
    DeferredJobStop() : BlockedSignals({SIGTSTP}) {}
};

// Blocks SIGINT, SIGTERM and SIGTSTP in the calling thread (call it before starting
// threads, so they inherit the mask) and restores the old mask when destroyed. The
// owner polls with wait(): the signals are then taken synchronously, never run as
// handlers in the middle of a ptrace pause or an output write. A Ctrl-Z (SIGTSTP) is
// carried out inside wait() once no target is paused (pause_gate.h), so a stopped
// pyspy-cpp never holds its target stopped.
// `requests` are further signals taken the same way and returned by wait() (record's
// SIGUSR1: write the profile so far), so they never end the process.
class StopSignals {
  public:
    explicit StopSignals(std::initializer_list<int> requests = {});
    ~StopSignals();  // drops a signal still pending, so restoring the mask does not act on it

    // Waits up to `timeout` for SIGINT/SIGTERM or a request; returns the signal number,
    // or 0 (also early, after a job-control stop and continue).
    int wait(std::chrono::milliseconds timeout);

  private:
    sigset_t set_;
    BlockedSignals blocked_;
};

}  // namespace pyspy
