// `pyspy-cpp diff BASE NEW`: a differential flame graph (or difffolded lines) of two
// profiles `record` wrote, in any of raw, speedscope and pprof (told by the content).
// The comparison and both outputs are in the output layer (diff_flamegraph.h); this
// reads the files, names the output and writes it atomically.
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "pyspy/cli/cli_common.h"
#include "pyspy/cli/commands.h"
#include "pyspy/cli/option_values.h"
#include "pyspy/output/atomic_file.h"
#include "pyspy/output/diff_flamegraph.h"
#include "pyspy/output/dump.h"
#include "pyspy/output/profile_reader.h"

namespace pyspy {

namespace {

struct DiffArgs {
    std::string base;
    std::string next;
    std::string output;
    std::string format = "flamegraph";
};

std::string baseName(const std::string& path) {
    const auto slash = path.rfind('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

// "diff-<NEW's name without its profile extension>.svg" (".txt" for raw), in the
// current directory.
std::string defaultOutputName(const std::string& next, bool raw) {
    std::string name = baseName(next);
    for (const char* ext : {".pb.gz", ".speedscope.json", ".json", ".txt", ".gz", ".pb", ".svg"}) {
        const std::string e = ext;
        if (name.size() > e.size() && name.compare(name.size() - e.size(), e.size(), e) == 0) {
            name.resize(name.size() - e.size());
            break;
        }
    }
    if (name.empty() || name == "." || name == "..") name = "profile";
    return fmt::format("diff-{}.{}", name, raw ? "txt" : "svg");
}

int runDiff(const DiffArgs& args) {
    const bool raw = args.format == "raw";
    const LoadedProfile base = readProfileFile(args.base, "BASE");
    const LoadedProfile next = readProfileFile(args.next, "NEW");
    const ProfileDiff diff(base, next);
    const std::string output = args.output.empty() ? defaultOutputName(args.next, raw) : args.output;

    const auto write = [&](std::ostream& out) {
        if (raw) {
            writeDiffCollapsed(diff, out);
        } else {
            DiffOptions options;
            options.baseName = args.base;
            options.nextName = args.next;
            writeDiffFlameGraph(diff, options, out);
        }
    };
    const bool toStdout = output == "-";  // `-o -`: to a pipe (`| less`, `| grep`)
    if (toStdout) {
        write(std::cout);
        std::cout.flush();
        if (!std::cout) throw FatalError(ErrorKind::Io, "cannot write the diff to standard output");
    } else {
        AtomicFile file(output);
        write(file.stream());
        file.commit();
    }

    std::size_t grew = 0, shrank = 0;
    for (NodeId id = 1; id < diff.next().size(); ++id) {
        if (diff.next().node(id).total == 0) continue;
        const ShareChange c = diff.change(id);
        if (c.significant) ++(c.delta > 0 ? grew : shrank);
    }
    std::fprintf(stderr,
                 "%s: wrote diff %s to %s: BASE %s (%llu samples), NEW %s (%llu samples); beyond sampling noise %zu "
                 "frames grew, %zu shrank; %zu only in BASE\n",
                 kProgram, raw ? "raw" : "flamegraph", toStdout ? "standard output" : terminalSafe(output).c_str(),
                 profileInputName(base.format), static_cast<unsigned long long>(base.samples()),
                 profileInputName(next.format), static_cast<unsigned long long>(next.samples()), grew, shrank,
                 diff.onlyInBase().size());
    return 0;
}

}  // namespace

Command addDiffCommand(CLI::App& app) {
    auto args = std::make_shared<DiffArgs>();
    auto* cmd = app.add_subcommand(
        "diff", "Differential flame graph of two profiles written by record (raw, speedscope or pprof)");
    cmd->add_option("BASE", args->base, "The profile to compare against (before)")->required()->type_name(kFileValue);
    cmd->add_option("NEW", args->next, "The profile whose frames are drawn (after)")->required()->type_name(kFileValue);
    cmd->add_option("-o,--output", args->output,
                    "Output file, - for standard output (default: diff-<NEW's name>.svg, .txt for raw)")
        ->type_name(kFileValue);
    restrictToChoices(
        cmd->add_option("-f,--format", args->format,
                        "flamegraph (an SVG) or raw (lines 'stack BASE_COUNT NEW_COUNT', as difffolded.pl writes)"),
        {"flamegraph", "raw"})
        ->capture_default_str();
    return Command{cmd, [args] { return runDiff(*args); }};
}

}  // namespace pyspy
