// The subcommands (dump, record, top, diff, completions). Each add*Command registers its options on
// `app` and returns how to run it once parsed; runCli (app.cpp) runs the one the user
// chose and maps FatalError to exit codes. Shared helpers for commands live in cli_common.h.
#pragma once

#include <functional>

namespace CLI {
class App;
}

namespace pyspy {

struct Command {
    CLI::App* subcommand = nullptr;
    std::function<int()> run;  // returns the exit code; may throw FatalError
};

Command addDumpCommand(CLI::App& app);
Command addRecordCommand(CLI::App& app);
Command addTopCommand(CLI::App& app);
Command addDiffCommand(CLI::App& app);  // reads profiles back: no target
// `completions SHELL`: the completion script of `app` (the whole command line, this
// command included) for bash, zsh or fish; `completions man`, not offered: the man page.
Command addCompletionsCommand(CLI::App& app);

}  // namespace pyspy
