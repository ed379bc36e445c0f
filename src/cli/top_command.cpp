// `pyspy-cpp top`: a live, top-like view of where a Python process spends its time.
//
// Threads: as in `record`, the sampler runs on its own thread (which owns every ptrace
// pause) and feeds a TopAggregator; the main thread owns the terminal: it draws a
// snapshot of the aggregator every --delay seconds, reads keys, and takes SIGINT and
// SIGTERM synchronously (StopSignals blocks them in every thread). The terminal is
// given back by TerminalScreen's destructor on every way out.
//
// Without a terminal on stdout (or stdin) it prints one plain-text snapshot per
// refresh instead, like `top -b`.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <exception>
#include <mutex>
#include <optional>
#include <thread>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "pyspy/cli/cli_common.h"
#include "pyspy/cli/commands.h"
#include "pyspy/cli/spawn.h"
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
};

std::chrono::milliseconds millis(double seconds) {
    return std::chrono::milliseconds(static_cast<long long>(seconds * 1000));
}

// The sampler on its own thread; stops and joins when destroyed.
class SamplerThread {
  public:
    SamplerThread(Sampler& sampler, SampleSink& sink, std::function<void(const std::string&)> warn)
        : sampler_(sampler) {
        thread_ = std::thread([this, &sink, warn = std::move(warn)] {
            try {
                stats_ = sampler_.run(sink, stop_, warn);
                if (stats_.failure) failure_ = stats_.failure;
            } catch (...) {
                failure_ = std::current_exception();
            }
            done_.store(true);
        });
    }
    ~SamplerThread() { join(); }
    SamplerThread(const SamplerThread&) = delete;
    SamplerThread& operator=(const SamplerThread&) = delete;

    bool done() const { return done_.load(); }
    void join() {
        stop_.store(true);
        if (thread_.joinable()) thread_.join();
    }
    // After join() or done(): how it ended.
    const SamplerStats& stats() const { return stats_; }
    std::exception_ptr failure() const { return failure_; }

  private:
    Sampler& sampler_;
    std::atomic<bool> stop_{false};
    std::atomic<bool> done_{false};
    SamplerStats stats_;
    std::exception_ptr failure_;
    std::thread thread_;
};

// The sampler's one-off warning (falling behind), shown in the status line for a while.
struct Warning {
    static constexpr std::chrono::seconds kShownFor{10};
    std::mutex mutex;
    std::string text;
    Clock::time_point when;
    void set(const std::string& message) {
        std::lock_guard lock(mutex);
        text = "warning: " + message;
        when = Clock::now();
    }
    std::string get() {
        std::lock_guard lock(mutex);
        return Clock::now() - when < kShownFor ? text : std::string();
    }
};

struct TopSession {
    const TopArgs& args;
    StopSignals& signals;
    TopAggregator& aggregator;
    Sampler& sampler;
    SamplerThread& worker;
    Warning& warning;
    TopHeader header;
    Clock::time_point started = Clock::now();

    void refreshHeader() {
        header.samples = sampler.ticksSoFar();
        header.errors = sampler.errorsSoFar();
        header.elapsedSeconds = std::chrono::duration<double>(Clock::now() - started).count();
    }
    std::string exitedMessage() const { return fmt::format("Process {} exited", header.pid); }
    std::string samplerWarning() { return warning.get(); }
};

// Plain-text snapshots on stdout.
void runText(TopSession& s) {
    TopViewOptions view;
    TopRenderOptions render;
    render.fullFilenames = s.args.fullFilenames;
    auto next = Clock::now() + millis(s.args.delay);
    for (int iteration = 0; s.args.iterations <= 0 || iteration < s.args.iterations;) {
        const auto now = Clock::now();
        if (s.worker.done()) {
            if (s.worker.failure()) return;
            std::printf("%s\n", s.exitedMessage().c_str());
            std::fflush(stdout);
            return;
        }
        if (now < next) {
            const auto wait = std::min(std::chrono::duration_cast<std::chrono::milliseconds>(next - now) +
                                           std::chrono::milliseconds(1),
                                       std::chrono::milliseconds(100));
            if (s.signals.wait(wait) != 0) return;
            continue;
        }
        next += millis(s.args.delay);
        if (next < now) next = now + millis(s.args.delay);
        const TopSnapshot snapshot = s.aggregator.snapshot(true);
        s.refreshHeader();
        s.header.status = s.samplerWarning();
        std::string out;
        for (const TopLine& line : renderTop(snapshot, s.header, view, render)) {
            if (line.text.empty() && line.style != TopStyle::Status) continue;
            out += line.text;
            out += '\n';
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
        if (s.worker.done()) {
            if (s.worker.failure()) return;
            exited = true;
            state.help = false;
            draw();
            continue;
        }
        const auto now = Clock::now();
        if (now >= next) {
            next += millis(s.args.delay);
            if (next < now) next = now + millis(s.args.delay);
            TopSnapshot snapshot = s.aggregator.snapshot(true);
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
    attachSamplingTarget(args, program, process);

    SamplerOptions options = samplerOptions(args);
    options.lineNumbers = true;  // the `l` key aggregates by function in the view
    options.aggregateByFunction = false;

    TopAggregator aggregator(options);
    Sampler sampler(*process, options);
    TopHeader header;
    header.pid = process->pid();
    header.commandLine = process->commandLine();
    header.pythonVersion = process->target().version.toString();
    header.rateHz = options.rateHz;

    // The screen opens before the sampler thread starts and closes after it is joined.
    std::unique_ptr<TerminalScreen> screen = TerminalScreen::open();
    Warning warning;
    SamplerThread worker(sampler, aggregator, [&warning](const std::string& message) { warning.set(message); });
    TopSession session{args, signals, aggregator, sampler, worker, warning, header};
    if (screen) {
        runTerminal(session, *screen);
    } else {
        runText(session);
    }
    worker.join();
    screen.reset();  // the terminal is back before anything is printed below
    if (worker.failure()) std::rethrow_exception(worker.failure());
    if (program) {
        // A program we started ends with us: Ctrl-C it, and kill it if that is ignored.
        if (!worker.stats().targetExited) {
            ::kill(program->pid(), SIGINT);
            for (int i = 0; i < 60; ++i) {
                if (auto status = program->poll()) return *status;
                std::this_thread::sleep_for(std::chrono::milliseconds(50));
            }
            ::kill(program->pid(), SIGKILL);
        }
        return program->wait();
    }
    return 0;
}

}  // namespace

Command addTopCommand(CLI::App& app) {
    auto args = std::make_shared<TopArgs>();
    auto* cmd = app.add_subcommand("top", "Live view of the functions a Python process spends its time in");
    addSamplingOptions(*cmd, *args, "A program to start and watch (after --)");
    cmd->add_option("-d,--delay", args->delay, "Seconds between refreshes")
        ->check(CLI::Range(0.05, 3600.0))
        ->capture_default_str();
    cmd->add_option("--iterations", args->iterations, "End after this many refreshes (default: until q)")
        ->check(CLI::NonNegativeNumber);
    return Command{cmd, [args] { return runTop(*args); }};
}

}  // namespace pyspy
