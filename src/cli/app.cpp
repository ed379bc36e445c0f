#include "pyspy/cli/app.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <thread>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "pyspy/common/error.h"
#include "pyspy/output/dump.h"
#include "pyspy/python/python_process.h"

namespace pyspy {

namespace {

constexpr const char* kProgram = "pyspy-cpp";

[[noreturn]] void dieNow(ErrorKind kind, const std::string& message) {
    const std::string line = fmt::format("{}: error: {}\n", kProgram, message);
    (void)!::write(STDERR_FILENO, line.data(), line.size());
    ::_exit(exitCode(kind));
}

// Ends the process if the command outlives its bound. _exit is safe even while the
// target is paused: the kernel detaches a tracer's tracees when it exits.
class Watchdog {
  public:
    explicit Watchdog(double seconds) {
        if (seconds <= 0) return;
        thread_ = std::thread([this, seconds] {
            std::unique_lock lock(mutex_);
            if (!cv_.wait_for(lock, std::chrono::duration<double>(seconds), [this] { return done_; })) {
                dieNow(ErrorKind::Timeout, fmt::format("gave up after {} s (use --timeout to wait longer)", seconds));
            }
        });
    }
    ~Watchdog() {
        {
            std::lock_guard lock(mutex_);
            done_ = true;
        }
        cv_.notify_all();
        if (thread_.joinable()) thread_.join();
    }

  private:
    std::mutex mutex_;
    std::condition_variable cv_;
    bool done_ = false;
    std::thread thread_;
};

struct DumpArgs {
    pid_t pid = 0;
    bool json = false;
    bool nonblocking = false;
    bool fullFilenames = false;
    double timeout = 10.0;
    bool scanOnly = false;
};

int runDump(const DumpArgs& args) {
    Watchdog watchdog(args.timeout);
    LocateOptions locate;
    locate.ignoreSymbols = args.scanOnly;
    auto process = PythonProcess::attach(args.pid, locate);
    SnapshotOptions options;
    options.pause = !args.nonblocking;
    const ProcessSnapshot snapshot = process->snapshot(options);
    DumpFormatOptions format;
    format.fullFilenames = args.fullFilenames;
    const std::string out = args.json ? formatDumpJson(snapshot, format) : formatDumpText(snapshot, format);
    std::fwrite(out.data(), 1, out.size(), stdout);
    std::fflush(stdout);
    return 0;
}

}  // namespace

int runCli(int argc, char** argv) {
    CLI::App app{"pyspy-cpp: a sampling profiler for live CPython processes", kProgram};
    app.set_version_flag("-V,--version", std::string(PYSPY_VERSION));
    app.require_subcommand(1);

    DumpArgs dump;
    auto* dumpCmd = app.add_subcommand("dump", "Print the stack of every thread of a running Python process");
    dumpCmd->add_option("-p,--pid", dump.pid, "Process id of the target")->required()->check(CLI::PositiveNumber);
    dumpCmd->add_flag("-j,--json", dump.json, "Print one JSON document (schema: docs/dump-json.md)");
    dumpCmd->add_flag("-n,--nonblocking", dump.nonblocking,
                      "Do not pause the target while reading (faster for it, may give torn stacks)");
    dumpCmd->add_flag("--full-filenames", dump.fullFilenames, "Show full paths instead of short names");
    dumpCmd->add_option("--timeout", dump.timeout, "Give up after this many seconds (exit code 8)")
        ->capture_default_str();
    dumpCmd->add_flag("--scan-only", dump.scanOnly, "Find the interpreter without symbols (as for stripped builds)")
        ->group("");

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        const int rc = app.exit(e);
        return rc == 0 ? 0 : exitCode(ErrorKind::Usage);
    }

    try {
        if (dumpCmd->parsed()) return runDump(dump);
    } catch (const FatalError& e) {
        std::fflush(stdout);
        std::fprintf(stderr, "%s: error: %s\n", kProgram, e.what());
        return exitCode(e.kind());
    } catch (const std::exception& e) {
        std::fprintf(stderr, "%s: internal error: %s\n", kProgram, e.what());
        return exitCode(ErrorKind::Internal);
    }
    return exitCode(ErrorKind::Usage);
}

}  // namespace pyspy
