// `pyspy-cpp record`: sample a process (or a program it starts) until Ctrl-C, the
// duration, or the target's exit, then write the profile atomically.
//
// Threads: the sampler runs on its own thread, which owns every ptrace pause; the main
// thread only waits for SIGINT/SIGTERM (blocked, taken synchronously by StopSignals)
// and draws the progress line. Nothing here reaps the spawned program until the
// sampler has finished: a wait from another thread could steal ptrace stops.
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <ctime>
#include <exception>
#include <mutex>
#include <optional>
#include <thread>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "pyspy/cli/cli_common.h"
#include "pyspy/cli/commands.h"
#include "pyspy/cli/spawn.h"
#include "pyspy/output/profile_writer.h"
#include "pyspy/sampling/sampler.h"

namespace pyspy {

namespace {

struct RecordArgs : SamplingArgs {
    std::string output;
    std::string format = "flamegraph";
    double duration = 0;
    bool threads = false;
    bool function = false;
    bool nolineno = false;
};

std::string baseName(const std::string& path) {
    const auto slash = path.rfind('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

// "<name>-<local time>.<ext>": the program's script (or the program) or the pid.
std::string defaultOutputName(const RecordArgs& args, ProfileFormat format) {
    std::string name = fmt::format("pyspy-{}", args.pid);
    if (!args.program.empty()) {
        name = baseName(args.program[0]);
        if (name.rfind("python", 0) == 0) {
            for (std::size_t i = 1; i < args.program.size(); ++i) {
                if (!args.program[i].empty() && args.program[i][0] != '-') {
                    name = baseName(args.program[i]);
                    break;
                }
            }
        }
        if (const auto dot = name.rfind('.'); dot != std::string::npos && dot > 0) name.resize(dot);
    }
    const std::time_t now = std::time(nullptr);
    std::tm local{};
    localtime_r(&now, &local);
    char stamp[32];
    std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H-%M-%S", &local);
    return fmt::format("{}-{}.{}", name, stamp, defaultExtension(format));
}

int runRecord(const RecordArgs& args) {
    const ProfileFormat format = *parseProfileFormat(args.format);
    const std::string outputPath = args.output.empty() ? defaultOutputName(args, format) : args.output;

    StopSignals signals;  // before any thread starts, so all inherit the blocked mask
    std::optional<SpawnedProgram> program;
    std::unique_ptr<PythonProcess> process;
    attachSamplingTarget(args, program, process);

    SamplerOptions options = samplerOptions(args);
    if (args.duration > 0) options.durationSeconds = args.duration;
    options.aggregateByFunction = args.function;
    options.lineNumbers = !args.nolineno;

    ProfileBuilder builder(options, needsTimeline(format));
    Sampler sampler(*process, options);
    const bool tty = ::isatty(STDERR_FILENO) != 0;
    std::mutex stderrMutex;
    const auto warn = [&](const std::string& message) {
        std::lock_guard lock(stderrMutex);
        std::fprintf(stderr, "%s%s: warning: %s\n", tty ? "\r\033[K" : "", kProgram, message.c_str());
    };

    std::atomic<bool> stop{false};
    std::atomic<bool> done{false};
    SamplerStats stats;
    std::exception_ptr failure;
    std::thread samplerThread([&] {
        try {
            stats = sampler.run(builder, stop, warn);
        } catch (...) {
            failure = std::current_exception();
        }
        done.store(true);
    });

    const auto started = std::chrono::steady_clock::now();
    bool interrupted = false;
    while (!done.load()) {
        if (signals.wait(std::chrono::milliseconds(200)) != 0) {
            stop.store(true);
            interrupted = true;
        }
        if (tty && !done.load()) {
            const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
            const auto ticks = sampler.ticksSoFar();
            const auto errors = sampler.errorsSoFar();
            std::lock_guard lock(stderrMutex);
            std::fprintf(stderr, "\r\033[K%s: %.1f s, %llu samples, %llu errors, lag %.1f ms%s", kProgram, elapsed,
                         static_cast<unsigned long long>(ticks), static_cast<unsigned long long>(errors),
                         sampler.lagSoFar() * 1000, interrupted ? " (stopping)" : " (Ctrl-C to stop)");
            std::fflush(stderr);
        }
    }
    samplerThread.join();
    if (!failure && stats.failure) failure = stats.failure;  // after some samples: keep them, then report
    if (tty) std::fputs("\r\033[K", stderr);

    if (failure && stats.ticks == 0) std::rethrow_exception(failure);
    RecordedProfile profile = builder.finish(sampler, stats, *process);
    ExportOptions exportOptions;
    exportOptions.showThreads = args.threads;
    exportOptions.fullFilenames = args.fullFilenames;
    exportOptions.showLines = !args.nolineno;
    exportOptions.title = fmt::format("{} (pid {}, Python {})", profile.commandLine, profile.pid, profile.pythonVersion);
    writeProfileFile(format, profile, exportOptions, outputPath);

    const double share = profile.samples + profile.errors > 0
                             ? 100.0 * static_cast<double>(profile.errors) /
                                   static_cast<double>(profile.samples + profile.errors)
                             : 0.0;
    std::string why = interrupted ? "stopped" : stats.targetExited ? "the target exited" : "done";
    std::fprintf(stderr, "%s: %s after %.1f s: %llu samples, %llu errors (%.1f%%); wrote %s to %s\n", kProgram,
                 why.c_str(), stats.elapsedSeconds, static_cast<unsigned long long>(profile.samples),
                 static_cast<unsigned long long>(profile.errors), share, formatName(format), outputPath.c_str());
    if (stats.pausedSeconds > 0 && profile.samples > 0) {
        // What the target paid for consistent stacks: say it, so nobody has to guess.
        std::fprintf(stderr, "%s: the target was paused %.0f us per sample, %.2f%% of the time (--nonblocking: never)\n",
                     kProgram, 1e6 * stats.pausedSeconds / static_cast<double>(profile.samples),
                     stats.elapsedSeconds > 0 ? 100.0 * stats.pausedSeconds / stats.elapsedSeconds : 0.0);
    }
    if (profile.trie.totalSamples() == 0 && profile.samples > 0 && !args.idle) {
        std::fprintf(stderr, "%s: no thread was active while sampling; use --idle to include idle threads\n",
                     kProgram);
    }
    if (builder.timelineTruncated()) {
        std::fprintf(stderr, "%s: warning: the timeline was cut at its size bound; totals are complete\n", kProgram);
    }
    if (failure) std::rethrow_exception(failure);
    if (program) {
        // The program may still run (--duration, Ctrl-C it ignored): leave it running
        // only in --pid mode; a program we started ends with us.
        if (!stats.targetExited && interrupted) ::kill(program->pid(), SIGINT);
        return program->wait();
    }
    return 0;
}

}  // namespace

Command addRecordCommand(CLI::App& app) {
    auto args = std::make_shared<RecordArgs>();
    auto* cmd = app.add_subcommand("record", "Sample a Python process and write a flame graph or other profile");
    addSamplingOptions(*cmd, *args, "A program to start and profile (after --)");
    cmd->add_option("-o,--output", args->output, "Output file (default: <name>-<time>.<ext>)");
    cmd->add_option("-f,--format", args->format, "flamegraph, speedscope, raw, chrometrace or pprof")
        ->check(CLI::IsMember({"flamegraph", "speedscope", "raw", "chrometrace", "pprof"}))
        ->capture_default_str();
    cmd->add_option("-d,--duration", args->duration, "Seconds to record (default: until Ctrl-C or the target exits)")
        ->check(CLI::NonNegativeNumber);
    cmd->add_flag("-t,--threads", args->threads, "A root frame per thread (id and name)");
    cmd->add_flag("-F,--function", args->function, "Aggregate by function, not by line");
    cmd->add_flag("--nolineno", args->nolineno, "No line numbers");
    return Command{cmd, [args] { return runRecord(*args); }};
}

}  // namespace pyspy
