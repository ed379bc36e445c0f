// `pyspy-cpp record`: sample a process (or a program it starts) until Ctrl-C, the
// duration, or the target's exit, then write the profile atomically.
//
// Threads: the sampler runs on its own thread, which owns every ptrace pause; the main
// thread only waits for SIGINT/SIGTERM (blocked, taken synchronously by StopSignals)
// and draws the progress line. Nothing here reaps the spawned program until the
// sampler has finished: a wait from another thread could steal ptrace stops.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <deque>
#include <exception>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "pyspy/cli/cli_common.h"
#include "pyspy/cli/commands.h"
#include "pyspy/cli/option_values.h"
#include "pyspy/cli/spawn.h"
#include "pyspy/cli/tree_recording.h"
#include "pyspy/output/atomic_file.h"
#include "pyspy/output/profile_writer.h"
#include "pyspy/sampling/sampler.h"

namespace pyspy {

namespace {

struct RecordArgs : SamplingArgs {
    std::string output;
    std::string format = "flamegraph";
    double duration = 0;
    double period = 0;     // --period: one profile per this many seconds
    std::size_t keep = 0;  // --keep: only the newest this many period files
    bool threads = false;
    bool function = false;
    bool nolineno = false;
    bool waitStates = false;  // --wait
};

// How long a program we started gets to end after SIGINT, and then after SIGTERM.
constexpr std::chrono::milliseconds kProgramGrace{2000};

// How often `record -s` looks for new children: the issue asks for 100 ms at most.
constexpr std::chrono::milliseconds kTreeScanInterval{50};

std::string baseName(const std::string& path) {
    const auto slash = path.rfind('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

// The profile's name without time or extension: the program's script (or the
// program) or the pid.
std::string defaultOutputStem(const RecordArgs& args) {
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
    return name;
}

// A local time in file names: sortable, and free of ':' (not allowed everywhere).
std::string fileTimeStamp(std::chrono::system_clock::time_point when) {
    const std::time_t time = std::chrono::system_clock::to_time_t(when);
    std::tm local{};
    localtime_r(&time, &local);
    char stamp[32];
    std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H-%M-%S", &local);
    return stamp;
}

// The files of `record --period`: `<stem>-<start>-<end><extension>`, one per period,
// from -o (its extension kept: the format's own one, e.g. .speedscope.json, or what
// follows its last dot) or from the default name.
class PeriodFiles {
  public:
    PeriodFiles(const std::string& output, const std::string& defaultStem, ProfileFormat format, std::size_t keep)
        : keep_(keep) {
        const std::string ext = std::string(".") + defaultExtension(format);
        if (output.empty()) {
            stem_ = defaultStem;
            extension_ = ext;
        } else if (output.size() > ext.size() && output.ends_with(ext)) {
            stem_ = output.substr(0, output.size() - ext.size());
            extension_ = ext;
        } else if (const auto dot = output.rfind('.');
                   dot != std::string::npos && dot > output.rfind('/') + 1 && dot + 1 < output.size()) {
            stem_ = output.substr(0, dot);
            extension_ = output.substr(dot);
        } else {
            stem_ = output;
        }
    }

    // The name of the period from `start` to `end`; one not used before in this run (a
    // period cut short by SIGUSR1 may share its start second with the next).
    std::string name(std::chrono::system_clock::time_point start, std::chrono::system_clock::time_point end) {
        std::string base = fmt::format("{}-{}-{}", stem_, fileTimeStamp(start), fileTimeStamp(end));
        std::string path = base + extension_;
        for (int n = 2; std::find(used_.begin(), used_.end(), path) != used_.end(); ++n) {
            path = fmt::format("{}-{}{}", base, n, extension_);
        }
        used_.push_back(path);
        return path;
    }

    // After `path` was written: with --keep N, deletes this run's older files beyond N.
    void written(const std::string& path) {
        ++count_;
        kept_.push_back(path);
        while (keep_ > 0 && kept_.size() > keep_) {
            ::unlink(kept_.front().c_str());
            kept_.pop_front();
            ++deleted_;
        }
    }

    std::string pattern() const { return stem_ + "-*" + extension_; }
    std::size_t count() const { return count_; }
    std::size_t deleted() const { return deleted_; }

  private:
    std::string stem_, extension_;
    std::size_t keep_;
    std::vector<std::string> used_;
    std::deque<std::string> kept_;
    std::size_t count_ = 0, deleted_ = 0;
};

// What the targets paid for consistent stacks: say it, so nobody has to guess. Under
// -s: the mean pause per sample over every process's samples, and the largest share of
// its time any one process was paused (which one).
void printPauseSummary(const std::vector<TreeRecording::ProcessStats>& processes, bool subprocesses) {
    double paused = 0;
    std::uint64_t ticks = 0;
    double worstShare = 0;
    pid_t worst = 0;
    for (const auto& [pid, stats] : processes) {
        paused += stats.pausedSeconds;
        ticks += stats.ticks;
        const double share = stats.elapsedSeconds > 0 ? stats.pausedSeconds / stats.elapsedSeconds : 0.0;
        if (worst == 0 || share > worstShare) {
            worstShare = share;
            worst = pid;
        }
    }
    if (paused <= 0 || ticks == 0) return;
    const double perSample = 1e6 * paused / static_cast<double>(ticks);
    if (!subprocesses) {
        std::fprintf(stderr,
                     "%s: the target was paused %.0f us per sample, %.2f%% of the time (--nonblocking: never)\n",
                     kProgram, perSample, 100.0 * worstShare);
        return;
    }
    std::fprintf(stderr,
                 "%s: the targets were paused %.0f us per sample (mean over %zu processes), at most %.2f%% of the time "
                 "(process %d) (--nonblocking: never)\n",
                 kProgram, perSample, processes.size(), 100.0 * worstShare, static_cast<int>(worst));
}

int runRecord(const RecordArgs& args) {
    const ProfileFormat format = *parseProfileFormat(args.format);
    if (args.keep > 0 && args.period <= 0) throw FatalError(ErrorKind::Usage, "--keep needs --period");
    const std::string stem = defaultOutputStem(args);
    const std::string outputPath =
        args.output.empty()
            ? fmt::format("{}-{}.{}", stem, fileTimeStamp(std::chrono::system_clock::now()), defaultExtension(format))
            : args.output;
    std::optional<PeriodFiles> periodFiles;
    if (args.period > 0) periodFiles.emplace(args.output, stem, format, args.keep);
    AtomicFile::checkCreatable(outputPath);  // same directory as the period files

    StopSignals signals({SIGUSR1});  // before any thread starts, so all inherit the blocked mask
    std::optional<SpawnedProgram> program;
    std::unique_ptr<PythonProcess> process;
    const TreeRecording::Root root = attachSamplingTarget(args, program, process);

    SamplerOptions options = samplerOptions(args);
    if (args.duration > 0) options.durationSeconds = args.duration;
    options.aggregateByFunction = args.function;
    options.lineNumbers = !args.nolineno;
    options.waitStates = args.waitStates;

    const bool tty = ::isatty(STDERR_FILENO) != 0;
    std::mutex stderrMutex;
    const auto say = [&](const char* what, const std::string& message) {
        std::lock_guard lock(stderrMutex);
        std::fprintf(stderr, "%s%s: %s: %s\n", tty ? "\r\033[K" : "", kProgram, what, message.c_str());
    };
    TreeRecording recording(
        root, options, needsTimeline(format), args.subprocesses,
        [&](const std::string& message) { say("warning", message); },
        [&](const std::string& message) { say("note", message); });

    ExportOptions exportOptions;
    exportOptions.showThreads = args.threads;
    exportOptions.fullFilenames = args.fullFilenames;
    exportOptions.showLines = !args.nolineno;
    const auto write = [&](const RecordedProfile& profile, const std::string& path) {
        ExportOptions titled = exportOptions;
        titled.title = fmt::format("{} (pid {}, Python {})", profile.commandLine, profile.pid, profile.pythonVersion);
        writeProfileFile(format, profile, titled, path);
    };
    // What the written period files hold, for the summary (each period's profile is
    // gone once written).
    std::uint64_t periodSamples = 0, periodErrors = 0, periodThreadSamples = 0;
    auto periodStart = std::chrono::system_clock::now();
    // --period: the profile since the last cut, to its own file; a failed write is said
    // and sampling goes on (the next period may well be written), except for the last.
    const auto writePeriod = [&](RecordedProfile profile, bool last) {
        const auto now = std::chrono::system_clock::now();
        const std::string path = periodFiles->name(periodStart, now);
        periodStart = now;
        periodSamples += profile.samples;
        periodErrors += profile.errors;
        periodThreadSamples += profile.trie.totalSamples();
        try {
            write(profile, path);
            periodFiles->written(path);
        } catch (const FatalError& e) {
            if (last) throw;
            say("warning", e.what());
        }
    };
    std::size_t flushes = 0;
    // SIGUSR1: everything so far to the output name (with --period: the period so far,
    // cut short, to its file); sampling goes on.
    const auto flush = [&] {
        if (recording.pythonProcesses() == 0) {
            say("note", "SIGUSR1: nothing written: no Python process has been sampled yet");
            return;
        }
        std::optional<RecordedProfile> profile = recording.checkpoint(periodFiles.has_value());
        if (!profile) {
            say("warning", "SIGUSR1: no profile written: the samplers did not answer in time");
            return;
        }
        if (periodFiles) {
            writePeriod(std::move(*profile), false);
        } else {
            try {
                write(*profile, outputPath);
            } catch (const FatalError& e) {
                say("warning", e.what());
                return;
            }
        }
        ++flushes;
    };

    recording.start();

    // The main thread waits for signals and, with -s, scans for new children every
    // kTreeScanInterval (so a child is picked up within about that time).
    const auto wait = args.subprocesses ? kTreeScanInterval : std::chrono::milliseconds(200);
    const auto started = std::chrono::steady_clock::now();
    const auto periodLength = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
        std::chrono::duration<double>(std::max(args.period, 0.0)));
    auto periodEnd = started + periodLength;
    auto lastProgress = started - std::chrono::seconds(1);
    bool interrupted = false;
    const std::optional<double> pythonWait = pythonWaitSeconds(args);
    while (recording.poll()) {
        recording.checkPythonFound(pythonWait, false);
        auto timeout = wait;
        if (periodFiles) {
            const auto left =
                std::chrono::ceil<std::chrono::milliseconds>(periodEnd - std::chrono::steady_clock::now());
            timeout = std::clamp(left, std::chrono::milliseconds(1), wait);
        }
        const int signal = signals.wait(timeout);
        if (signal == SIGUSR1) {
            if (!interrupted) flush();
        } else if (signal != 0) {
            recording.stop();
            interrupted = true;
        }
        const auto now = std::chrono::steady_clock::now();
        // Past -d no new child is started (each sampler also ends by itself by then).
        const bool pastDuration =
            args.duration > 0 && std::chrono::duration<double>(now - started).count() >= args.duration;
        if (pastDuration) recording.stop();
        // A period that ends with the recording is written by the final write below.
        // A period before the first Python process (a root that is not Python) has no file.
        if (periodFiles && now >= periodEnd && !interrupted && !pastDuration && recording.pythonProcesses() > 0) {
            if (auto profile = recording.checkpoint(true)) {
                writePeriod(std::move(*profile), false);
            } else {
                say("warning", "a period's profile was not written: the samplers did not answer in time");
            }
            while (periodEnd <= now) periodEnd += periodLength;
        }
        if (tty && now - lastProgress >= std::chrono::milliseconds(200)) {
            lastProgress = now;
            const double elapsed = std::chrono::duration<double>(now - started).count();
            const std::string processes =
                args.subprocesses ? fmt::format(", {} processes", recording.processCount()) : std::string();
            const std::string written = periodFiles   ? fmt::format(", {} files", periodFiles->count())
                                        : flushes > 0 ? fmt::format(", {} flushes", flushes)
                                                      : std::string();
            std::lock_guard lock(stderrMutex);
            std::fprintf(stderr, "\r\033[K%s: %.1f s, %llu samples, %llu errors, lag %.1f ms%s%s%s", kProgram, elapsed,
                         static_cast<unsigned long long>(recording.ticksSoFar()),
                         static_cast<unsigned long long>(recording.errorsSoFar()), recording.lagSoFar() * 1000,
                         processes.c_str(), written.c_str(), interrupted ? " (stopping)" : " (Ctrl-C to stop)");
            std::fflush(stderr);
        }
    }
    recording.join();
    recording.checkPythonFound(std::nullopt, true);
    const SamplerStats& stats = recording.rootStats();
    std::exception_ptr failure = recording.rootFailure();  // after some samples: keep them, then report
    if (tty) std::fputs("\r\033[K", stderr);

    if (failure && stats.ticks == 0 && (!periodFiles || periodFiles->count() == 0)) std::rethrow_exception(failure);
    RecordedProfile profile = recording.finish();
    std::string written;
    if (periodFiles) {
        // The last period, partial (Ctrl-C, -d, the target's exit); not an empty one
        // that only repeats the end of the last.
        if (periodFiles->count() == 0 || profile.samples > 0) writePeriod(profile, true);
        profile.samples = periodSamples;
        profile.errors = periodErrors;
        written = fmt::format("wrote {} {} profiles, one per {} s, to {}", periodFiles->count(), formatName(format),
                              args.period, periodFiles->pattern());
        if (periodFiles->deleted() > 0) {
            written += fmt::format(" (--keep {}: deleted the {} oldest)", args.keep, periodFiles->deleted());
        }
    } else {
        write(profile, outputPath);
        written = fmt::format("wrote {} to {}", formatName(format), outputPath);
    }
    if (flushes > 0) written += fmt::format("; {} written on SIGUSR1 before", flushes);
    const std::uint64_t threadSamples = periodFiles ? periodThreadSamples : profile.trie.totalSamples();

    const double share =
        profile.samples + profile.errors > 0
            ? 100.0 * static_cast<double>(profile.errors) / static_cast<double>(profile.samples + profile.errors)
            : 0.0;
    std::string why = interrupted           ? "stopped"
                      : !stats.targetExited ? "done"
                      : args.subprocesses   ? "the process tree exited"
                                            : "the target exited";
    const std::string processes =
        args.subprocesses ? fmt::format(" from {} processes", recording.sampledProcesses()) : std::string();
    std::fprintf(stderr, "%s: %s after %.1f s: %llu samples%s, %llu errors (%.1f%%); %s\n", kProgram, why.c_str(),
                 std::max(stats.elapsedSeconds, profile.duration), static_cast<unsigned long long>(profile.samples),
                 processes.c_str(), static_cast<unsigned long long>(profile.errors), share, written.c_str());
    const auto perProcess = recording.processStats();
    printPauseSummary(perProcess, args.subprocesses);
    std::uint64_t mergeErrors = 0;
    for (const auto& p : perProcess) mergeErrors += p.stats.mergeErrors;
    if (mergeErrors > 0) {
        // Those samples kept their Python stack only (docs/native.md: when merging fails).
        std::fprintf(stderr,
                     "%s: %llu thread samples kept only their Python stack: native and Python stacks did not merge\n",
                     kProgram, static_cast<unsigned long long>(mergeErrors));
    }
    if (threadSamples == 0 && profile.samples > 0 && !args.idle && !args.waitStates) {
        std::fprintf(stderr, "%s: no thread was active while sampling; use --idle to include idle threads\n", kProgram);
    }
    if (recording.timelineTruncated()) {
        std::fprintf(stderr, "%s: warning: the timeline was cut at its size bound; totals are complete\n", kProgram);
    }
    if (failure) std::rethrow_exception(failure);
    if (program) {
        // A program we started ends with the recording (-d, Ctrl-C, SIGTERM), and so does
        // whatever it started; only --pid targets are left running. Its own exit status
        // when it ended by itself, else 0: the profile was written.
        const int status = program->end(kProgramGrace);
        return stats.targetExited ? status : 0;
    }
    return 0;
}

}  // namespace

Command addRecordCommand(CLI::App& app) {
    auto args = std::make_shared<RecordArgs>();
    auto* cmd = app.add_subcommand("record", "Sample a Python process and write a flame graph or other profile");
    addSamplingOptions(*cmd, *args, "A program to start and profile (after --)",
                       "Also profile every Python descendant of the target (a root frame per process); a target that "
                       "is not Python (a shell script, a wrapper) is accepted: its Python descendants are profiled");
    cmd->add_option("-o,--output", args->output, "Output file (default: <name>-<time>.<ext>)")->type_name(kFileValue);
    restrictToChoices(cmd->add_option("-f,--format", args->format, "flamegraph, speedscope, raw, chrometrace or pprof"),
                      {"flamegraph", "speedscope", "raw", "chrometrace", "pprof"})
        ->capture_default_str();
    cmd->add_option("-d,--duration", args->duration, "Seconds to record (default: until Ctrl-C or the target exits)")
        ->check(CLI::NonNegativeNumber);
    cmd->add_option("--period", args->period,
                    "Write one profile per this many seconds, named <name>-<start>-<end>.<ext>, and go on")
        ->check(CLI::Range(1.0, 1e7));
    cmd->add_option("--keep", args->keep, "With --period: delete all but the newest N files")
        ->check(CLI::PositiveNumber);
    cmd->add_flag("-t,--threads", args->threads, "A root frame per thread (id and name)");
    cmd->add_flag("-F,--function", args->function, "Aggregate by function, not by line");
    cmd->add_flag("--nolineno", args->nolineno, "No line numbers");
    cmd->add_flag("--wait", args->waitStates,
                  "Wall-clock view of waits: keep every thread's samples and end each stack with its state "
                  "([running], [gil], [lock], [io: socket], [sleep], [child], [other: SYSCALL])");
    return Command{cmd, [args] { return runRecord(*args); }};
}

}  // namespace pyspy
