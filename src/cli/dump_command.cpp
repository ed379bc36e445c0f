// `pyspy-cpp dump`: one consistent snapshot of every thread, as text or JSON.
#include <cstdio>

#include <CLI/CLI.hpp>

#include "pyspy/cli/cli_common.h"
#include "pyspy/cli/commands.h"
#include "pyspy/output/dump.h"
#include "pyspy/python/python_process.h"

namespace pyspy {

namespace {

struct DumpArgs {
    pid_t pid = 0;
    bool json = false;
    bool nonblocking = false;
    bool fullFilenames = false;
    double timeout = 10.0;
    bool scanOnly = false;
    int locals = 0;  // how many times -l was given
};

int runDump(const DumpArgs& args) {
    Watchdog watchdog(args.timeout);
    LocateOptions locate;
    locate.ignoreSymbols = args.scanOnly;
    auto process = PythonProcess::attach(args.pid, locate);
    SnapshotOptions options;
    options.pause = !args.nonblocking;
    options.localsLevel = args.locals;
    options.gilWaiters = true;
    const ProcessSnapshot snapshot = process->snapshot(options);
    DumpFormatOptions format;
    format.fullFilenames = args.fullFilenames;
    format.locals = args.locals > 0;
    const std::string out = args.json ? formatDumpJson(snapshot, format) : formatDumpText(snapshot, format);
    std::fwrite(out.data(), 1, out.size(), stdout);
    std::fflush(stdout);
    return 0;
}

}  // namespace

Command addDumpCommand(CLI::App& app) {
    auto args = std::make_shared<DumpArgs>();
    auto* cmd = app.add_subcommand("dump", "Print the stack of every thread of a running Python process");
    cmd->add_option("-p,--pid", args->pid, "Process id of the target")->required()->check(CLI::PositiveNumber);
    cmd->add_flag("-j,--json", args->json, "Print one JSON document (schema: docs/dump-json.md)");
    cmd->add_flag("-n,--nonblocking", args->nonblocking,
                  "Do not pause the target while reading (faster for it, may give torn stacks)");
    cmd->add_flag("-l,--locals", args->locals,
                  "Show each frame's arguments and local variables (repeat, -ll, for longer values)");
    cmd->add_flag("--full-filenames", args->fullFilenames, "Show full paths instead of short names");
    cmd->add_option("--timeout", args->timeout, "Give up after this many seconds (exit code 8)")
        ->capture_default_str();
    cmd->add_flag("--scan-only", args->scanOnly, "Find the interpreter without symbols (as for stripped builds)")
        ->group("");
    return Command{cmd, [args] { return runDump(*args); }};
}

}  // namespace pyspy
