// What an option's value is, kept on the CLI11 option itself, so that the shell
// completions and the man page (completions.h), which walk the definitions, offer the
// right values and nothing is written twice: one of a fixed list (the list given once,
// where the option is defined), a file, a process id, a program.
#pragma once

#include <string>
#include <vector>

namespace CLI {
class Option;
}

namespace pyspy {

// Type names (CLI::Option::type_name) that say what a value is: shown in --help and the
// man page, and completed as file names / pids of running processes / command names (the
// program to start, whose own arguments are then completed as files).
inline constexpr const char* kFileValue = "FILE";
inline constexpr const char* kDirValue = "DIR";  // completed as file names too
inline constexpr const char* kPidValue = "PID";
inline constexpr const char* kCommandValue = "COMMAND";

// Restricts `option` to `choices` (any other value is a usage error, as with
// CLI::IsMember) and records them for optionChoices(). Returns `option`.
CLI::Option* restrictToChoices(CLI::Option* option, const std::vector<std::string>& choices);

// Records `choices` as the values `option` offers without checking them: for a command
// that checks the value itself (its own one-line error, or values it accepts but does not
// offer). Returns `option`.
CLI::Option* offerChoices(CLI::Option* option, const std::vector<std::string>& choices);

// The values recorded by restrictToChoices or offerChoices, in their order; empty if none.
std::vector<std::string> optionChoices(CLI::Option& option);

}  // namespace pyspy
