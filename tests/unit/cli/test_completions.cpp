// The completion and man page generator on a small hand-made CLI11 App: what
// describeCli reads of it (flags, values, choices, files, positionals, hidden options),
// the choice check of restrictToChoices, and the roff of the man page.
#include <catch2/catch.hpp>

#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include "pyspy/cli/completions.h"
#include "pyspy/cli/option_values.h"
#include "pyspy/common/error.h"

using namespace pyspy;

namespace {

struct SmallCli {
    CLI::App app{"tool: does things", "tool"};
    std::string format = "text", output, quoted;
    std::vector<std::string> inputs;
    bool quiet = false, secret = false;
    int pid = 0;

    SmallCli() {
        auto* run = app.add_subcommand("run", "Run it");
        restrictToChoices(run->add_option("-f,--format", format, "The format"), {"text", "json"})
            ->capture_default_str();
        run->add_option("-o,--output", output, "Output file")->type_name(kFileValue);
        run->add_option("--pid", pid, "A process")->type_name(kPidValue);
        run->add_option("--quoted", quoted, ".starts with a dot, has a \\ and 'quotes' [brackets]");
        run->add_flag("-q,--quiet", quiet, "Say less");
        run->add_flag("--secret", secret, "Not shown")->group("");
        run->add_option("INPUT", inputs, "Input files")->type_name(kFileValue);
    }
};

const CliOption& optionNamed(const CliCommand& command, const std::string& longName) {
    for (const auto& option : command.options) {
        if (!option.longNames.empty() && option.longNames[0] == longName) return option;
    }
    FAIL("no option " << longName);
    throw;
}

}  // namespace

TEST_CASE("completions, describeCli reads options, values and positionals, and leaves hidden ones out",
          "[completions]") {
    SmallCli cli;
    const CliCommand root = describeCli(cli.app);
    CHECK(root.name == "tool");
    REQUIRE(root.subcommands.size() == 1);
    const CliCommand& run = root.subcommands[0];
    CHECK(run.name == "run");

    const CliOption& format = optionNamed(run, "--format");
    CHECK(format.shortNames == std::vector<std::string>{"-f"});
    CHECK(format.value == ValueKind::Choice);
    CHECK(format.choices == std::vector<std::string>{"text", "json"});
    CHECK(format.valueName == "FORMAT");
    CHECK(optionNamed(run, "--output").value == ValueKind::File);
    CHECK(optionNamed(run, "--pid").value == ValueKind::Pid);
    CHECK(optionNamed(run, "--quoted").value == ValueKind::Any);
    CHECK(optionNamed(run, "--quiet").value == ValueKind::None);
    CHECK(optionNamed(run, "--help").value == ValueKind::None);
    for (const auto& option : run.options) CHECK(option.longNames != std::vector<std::string>{"--secret"});

    REQUIRE(run.positionals.size() == 1);
    CHECK(run.positionals[0].name == "INPUT");
    CHECK(run.positionals[0].value == ValueKind::File);
    CHECK(run.positionals[0].repeatable);
}

TEST_CASE("completions, restrictToChoices rejects other values, offerChoices only offers", "[completions]") {
    SmallCli cli;
    CHECK_NOTHROW(cli.app.parse(std::vector<std::string>{"json", "-f", "run"}));  // CLI11 takes them reversed
    CHECK(cli.format == "json");
    SmallCli other;
    CHECK_THROWS_AS(other.app.parse(std::vector<std::string>{"xml", "-f", "run"}), CLI::ValidationError);

    CLI::App app{"offers", "offers"};
    std::string shell;
    offerChoices(app.add_option("SHELL", shell, "A shell"), {"bash", "zsh"});
    CHECK_NOTHROW(app.parse(std::vector<std::string>{"man"}));
    CHECK(optionChoices(*app.get_option("SHELL")) == std::vector<std::string>{"bash", "zsh"});
}

TEST_CASE("completions, the scripts name every command, option and choice", "[completions]") {
    SmallCli cli;
    const CliCommand root = describeCli(cli.app);
    const std::string bash = bashCompletion(root);
    CHECK(bashCompletionFunction(root) == "_tool");
    CHECK_THAT(bash, Catch::Contains("complete -F _tool tool"));
    CHECK_THAT(bash, Catch::Contains("-f|--format) _tool_value \"$cur\" choice text json; return ;;"));
    CHECK_THAT(bash, Catch::Contains("-o|--output) _tool_value \"$cur\" file; return ;;"));
    CHECK_THAT(bash, !Catch::Contains("secret"));
    CHECK_THAT(zshCompletion(root), Catch::Contains("'(-f --format)'{-f,--format}'[The format]:FORMAT:(text json)'"));
    CHECK_THAT(zshCompletion(root), Catch::Contains("\\[brackets\\]"));
    CHECK_THAT(fishCompletion(root), Catch::Contains("-s f -l format -x -a 'text json' -d 'The format'"));
    CHECK_THAT(fishCompletion(root), Catch::Contains("\\'quotes\\'"));
}

TEST_CASE("completions, manPage has its sections, escaped text, every exit code", "[completions]") {
    SmallCli cli;
    const std::string page = manPage(describeCli(cli.app), "1.2.3");
    CHECK_THAT(page, Catch::StartsWith(".\\\""));
    CHECK_THAT(page, Catch::Contains(".TH TOOL 1 \"\" \"tool 1.2.3\""));
    CHECK_THAT(page, Catch::Contains(".SH NAME\ntool \\- does things\n"));
    CHECK_THAT(page, Catch::Contains(".SS \"tool run\"\n"));
    CHECK_THAT(page, Catch::Contains("\\fB\\-f\\fR, \\fB\\-\\-format\\fR \\fIFORMAT\\fR\n"));
    CHECK_THAT(page, Catch::Contains("Default: text."));
    CHECK_THAT(page, Catch::Contains("\n\\&.starts with a dot, has a \\e and"));
    CHECK_THAT(page, !Catch::Contains("secret"));
    for (const ErrorKind kind : kErrorKinds) {
        CHECK_THAT(page, Catch::Contains(fmt::format(".B {}\n{}\n", exitCode(kind), toString(kind))));
    }
}
