// `pyspy-cpp completions SHELL`: prints the completion script for bash, zsh or fish,
// generated from the definitions of the whole command line (completions.h);
// `pyspy-cpp completions man` prints the man page (not offered by the completions; the
// build installs its output as pyspy-cpp.1).
#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <CLI/CLI.hpp>

#include "pyspy/cli/cli_common.h"
#include "pyspy/cli/commands.h"
#include "pyspy/cli/completions.h"
#include "pyspy/cli/option_values.h"
#include "pyspy/output/dump.h"

namespace pyspy {

namespace {

struct Output {
    const char* name;
    std::string (*generate)(const CliCommand& root);
};

std::string manPageOfThisVersion(const CliCommand& root) {
    return manPage(root, PYSPY_VERSION);
}

// The shells offered (and listed in --help), then the man page.
constexpr Output kShells[] = {{"bash", bashCompletion}, {"zsh", zshCompletion}, {"fish", fishCompletion}};
constexpr Output kManPage{"man", manPageOfThisVersion};

int runCompletions(CLI::App& root, const std::string& shell) {
    const Output* output = shell == kManPage.name ? &kManPage : nullptr;
    for (const Output& candidate : kShells) {
        if (shell == candidate.name) output = &candidate;
    }
    if (output == nullptr) {
        std::vector<const char*> names;
        for (const Output& candidate : kShells) names.push_back(candidate.name);
        throw FatalError(ErrorKind::Usage, fmt::format("completions: unknown shell '{}' (one of: {})",
                                                       terminalSafe(shell), fmt::join(names, ", ")));
    }
    const std::string text = output->generate(describeCli(root));
    if (std::fwrite(text.data(), 1, text.size(), stdout) != text.size() || std::fflush(stdout) != 0) {
        throw FatalError(ErrorKind::Io, "cannot write to standard output");
    }
    return 0;
}

}  // namespace

Command addCompletionsCommand(CLI::App& app) {
    auto shell = std::make_shared<std::string>();
    auto* cmd = app.add_subcommand(
        "completions", fmt::format("Print a shell completion script, e.g. source <({} completions bash)", kProgram));
    std::vector<std::string> shells;
    for (const Output& candidate : kShells) shells.emplace_back(candidate.name);
    offerChoices(cmd->add_option("SHELL", *shell, "The shell whose completion script to print")->required(), shells);
    return Command{cmd, [&app, shell] { return runCompletions(app, *shell); }};
}

}  // namespace pyspy
