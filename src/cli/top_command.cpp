// `pyspy-cpp top`: a live, top-like view of where a Python process spends its time.
//
// Threads: as in `record` (TreeRecording), each sampled process has a sampler thread
// (which owns its ptrace pauses) feeding one TopAggregator; the main thread owns the
// terminal: it draws a snapshot of the aggregator every --delay seconds, reads keys,
// with -s scans the process tree (TreeRecording::poll, every 50 ms at most), and takes
// SIGINT and SIGTERM synchronously (StopSignals blocks them in every thread). The
// terminal is given back by TerminalScreen's destructor on every way out.
//
// Without a terminal on stdout (or stdin) it prints one plain-text snapshot per
// refresh instead, like `top -b`; with -s each snapshot ends with the per-process table.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <exception>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "pyspy/cli/cli_common.h"
#include "pyspy/cli/commands.h"
#include "pyspy/cli/option_values.h"
#include "pyspy/cli/spawn.h"
#include "pyspy/cli/tree_recording.h"
#include "pyspy/process/process.h"
#include "pyspy/process/wait_state.h"
#include "pyspy/sampling/sampler.h"
#include "pyspy/ui/terminal.h"
#include "pyspy/ui/top_model.h"
#include "pyspy/ui/top_render.h"
#include "pyspy/ui/top_view.h"

namespace pyspy {

namespace {

using Clock = std::chrono::steady_clock;

struct TopArgs : SamplingArgs {
    double delay = 1.0;
    int iterations = 0;
    std::string view = "running";  // --view: the function table's first view (key w)
};

// The first view (--view, one of the restricted choices).
TopViewOptions initialView(const TopArgs& args) {
    TopViewOptions view;
    view.state = parseStateName(args.view).value_or(ThreadState::Running);
    return view;
}

// The longest wait between two looks at the process tree under -s: new children are
// then picked up within 100 ms (as in record).
constexpr std::chrono::milliseconds kTreeScanInterval{50};

double steadySeconds() {
    return std::chrono::duration<double>(Clock::now().time_since_epoch()).count();
}

std::optional<double> processCpuSeconds(pid_t pid) {
    if (const auto status = readProcessStatus(pid)) return status->cpuSeconds;
    return std::nullopt;
}

// Feeds one process's samples to the shared aggregator under its process index.
class ProcessSink : public SampleSink {
  public:
    ProcessSink(TopAggregator& aggregator, std::uint32_t process) : aggregator_(aggregator), process_(process) {}
    void onSample(const Sample& sample, const FrameTable& frames, const std::vector<ProfiledThread>& threads) override {
        aggregator_.onProcessSample(process_, sample, frames, threads);
    }
    std::uint32_t process() const { return process_; }

  private:
    TopAggregator& aggregator_;
    std::uint32_t process_;
};

std::chrono::milliseconds millis(double seconds) {
    return std::chrono::milliseconds(static_cast<long long>(seconds * 1000));
}

// The sampler's one-off warning (falling behind), shown in the status line for a while.
struct Warning {
    static constexpr std::chrono::seconds kShownFor{10};
    std::mutex mutex;
    std::string text;
    Clock::time_point when;
    void set(const std::string& message, const char* kind = "warning: ") {
        std::lock_guard lock(mutex);
        text = kind + message;
        when = Clock::now();
    }
    std::string get() {
        std::lock_guard lock(mutex);
        return Clock::now() - when < kShownFor ? text : std::string();
    }
};

// The version of the first process sampled, set from a sampler thread: the header's
// version when the root is not Python.
class FirstPythonVersion {
  public:
    void offer(const std::string& version) {
        std::lock_guard lock(mutex_);
        if (version_.empty()) version_ = version;
    }
    std::string get() {
        std::lock_guard lock(mutex_);
        return version_;
    }

  private:
    std::mutex mutex_;
    std::string version_;
};

struct TopSession {
    const TopArgs& args;
    StopSignals& signals;
    TopAggregator& aggregator;
    TreeRecording& recording;
    Warning& warning;
    FirstPythonVersion& firstPython;
    TopHeader header;
    std::optional<double> pythonWait;
    Clock::time_point started = Clock::now();
    TopCpuMeter cpu;

    void refreshHeader() {
        if (header.pythonVersion.empty()) header.pythonVersion = firstPython.get();
        header.samples = recording.ticksSoFar();
        header.errors = recording.errorsSoFar();
        header.elapsedSeconds = std::chrono::duration<double>(Clock::now() - started).count();
    }
    // Whether every sampler has ended (the target exited; with -s, the whole tree); with
    // -s it also starts samplers for the children that appeared since the last call.
    // Under a root that is not Python, throws when no Python process came in time.
    bool ended() {
        const bool over = !recording.poll();
        recording.checkPythonFound(pythonWait, over);
        return over;
    }
    // A snapshot that ends the interval, with the processes' CPU shares measured.
    TopSnapshot nextSnapshot() {
        TopSnapshot snapshot = aggregator.snapshot(true);
        cpu.measure(snapshot, steadySeconds(), processCpuSeconds);
        return snapshot;
    }
    std::string exitedMessage() const {
        return args.subprocesses ? fmt::format("Process {} and its descendants exited", header.pid)
                                 : fmt::format("Process {} exited", header.pid);
    }
    std::string samplerWarning() { return warning.get(); }
};

// Plain-text snapshots on stdout.
void runText(TopSession& s) {
    const TopViewOptions view = initialView(s.args);
    TopRenderOptions render;
    render.fullFilenames = s.args.fullFilenames;
    auto next = Clock::now() + millis(s.args.delay);
    for (int iteration = 0; s.args.iterations <= 0 || iteration < s.args.iterations;) {
        const auto now = Clock::now();
        if (s.ended()) {
            if (s.recording.rootFailure()) return;
            std::printf("%s\n", s.exitedMessage().c_str());
            std::fflush(stdout);
            return;
        }
        if (now < next) {
            const auto wait = std::min(
                std::chrono::duration_cast<std::chrono::milliseconds>(next - now) + std::chrono::milliseconds(1),
                kTreeScanInterval);
            if (s.signals.wait(wait) != 0) return;
            continue;
        }
        next += millis(s.args.delay);
        if (next < now) next = now + millis(s.args.delay);
        const TopSnapshot snapshot = s.nextSnapshot();
        s.refreshHeader();
        s.header.status = s.samplerWarning();
        std::string out;
        for (const TopLine& line : renderTop(snapshot, s.header, view, render)) {
            if (line.text.empty() && line.style != TopStyle::Status) continue;
            out += line.text;
            out += '\n';
        }
        if (s.args.subprocesses) {
            // Without a terminal there is no P key: the per-process table follows.
            out += "Processes:\n";
            for (const TopLine& line : renderTopProcesses(snapshot, view, render)) {
                out += line.text;
                out += '\n';
            }
        }
        out += '\n';
        std::fwrite(out.data(), 1, out.size(), stdout);
        std::fflush(stdout);
        ++iteration;
    }
}

// The live view on the terminal.
void runTerminal(TopSession& s, TerminalScreen& screen) {
    TopViewState state;
    state.view = initialView(s.args);
    TopRenderOptions render;
    render.fullFilenames = s.args.fullFilenames;
    TopSnapshot shown = s.aggregator.snapshot(false);
    bool exited = false;
    int iterations = 0;
    auto next = Clock::now() + millis(s.args.delay);

    const auto draw = [&] {
        render.width = screen.width();
        render.height = screen.height();
        if (state.help) {
            screen.draw(renderTopHelp(render));
            return;
        }
        s.refreshHeader();
        if (exited) {
            s.header.status = s.exitedMessage() + ": press any key to quit";
        } else if (state.paused) {
            s.header.status = "Display paused (sampling continues): press p to resume";
        } else {
            s.header.status = s.samplerWarning();
        }
        screen.draw(renderTop(shown, s.header, state.view, render));
    };
    draw();

    while (true) {
        if (s.signals.wait(std::chrono::milliseconds(0)) != 0) return;
        const int key = screen.readKey(std::chrono::milliseconds(50));
        if (key == TerminalScreen::kResize) {
            draw();
        } else if (key != TerminalScreen::kNoKey) {
            if (exited) return;  // any key, once the target is gone
            const bool redraw = applyTopKey(state, key);
            if (state.quit) return;
            if (redraw) draw();
        }
        if (exited) continue;
        if (s.ended()) {
            if (s.recording.rootFailure()) return;
            exited = true;
            state.help = false;
            draw();
            continue;
        }
        const auto now = Clock::now();
        if (now >= next) {
            next += millis(s.args.delay);
            if (next < now) next = now + millis(s.args.delay);
            TopSnapshot snapshot = s.nextSnapshot();
            // An interval without a tick (the target just died, or the machine is
            // overloaded) keeps the last one on screen rather than an empty table.
            if (snapshot.interval.ticks == 0) snapshot.interval = shown.interval;
            if (!state.paused) shown = std::move(snapshot);
            draw();
            if (s.args.iterations > 0 && ++iterations >= s.args.iterations) return;
        }
    }
}

int runTop(const TopArgs& args) {
    StopSignals signals;  // before any thread starts, so all inherit the blocked mask
    std::optional<SpawnedProgram> program;
    std::unique_ptr<PythonProcess> process;
    const TreeRecording::Root root = attachSamplingTarget(args, program, process);

    SamplerOptions options = samplerOptions(args);
    options.lineNumbers = true;  // the `l` key aggregates by function in the view
    options.aggregateByFunction = false;

    TopAggregator aggregator(options);
    TopHeader header;
    header.pid = root.pid;
    header.rateHz = options.rateHz;
    if (process) {
        header.commandLine = process->commandLine();
        header.pythonVersion = process->target().version.toString();
        header.freeThreaded = !process->gilEnabled();  // a free-threaded build that has not turned its GIL on
    } else {
        header.commandLine = readCommandLine(root.pid);  // its descendants' version: once one is sampled
    }
    FirstPythonVersion firstPython;

    // The screen opens before the sampler thread starts and closes after it is joined.
    std::unique_ptr<TerminalScreen> screen = TerminalScreen::open();
    Warning warning;
    std::mutex stderrMutex;
    // Notes (a child that is not Python) go to the status line on a terminal, else to stderr.
    const auto note = [&](const std::string& message) {
        if (screen) {
            warning.set(message, "note: ");
        } else {
            std::lock_guard lock(stderrMutex);
            std::fprintf(stderr, "%s: note: %s\n", kProgram, message.c_str());
        }
    };
    TreeRecording::ProcessSinks sinks;
    sinks.open = [&](PythonProcess& p) -> std::unique_ptr<SampleSink> {
        firstPython.offer(p.target().version.toString());
        const double now = steadySeconds();
        const std::uint32_t index =
            aggregator.addProcess(p.pid(), p.commandLine(), processCpuSeconds(p.pid()).value_or(0), now);
        return std::make_unique<ProcessSink>(aggregator, index);
    };
    sinks.ended = [&aggregator](SampleSink& sink) {
        aggregator.processEnded(static_cast<ProcessSink&>(sink).process());
    };
    TreeRecording recording(
        root, options, args.subprocesses, sinks, [&warning](const std::string& message) { warning.set(message); },
        note);
    recording.start();
    TopSession session{
        args, signals, aggregator, recording, warning, firstPython, header, pythonWaitSeconds(args), Clock::now(), {}};
    if (screen) {
        runTerminal(session, *screen);
    } else {
        runText(session);
    }
    recording.stop();
    recording.join();
    screen.reset();  // the terminal is back before anything is printed below
    if (recording.rootFailure()) std::rethrow_exception(recording.rootFailure());
    if (program) {
        // A program we started ends with us (q, Ctrl-C, --iterations), and so does
        // whatever it started: SIGINT, then SIGTERM and SIGKILL after 2 s each. Its own
        // exit status when it ended by itself, else 0.
        const int status = program->end(std::chrono::milliseconds(2000));
        return recording.rootStats().targetExited ? status : 0;
    }
    return 0;
}

}  // namespace

Command addTopCommand(CLI::App& app) {
    auto args = std::make_shared<TopArgs>();
    auto* cmd = app.add_subcommand("top", "Live view of the functions a Python process spends its time in");
    addSamplingOptions(*cmd, *args, "A program to start and watch (after --)",
                       "Also sample every Python descendant of the target (key P: one row per process); a target "
                       "that is not Python (a shell script, a wrapper) is accepted: its Python descendants are "
                       "sampled");
    cmd->add_option("-d,--delay", args->delay, "Seconds between refreshes")
        ->check(CLI::Range(0.05, 3600.0))
        ->capture_default_str();
    cmd->add_option("--iterations", args->iterations, "End after this many refreshes (default: until q)")
        ->check(CLI::NonNegativeNumber);
    std::vector<std::string> views;
    for (std::size_t i = 0; i < kThreadStateCount; ++i) views.emplace_back(stateName(static_cast<ThreadState>(i)));
    restrictToChoices(cmd->add_option("--view", args->view,
                                      "The function table's first view: running (functions of running threads), "
                                      "or a wait state: the functions where threads wait for the GIL, on a lock, "
                                      "on I/O, sleep, wait for a child process, or in another system call (key w)"),
                      views)
        ->capture_default_str();
    return Command{cmd, [args] { return runTop(*args); }};
}

}  // namespace pyspy
