#include "pyspy/cli/completions.h"

#include <algorithm>
#include <cctype>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <CLI/CLI.hpp>

#include "pyspy/cli/option_values.h"
#include "pyspy/common/error.h"

namespace pyspy {

namespace {

// ---- Walking the CLI11 definitions ----

// The type name without the validators' descriptions CLI11 appends ("TEXT:{a,b}" -> "TEXT").
std::string baseTypeName(const CLI::Option& option) {
    std::string name = option.get_type_name();
    if (const auto colon = name.find(':'); colon != std::string::npos) name.resize(colon);
    return name;
}

std::string upperCase(std::string text) {
    for (char& c : text) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return text;
}

CliOption describeOption(CLI::Option& option) {
    CliOption out;
    for (const auto& name : option.get_snames()) out.shortNames.push_back("-" + name);
    for (const auto& name : option.get_lnames()) out.longNames.push_back("--" + name);
    if (out.shortNames.empty() && out.longNames.empty()) out.name = option.get_name(true);
    out.help = option.get_description();
    out.defaultValue = option.get_default_str();
    out.required = option.get_required();
    out.repeatable = option.get_items_expected_max() > 1;
    const bool flag = option.get_expected_max() == 0;  // add_flag: expected(0)
    if (flag) return out;
    out.choices = optionChoices(option);
    const std::string typeName = baseTypeName(option);
    if (!out.choices.empty()) {
        out.value = ValueKind::Choice;
        out.valueName = !out.name.empty()
                            ? out.name
                            : upperCase(option.get_lnames().empty() ? option.get_snames()[0] : option.get_lnames()[0]);
    } else {
        out.value = typeName == kFileValue || typeName == kDirValue ? ValueKind::File
                    : typeName == kPidValue                         ? ValueKind::Pid
                    : typeName == kCommandValue                     ? ValueKind::Command
                                                                    : ValueKind::Any;
        out.valueName = typeName.empty() ? "VALUE" : typeName;
    }
    return out;
}

// The names of an option, "-o|--output" (a bash case pattern) with separator "|".
std::string joinedNames(const CliOption& option, std::string_view separator) {
    std::vector<std::string> names = option.shortNames;
    names.insert(names.end(), option.longNames.begin(), option.longNames.end());
    return fmt::format("{}", fmt::join(names, separator));
}

std::vector<const CliOption*> valueOptions(const CliCommand& command) {
    std::vector<const CliOption*> out;
    for (const auto& option : command.options) {
        if (option.value != ValueKind::None) out.push_back(&option);
    }
    return out;
}

// An identifier made of `text` (bash and zsh function names).
std::string identifier(std::string_view text) {
    std::string out;
    for (const char c : text) out += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
    return out;
}

// `text` between single quotes for a POSIX shell (and zsh): ' becomes '\''.
std::string shellQuoted(std::string_view text) {
    std::string out = "'";
    for (const char c : text) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

// ---- bash ----

// The completion of one value, by what it is: a call of the script's _value helper.
std::string bashValue(const CliOption& option, std::string_view helper) {
    switch (option.value) {
        case ValueKind::Choice:
            return fmt::format("{} choice {}", helper, fmt::join(option.choices, " "));
        case ValueKind::File:
            return fmt::format("{} file", helper);
        case ValueKind::Pid:
            return fmt::format("{} pid", helper);
        case ValueKind::Command:
            return fmt::format("{} command", helper);
        case ValueKind::None:
        case ValueKind::Any:
            break;
    }
    return "COMPREPLY=()";
}

std::string bashAllNames(const CliCommand& command) {
    std::vector<std::string> names;
    for (const auto& option : command.options) {
        names.insert(names.end(), option.shortNames.begin(), option.shortNames.end());
        names.insert(names.end(), option.longNames.begin(), option.longNames.end());
    }
    return fmt::format("{}", fmt::join(names, " "));
}

// The case pattern of a command's options that take a value ("-o|--output|-f|--format").
std::string bashValuePattern(const CliCommand& command) {
    std::vector<std::string> patterns;
    for (const CliOption* option : valueOptions(command)) patterns.push_back(joinedNames(*option, "|"));
    return fmt::format("{}", fmt::join(patterns, "|"));
}

// `case $prev in NAMES) <complete the value>; return ;; ... esac`, for the options of
// `command` that take a value, each line starting with `indent`; empty if there are none.
std::string bashValueOfPrevious(const CliCommand& command, const std::string& helper, std::string_view indent) {
    const auto options = valueOptions(command);
    if (options.empty()) return "";
    std::string out = fmt::format("{}case $prev in\n", indent);
    for (const CliOption* option : options) {
        out += fmt::format("{}    {}) {}; return ;;\n", indent, joinedNames(*option, "|"), bashValue(*option, helper));
    }
    return out + fmt::format("{}esac\n", indent);
}

// _<program>_<command> CUR PREV FIRST: completes a word of one subcommand, whose own
// words start at index FIRST of COMP_WORDS.
std::string bashCommandFunction(const CliCommand& command, const std::string& prefix) {
    const std::string helper = prefix + "_value \"$cur\"";
    std::string out = fmt::format("{}_{}() {{\n", prefix, identifier(command.name));
    out += "    local cur=$1 prev=$2 i n=0 options=1\n";
    out += "    # n: how many positional words precede the one completed; options: no -- seen yet\n";
    out += "    for (( i = $3; i < COMP_CWORD; i++ )); do\n";
    out += "        if (( options )); then\n";
    out += "            case ${COMP_WORDS[i]} in\n";
    out += "                --) options=0; continue ;;\n";
    if (const std::string pattern = bashValuePattern(command); !pattern.empty()) {
        out += fmt::format("                {})\n", pattern);
        out += "                    [[ ${COMP_WORDS[i+1]} == = ]] && i=$((i + 1))\n";
        out += "                    i=$((i + 1)); continue ;;\n";
    }
    out += "                -*) continue ;;\n";
    out += "            esac\n";
    out += "        fi\n";
    out += "        n=$((n + 1))\n";
    out += "    done\n";
    out += "    if (( options )); then\n";
    out += bashValueOfPrevious(command, helper, "        ");
    out += fmt::format("        if [[ $cur == -* ]]; then {} choice {}; return; fi\n", helper, bashAllNames(command));
    out += "    fi\n";
    if (!command.positionals.empty()) {
        out += "    case $n in\n";
        for (std::size_t i = 0; i < command.positionals.size(); ++i) {
            const CliOption& positional = command.positionals[i];
            if (positional.value == ValueKind::Command) {
                // The program to start: only after --, options before it; its own arguments are files.
                out += fmt::format("        {}) if (( options )); then {} choice {}; else {} command; fi ;;\n", i,
                                   helper, bashAllNames(command), helper);
            } else {
                out += fmt::format("        {}) {} ;;\n", i, bashValue(positional, helper));
            }
        }
        if (const CliOption& last = command.positionals.back(); last.repeatable) {
            out += fmt::format("        *) {} ;;\n",
                               last.value == ValueKind::Command ? helper + " file" : bashValue(last, helper));
        }
        out += "    esac\n";
    }
    out += "}\n\n";
    return out;
}

// ---- zsh ----

// `text` for the [description] of an _arguments spec: brackets and backslashes escaped.
std::string zshDescription(std::string_view text) {
    std::string out;
    for (const char c : text) {
        if (c == '[' || c == ']' || c == '\\') out += '\\';
        out += c;
    }
    return out;
}

std::string zshAction(const CliOption& option) {
    switch (option.value) {
        case ValueKind::Choice:
            return fmt::format("({})", fmt::join(option.choices, " "));
        case ValueKind::File:
            return "_files";
        case ValueKind::Pid:
            return "_pids";
        case ValueKind::Command:
            return "_command_names -e";
        case ValueKind::None:
        case ValueKind::Any:
            break;
    }
    return " ";
}

// One _arguments spec per option or positional, each a shell word.
std::vector<std::string> zshSpecs(const CliCommand& command) {
    std::vector<std::string> specs;
    for (const auto& option : command.options) {
        const std::string names = joinedNames(option, ",");
        const bool several = option.shortNames.size() + option.longNames.size() > 1;
        std::string value;
        if (option.value != ValueKind::None) value = fmt::format(":{}:{}", option.valueName, zshAction(option));
        const std::string body = shellQuoted(fmt::format("[{}]{}", zshDescription(option.help), value));
        if (option.repeatable) {
            specs.push_back(several ? fmt::format("'*'{{{}}}{}", names, body) : fmt::format("'*'{}{}", names, body));
        } else if (several) {
            specs.push_back(fmt::format("'({})'{{{}}}{}", joinedNames(option, " "), names, body));
        } else {
            specs.push_back(names + body);
        }
    }
    for (std::size_t i = 0; i < command.positionals.size(); ++i) {
        const CliOption& positional = command.positionals[i];
        if (positional.repeatable && positional.value == ValueKind::Command) {
            specs.push_back(shellQuoted(fmt::format("*::{}:_normal", positional.name)));
        } else {
            const std::string position = positional.repeatable ? "*" : std::to_string(i + 1);
            specs.push_back(shellQuoted(fmt::format("{}:{}:{}", position, positional.name, zshAction(positional))));
        }
    }
    return specs;
}

std::string zshArguments(const CliCommand& command, std::string_view extraFlags, std::string_view indent) {
    std::string out = fmt::format("{}_arguments -s -S{}", indent, extraFlags);
    for (const auto& spec : zshSpecs(command)) out += fmt::format(" \\\n{}    {}", indent, spec);
    return out;
}

// ---- fish ----

std::string fishQuoted(std::string_view text) {
    std::string out = "'";
    for (const char c : text) {
        if (c == '\'' || c == '\\') out += '\\';
        out += c;
    }
    return out + "'";
}

std::string fishValue(const CliOption& option) {
    switch (option.value) {
        case ValueKind::Choice:
            return fmt::format(" -x -a {}", fishQuoted(fmt::format("{}", fmt::join(option.choices, " "))));
        case ValueKind::File:
            return " -r -F";
        case ValueKind::Pid:
            return " -x -a '(__fish_complete_pids)'";
        case ValueKind::Command:
            return " -x -a '(__fish_complete_command)'";
        case ValueKind::Any:
            return " -x";
        case ValueKind::None:
            break;
    }
    return "";
}

// The completion of a subcommand's positional arguments (nothing for a value of any kind).
std::string fishPositional(const std::string& program, const CliCommand& command, const CliOption& positional) {
    std::string condition = "__fish_seen_subcommand_from " + command.name;
    std::string candidates;
    switch (positional.value) {
        case ValueKind::Choice:
            candidates = " -a " + fishQuoted(fmt::format("{}", fmt::join(positional.choices, " ")));
            break;
        case ValueKind::File:
            candidates = " -F";
            break;
        case ValueKind::Pid:
            candidates = " -a '(__fish_complete_pids)'";
            break;
        case ValueKind::Command: {
            // After --: the program, then its own arguments as its completions give them.
            condition += "; and contains -- -- (commandline -opc)";
            std::vector<std::string> valueNames;  // skipped with their value to find the program
            for (const CliOption* option : valueOptions(command)) valueNames.push_back(joinedNames(*option, " "));
            candidates = fmt::format(" -a {}", fishQuoted(fmt::format("(__fish_complete_subcommand --fcs-skip=2 {})",
                                                                      fmt::join(valueNames, " "))));
            break;
        }
        case ValueKind::None:
        case ValueKind::Any:
            return "";
    }
    return fmt::format("complete -c {} -n {}{}\n", program, fishQuoted(condition), candidates);
}

std::string fishOption(const std::string& program, const std::string& condition, const CliOption& option) {
    std::string line = fmt::format("complete -c {} -n {}", program, fishQuoted(condition));
    for (const auto& name : option.shortNames) line += " -s " + name.substr(1);
    for (const auto& name : option.longNames) line += " -l " + name.substr(2);
    return line + fishValue(option) + " -d " + fishQuoted(option.help) + "\n";
}

// ---- roff ----

// Text for roff: backslashes escaped, a line never starting with a control character.
std::string roffText(std::string_view text) {
    std::string out;
    for (const char c : text) {
        if (c == '\\') {
            out += "\\e";
        } else {
            if ((c == '.' || c == '\'') && (out.empty() || out.back() == '\n')) out += "\\&";
            out += c;
        }
    }
    return out;
}

// An option or command name in roff: bold, with its dashes as minus signs.
std::string roffName(std::string_view name) {
    std::string out = "\\fB";
    for (const char c : name) out += c == '-' ? std::string("\\-") : std::string(1, c);
    return out + "\\fR";
}

std::string roffOption(const CliOption& option) {
    std::vector<std::string> names;
    for (const auto& name : option.shortNames) names.push_back(roffName(name));
    for (const auto& name : option.longNames) names.push_back(roffName(name));
    std::string head = option.name.empty() ? fmt::format("{}", fmt::join(names, ", "))
                                           : fmt::format("\\fI{}\\fR", roffText(option.name));
    if (option.name.empty() && option.value != ValueKind::None) {
        head += fmt::format(" \\fI{}\\fR", roffText(option.valueName));
    }
    if (!option.name.empty() && option.repeatable) head += "...";
    std::string body = roffText(option.help);
    if (!option.choices.empty()) {
        std::vector<std::string> choices;
        for (const auto& choice : option.choices) choices.push_back(roffName(choice));
        body += fmt::format("\n.br\nOne of: {}.", fmt::join(choices, ", "));
    }
    if (!option.defaultValue.empty()) body += fmt::format("\n.br\nDefault: {}.", roffText(option.defaultValue));
    return fmt::format(".TP\n{}\n{}\n", head, body);
}

// "pyspy-cpp record [OPTIONS] [program...]" in roff.
std::string roffSynopsis(const std::string& program, const CliCommand& command) {
    std::string out = fmt::format(".B {} {}\n", program, command.name);
    if (!command.options.empty()) out += ".RI [ OPTIONS ]\n";
    for (const auto& positional : command.positionals) {
        const std::string dots = positional.repeatable ? "..." : "";
        out += positional.required ? fmt::format(".I {}{}\n", roffText(positional.name), dots)
                                   : fmt::format(".RI [ {} {}]\n", roffText(positional.name), dots);
    }
    return out;
}

// The program's description without a leading "PROGRAM: ".
std::string summary(const CliCommand& root) {
    std::string help = root.help;
    if (const std::string prefix = root.name + ": "; help.starts_with(prefix)) help.erase(0, prefix.size());
    return help;
}

}  // namespace

CliCommand describeCli(CLI::App& app) {
    CliCommand out;
    out.name = app.get_name();
    out.help = app.get_description();
    for (CLI::Option* option : app.get_options()) {
        if (option->get_group().empty()) continue;  // hidden
        CliOption described = describeOption(*option);
        (described.name.empty() ? out.options : out.positionals).push_back(std::move(described));
    }
    for (CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) {
        if (sub->get_group().empty()) continue;
        out.subcommands.push_back(describeCli(*sub));
    }
    return out;
}

std::string bashCompletionFunction(const CliCommand& root) {
    return "_" + identifier(root.name);
}

std::string bashCompletion(const CliCommand& root) {
    const std::string function = bashCompletionFunction(root);
    std::string out = fmt::format(
        "# bash completion for {0}, generated by `{0} completions bash` from its own definitions.\n"
        "# Enable it with: source <({0} completions bash)\n\n",
        root.name);
    out += fmt::format(
        "# {0}_value CUR KIND [CHOICE...]: the candidates for CUR, by what the value is.\n"
        "{0}_value() {{\n"
        "    local cur=$1 kind=$2\n"
        "    shift 2\n"
        "    case $kind in\n"
        "        choice) mapfile -t COMPREPLY < <(compgen -W \"$*\" -- \"$cur\") ;;\n"
        "        file) compopt -o filenames 2>/dev/null; mapfile -t COMPREPLY < <(compgen -f -- \"$cur\") ;;\n"
        "        command) mapfile -t COMPREPLY < <(compgen -c -- \"$cur\") ;;\n"
        "        pid)\n"
        "            local pids=(/proc/[0-9]*)\n"
        "            mapfile -t COMPREPLY < <(compgen -W \"${{pids[*]#/proc/}}\" -- \"$cur\") ;;\n"
        "        *) COMPREPLY=() ;;\n"
        "    esac\n"
        "}}\n\n",
        function);
    for (const auto& command : root.subcommands) out += bashCommandFunction(command, function);

    std::vector<std::string> commandNames;
    for (const auto& command : root.subcommands) commandNames.push_back(command.name);
    out += fmt::format("{}() {{\n", function);
    out += "    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} i command= first\n";
    out += "    # --option=value is split at '=' (COMP_WORDBREAKS)\n";
    out += "    if [[ $cur == = ]]; then\n";
    out += "        cur=\n";
    out += "    elif [[ $prev == = ]] && (( COMP_CWORD > 1 )); then\n";
    out += "        prev=${COMP_WORDS[COMP_CWORD-2]}\n";
    out += "    fi\n";
    out += "    for (( i = 1; i < COMP_CWORD; i++ )); do\n";
    out += "        case ${COMP_WORDS[i]} in\n";
    if (const std::string pattern = bashValuePattern(root); !pattern.empty()) {
        out += fmt::format("            {}) i=$((i + 1)) ;;\n", pattern);
    }
    out += "            -*|=) ;;\n";
    out += "            *) command=${COMP_WORDS[i]}; first=$((i + 1)); break ;;\n";
    out += "        esac\n";
    out += "    done\n";
    out += "    case $command in\n";
    out += "        \"\")\n";
    out += bashValueOfPrevious(root, function + "_value \"$cur\"", "            ");
    out += fmt::format(
        "            if [[ $cur == -* ]]; then {0}_value \"$cur\" choice {1}; else {0}_value \"$cur\" choice {2}; fi "
        ";;\n",
        function, bashAllNames(root), fmt::join(commandNames, " "));
    for (const auto& command : root.subcommands) {
        out += fmt::format("        {}) {}_{} \"$cur\" \"$prev\" \"$first\" ;;\n", command.name, function,
                           identifier(command.name));
    }
    out += "    esac\n";
    out += "}\n\n";
    out += fmt::format("complete -F {} {}\n", function, root.name);
    return out;
}

std::string zshCompletion(const CliCommand& root) {
    const std::string function = "_" + root.name;
    std::string out = fmt::format(
        "#compdef {0}\n"
        "# zsh completion for {0}, generated by `{0} completions zsh` from its own definitions.\n"
        "# Install it as {1} in a directory of $fpath, or: source <({0} completions zsh)\n\n",
        root.name, function);
    for (const auto& command : root.subcommands) {
        out += fmt::format("{}_{}() {{\n{}\n}}\n\n", function, identifier(command.name),
                           zshArguments(command, "", "    "));
    }
    out += fmt::format("{}() {{\n", function);
    out += "    local curcontext=$curcontext state line\n";
    out += "    typeset -A opt_args\n";
    CliCommand top = root;
    top.positionals.clear();
    out += zshArguments(top, " -C", "    ");
    out += " \\\n        '1: :->command' \\\n        '*:: :->argument'\n";
    out += "    case $state in\n";
    out += "        command)\n";
    out += "            local -a commands=(\n";
    for (const auto& command : root.subcommands) {
        out += fmt::format("                {}\n", shellQuoted(command.name + ":" + command.help));
    }
    out += "            )\n";
    out += fmt::format("            _describe -t commands '{} command' commands ;;\n", root.name);
    out += "        argument)\n";
    out += "            case $line[1] in\n";
    for (const auto& command : root.subcommands) {
        out += fmt::format("                {}) {}_{} ;;\n", command.name, function, identifier(command.name));
    }
    out += "            esac ;;\n";
    out += "    esac\n";
    out += "}\n\n";
    // Autoloaded from $fpath, the file is the function's body; sourced, it registers it.
    out += fmt::format("if [[ $funcstack[1] == {0} ]]; then\n    {0} \"$@\"\nelse\n    compdef {0} {1}\nfi\n", function,
                       root.name);
    return out;
}

std::string fishCompletion(const CliCommand& root) {
    std::string out = fmt::format(
        "# fish completion for {0}, generated by `{0} completions fish` from its own definitions.\n"
        "# Enable it with: {0} completions fish | source\n\n",
        root.name);
    out += fmt::format("complete -c {} -f\n", root.name);
    const std::string atTop = "__fish_use_subcommand";
    for (const auto& option : root.options) out += fishOption(root.name, atTop, option);
    for (const auto& command : root.subcommands) {
        out +=
            fmt::format("complete -c {} -n {} -a {} -d {}\n", root.name, atTop, command.name, fishQuoted(command.help));
    }
    for (const auto& command : root.subcommands) {
        const std::string inCommand = "__fish_seen_subcommand_from " + command.name;
        for (const auto& option : command.options) out += fishOption(root.name, inCommand, option);
        std::string previous;  // BASE NEW: one line for both
        for (const auto& positional : command.positionals) {
            std::string line = fishPositional(root.name, command, positional);
            if (line != previous) out += line;
            previous = std::move(line);
        }
    }
    return out;
}

std::string manPage(const CliCommand& root, std::string_view version) {
    const std::string program = roffText(root.name);
    std::string out = fmt::format(
        ".\\\" The man page of {0}, generated by `{0} completions man` from its own definitions.\n"
        ".TH {1} 1 \"\" \"{0} {2}\" \"User Commands\"\n"
        ".nh\n.ad l\n",
        program, upperCase(program), roffText(version));
    out += fmt::format(".SH NAME\n{} \\- {}\n", program, roffText(summary(root)));

    out += ".SH SYNOPSIS\n";
    out += fmt::format(".B {}\n.I COMMAND\n.RI [ OPTIONS ]\n", program);
    for (const auto& command : root.subcommands) out += ".br\n" + roffSynopsis(program, command);

    out += ".SH DESCRIPTION\n";
    out += roffText(root.help) + ".\n";
    out += ".PP\nEach command has its own options, listed under COMMANDS below and by\n";
    out += fmt::format(".BI \"{} \" COMMAND \" \\-\\-help\"\\fR.\n", program);

    out += ".SH OPTIONS\n";
    for (const auto& option : root.options) out += roffOption(option);

    out += ".SH COMMANDS\n";
    for (const auto& command : root.subcommands) {
        out += fmt::format(".SS \"{} {}\"\n", program, roffText(command.name));
        out += roffText(command.help) + "\n";
        for (const auto& positional : command.positionals) out += roffOption(positional);
        for (const auto& option : command.options) out += roffOption(option);
    }

    out += ".SH EXIT STATUS\n";
    out += ".TP\n.B 0\nsuccess\n";
    for (const ErrorKind kind : kErrorKinds) {
        out += fmt::format(".TP\n.B {}\n{}\n", exitCode(kind), roffText(toString(kind)));
    }
    out += ".PP\nA program started with\n.B \\-\\- PROGRAM\n";
    out += "gives its own exit status when it exits by itself (128 + N when signal N ends it).\n";

    out += ".SH SEE ALSO\n";
    out += ".BR ptrace (2),\n.BR proc (5)\n.PP\n";
    out += "README.md and docs/ in the source of pyspy\\-cpp.\n";
    return out;
}

}  // namespace pyspy
