#include "pyspy/cli/app.h"

#include <cstdio>
#include <vector>

#include <CLI/CLI.hpp>

#include "pyspy/cli/cli_common.h"
#include "pyspy/cli/commands.h"

namespace pyspy {

int runCli(int argc, char** argv) {
    CLI::App app{"pyspy-cpp: a sampling profiler for live CPython processes", kProgram};
    app.set_version_flag("-V,--version", std::string(PYSPY_VERSION));
    app.require_subcommand(1);

    const std::vector<Command> commands{addDumpCommand(app), addRecordCommand(app), addTopCommand(app),
                                        addDiffCommand(app), addCompletionsCommand(app)};

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        const int rc = app.exit(e);
        return rc == 0 ? 0 : exitCode(ErrorKind::Usage);
    }

    try {
        for (const auto& command : commands) {
            if (command.subcommand->parsed()) return command.run();
        }
    } catch (const FatalError& e) {
        std::fflush(stdout);
        std::fprintf(stderr, "%s: error: %s\n", kProgram, e.what());
        return exitCode(e.kind());
    } catch (const std::exception& e) {
        std::fflush(stdout);
        std::fprintf(stderr, "%s: internal error: %s\n", kProgram, e.what());
        return exitCode(ErrorKind::Internal);
    }
    return exitCode(ErrorKind::Usage);
}

}  // namespace pyspy
