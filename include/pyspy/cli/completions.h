// Shell completions (bash, zsh, fish) and the man page, generated from the CLI11
// definitions at run time (`pyspy-cpp completions SHELL`, `pyspy-cpp completions man`),
// so they cannot drift from the command line they describe. describeCli() walks the
// App once into a plain CliCommand tree; each generator only reads that tree.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace CLI {
class App;
}

namespace pyspy {

// What the value of an option or argument is, as far as completing it goes.
enum class ValueKind {
    None,     // a flag: no value
    Any,      // a value with nothing to offer (a number, a regex)
    Choice,   // one of CliOption::choices
    File,     // a file name (type name kFileValue)
    Pid,      // a running process's id (type name kPidValue)
    Command,  // a program to start, then its arguments (type name kCommandValue)
};

// An option (shortNames/longNames set) or a positional argument (name set).
struct CliOption {
    std::vector<std::string> shortNames;  // "-o"
    std::vector<std::string> longNames;   // "--output"
    std::string name;                     // a positional's name ("BASE"); empty for an option
    std::string valueName;                // "FILE", "FLOAT", ...; empty for a flag
    ValueKind value = ValueKind::None;
    std::vector<std::string> choices;  // for ValueKind::Choice
    std::string help;
    std::string defaultValue;  // as --help shows it; empty if none
    bool required = false;
    bool repeatable = false;  // a positional taking any number of words, an option given more than once
};

struct CliCommand {
    std::string name;  // the program's name for the root
    std::string help;
    std::vector<CliOption> options;      // visible ones (CLI11 group "" is hidden), -h/--help included
    std::vector<CliOption> positionals;  // in order
    std::vector<CliCommand> subcommands;
};

// The visible definitions of `app` and its subcommands (hidden options and subcommands
// left out). Not const: CLI11 hands out an option's validators only from a mutable one.
CliCommand describeCli(CLI::App& app);

// Scripts for each shell, for a two-level command line (the program, then one subcommand).
// bash: defines the function bashCompletionFunction(root) and registers it with `complete -F`.
std::string bashCompletion(const CliCommand& root);
std::string zshCompletion(const CliCommand& root);
std::string fishCompletion(const CliCommand& root);
std::string bashCompletionFunction(const CliCommand& root);  // "_pyspy_cpp"

// The man page (roff, section 1): NAME, SYNOPSIS, DESCRIPTION, OPTIONS, COMMANDS (one
// subsection per subcommand), EXIT STATUS (from ErrorKind), SEE ALSO.
std::string manPage(const CliCommand& root, std::string_view version);

}  // namespace pyspy
