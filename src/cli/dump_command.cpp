// `pyspy-cpp dump`: one consistent snapshot of every thread, as text or JSON.
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "pyspy/cli/cli_common.h"
#include "pyspy/cli/commands.h"
#include "pyspy/cli/option_values.h"
#include "pyspy/output/dump.h"
#include "pyspy/process/process_handle.h"
#include "pyspy/process/process_tree.h"
#include "pyspy/python/python_process.h"

namespace pyspy {

namespace {

struct DumpArgs {
    pid_t pid = 0;
    std::string core;  // --core FILE: read a core dump instead of a process
    std::string executable;
    std::vector<std::string> libSearchPath;
    bool json = false;
    bool nonblocking = false;
    bool fullFilenames = false;
    double timeout = 10.0;
    bool scanOnly = false;
    int locals = 0;  // how many times -l was given
    bool subprocesses = false;
    bool native = false;
    bool nativeAll = false;
};

// `problems`: where a core's notes about its files go (missing, or not the ones it ran).
std::string dumpOne(PythonProcess& process, const DumpArgs& args, std::vector<std::string>* problems = nullptr) {
    SnapshotOptions options;
    options.pause = !args.nonblocking && !process.fromCore();
    options.localsLevel = args.locals;
    options.fdKinds = !process.fromCore();  // a descriptor is looked up in /proc/PID/fd
    options.fdPeers = options.fdKinds;
    options.native = args.native || args.nativeAll;
    options.nativeAll = args.nativeAll;
    const ProcessSnapshot snapshot = process.snapshot(options);
    DumpFormatOptions format;
    format.fullFilenames = args.fullFilenames;
    format.locals = args.locals > 0;
    if (problems != nullptr && snapshot.core) *problems = snapshot.core->moduleProblems;
    return args.json ? formatDumpJson(snapshot, format) : formatDumpText(snapshot, format);
}

std::string chainText(const std::vector<pid_t>& chain, const char* separator) {
    std::string text;
    for (const pid_t pid : chain) text += (text.empty() ? "" : separator) + std::to_string(pid);
    return text;
}

// dump -s: the target, then each descendant once, depth first (a process right after
// its parent), each headed by its chain of parents. Text: a "== process ... ==" line
// before each dump; JSON: {"processes": [{"pid", "chain", "dump"}, ...]}. A descendant
// that is not Python, or that exits meanwhile, gets a note on stderr and is skipped; so
// does a root that is not Python (a shell script, a wrapper), with one note, as long as
// a descendant is Python.
int runDumpTree(const DumpArgs& args, const LocateOptions& locate) {
    ProcessTree tree(args.pid);
    std::unique_ptr<PythonProcess> root;
    std::string rootCommand;
    try {
        root = PythonProcess::attach(args.pid, locate);  // other errors than "not Python" are as without -s
    } catch (const FatalError& e) {
        if (e.kind() != ErrorKind::NotPython) throw;
        rootCommand = readCommandLine(args.pid);
        std::fprintf(stderr, "%s: note: %s\n", kProgram, notPythonRootNote(args.pid, rootCommand, "dumping").c_str());
    }
    tree.scan();
    std::vector<TreeMember> members = tree.members();
    std::stable_sort(members.begin(), members.end(),
                     [](const TreeMember& a, const TreeMember& b) { return a.chain < b.chain; });
    std::string out = args.json ? "{\"processes\": [" : "";
    bool first = true;
    for (const TreeMember& member : members) {
        if (member.pid == args.pid && !root) continue;
        std::string dump;
        try {
            if (member.pid == args.pid) {
                dump = dumpOne(*root, args);
            } else {
                ProcessHandle handle(member.pid);
                auto process = PythonProcess::attach(member.pid, locate);
                dump = dumpOne(*process, args);
                if (handle.exited()) throw FatalError(ErrorKind::TargetExited, "it exited while being read");
            }
        } catch (const FatalError& e) {
            if (member.pid == args.pid) throw;
            std::fprintf(stderr, "%s: note: skipping process %d (%s): %s\n", kProgram, member.pid,
                         readCommandLine(member.pid).c_str(), e.what());
            continue;
        }
        if (args.json) {
            out += fmt::format("{}\n{{\"pid\": {}, \"chain\": [{}], \"dump\": {}}}", first ? "" : ",", member.pid,
                               chainText(member.chain, ", "), dump);
        } else {
            out += fmt::format("{}== process {} (chain {}) ==\n{}", first ? "" : "\n", member.pid,
                               chainText(member.chain, " > "), dump);
        }
        first = false;
    }
    if (first) {  // only when the root is not Python: a Python root is always dumped
        throw FatalError(
            ErrorKind::NotPython,
            fmt::format("process {} ({}) is not Python and none of its descendants is", args.pid, rootCommand));
    }
    if (args.json) out += "\n]}\n";
    if (tree.overBound()) {
        std::fprintf(stderr, "%s: note: the tree has more than %zu processes; the rest were not dumped\n", kProgram,
                     ProcessTree::kMaxTreeMembers);
    }
    std::fwrite(out.data(), 1, out.size(), stdout);
    std::fflush(stdout);
    return 0;
}

// dump --core: a snapshot of the moment the core was written, with what the core says
// about the crash; files that are missing or do not match it are noted on stderr.
int runDumpCore(const DumpArgs& args) {
    if (args.subprocesses)
        throw FatalError(ErrorKind::Usage, "--core reads one process: it cannot be combined with -s");
    Watchdog watchdog(args.timeout);
    CoreOpenOptions open;
    open.files.executable = args.executable;
    open.files.libSearchPath = args.libSearchPath;
    open.locate.ignoreSymbols = args.scanOnly;
    auto process = PythonProcess::openCore(args.core, open);
    std::vector<std::string> problems;
    const std::string out = dumpOne(*process, args, &problems);
    std::fwrite(out.data(), 1, out.size(), stdout);
    std::fflush(stdout);
    for (const auto& problem : problems) {
        std::fprintf(stderr, "%s: warning: %s: what is read from it is not trusted\n", kProgram, problem.c_str());
    }
    return 0;
}

int runDump(const DumpArgs& args) {
    if ((args.pid != 0) == !args.core.empty()) {
        throw FatalError(ErrorKind::Usage, "dump needs one target: --pid PID or --core FILE");
    }
    if (!args.core.empty()) return runDumpCore(args);
    if (!args.executable.empty() || !args.libSearchPath.empty()) {
        throw FatalError(ErrorKind::Usage, "--executable and --lib-search-path apply to --core only");
    }
    if ((args.native || args.nativeAll) && args.nonblocking) {
        throw FatalError(ErrorKind::Usage,
                         "--native needs the target paused: it cannot be combined with --nonblocking");
    }
    const DeferredJobStop deferStop;  // a Ctrl-Z waits for the dump: never a stop mid-pause
    Watchdog watchdog(args.timeout);
    LocateOptions locate;
    locate.ignoreSymbols = args.scanOnly;
    if (args.subprocesses) return runDumpTree(args, locate);
    auto process = attachOrSuggestSubprocesses(args.pid, locate);
    const std::string out = dumpOne(*process, args);
    std::fwrite(out.data(), 1, out.size(), stdout);
    std::fflush(stdout);
    return 0;
}

}  // namespace

Command addDumpCommand(CLI::App& app) {
    auto args = std::make_shared<DumpArgs>();
    auto* cmd =
        app.add_subcommand("dump", "Print the stack of every thread of a running Python process, or of a core dump");
    cmd->add_option("-p,--pid", args->pid, "Process id of the target")
        ->check(CLI::PositiveNumber)
        ->type_name(kPidValue);
    cmd->add_option("--core", args->core,
                    "Read a core dump instead of a process: the stacks when it was written, and the "
                    "signal that ended it (docs/cores.md)")
        ->type_name(kFileValue);
    cmd->add_option("--executable", args->executable,
                    "With --core: the executable the process ran, when it is no longer where the core says")
        ->type_name(kFileValue);
    cmd->add_option("--lib-search-path", args->libSearchPath,
                    "With --core: a directory to look for the executable and libraries in first (by file name); "
                    "repeatable")
        ->type_name(kDirValue);
    cmd->add_flag("-j,--json", args->json, "Print one JSON document (schema: docs/dump-json.md)");
    cmd->add_flag("-n,--nonblocking", args->nonblocking,
                  "Do not pause the target while reading (faster for it, may give torn stacks)");
    cmd->add_flag("-l,--locals", args->locals,
                  "Show each frame's arguments and local variables (repeat, -ll, for longer values)");
    cmd->add_flag("--full-filenames", args->fullFilenames, "Show full paths instead of short names");
    cmd->add_option("--timeout", args->timeout, "Give up after this many seconds (exit code 8)")->capture_default_str();
    cmd->add_flag("-s,--subprocesses", args->subprocesses,
                  "Also dump every Python descendant, each once, under its chain of parents; a target that is not "
                  "Python (a shell script, a wrapper) is accepted: its Python descendants are dumped");
    cmd->add_flag("--native", args->native,
                  "Also show native (C/C++) frames, merged with the Python frames (docs/native.md)");
    cmd->add_flag("--native-all", args->nativeAll,
                  "Like --native, and keep the interpreter's own native frames (PyObject_Call, ...)");
    cmd->add_flag("--scan-only", args->scanOnly, "Find the interpreter without symbols (as for stripped builds)")
        ->group("");
    return Command{cmd, [args] { return runDump(*args); }};
}

}  // namespace pyspy
