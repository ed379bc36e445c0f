#!/usr/bin/env python3
"""Integration tests of the shell completions and the man page (`pyspy-cpp completions`).

Run by ctest (tests/integration/CMakeLists.txt) with the system python3; no interpreter:

  test_completions.py --binary BUILD/pyspy-cpp bash     # loads in bash; completes commands, options, values
  test_completions.py --binary BUILD/pyspy-cpp zsh      # parses (zsh -n) and registers with compinit
  test_completions.py --binary BUILD/pyspy-cpp fish     # parses (fish --no-execute) and completes
  test_completions.py --binary BUILD/pyspy-cpp install  # cmake --install: man page and scripts in place, man -l

What is expected is read from `pyspy-cpp --help` and `pyspy-cpp COMMAND --help` (the
subcommands, each command's options, the values of --format), never from a copy kept
here, so the checks follow the command line as it changes.

Exit code 0 = passed, 1 = failed, 77 = skipped (zsh or fish not installed).
"""

import os
import re
import shlex
import shutil
import subprocess
import sys

from driver_common import Failure, Skip, check, driver_main, log

PROGRAM = "pyspy-cpp"


def run(args, **kwargs):
    p = subprocess.run(args, capture_output=True, timeout=60, stdin=subprocess.DEVNULL, **kwargs)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def help_sections(binary, command=None):
    """`pyspy-cpp [COMMAND] --help`, as {section title: [its lines]} ("Options", "Subcommands", ...)."""
    code, out, err = run([binary] + ([command] if command else []) + ["--help"])
    check(code == 0, "%s --help: exit %d: %s" % (command or PROGRAM, code, err))
    sections, current = {}, None
    for line in out.split("\n"):
        header = re.match(r"^(\w[\w ]*):$", line)
        if header:
            current = sections.setdefault(header.group(1), [])
        elif current is not None and line.strip():
            current.append(line)
    return sections


def subcommands(binary):
    return {line.split()[0] for line in help_sections(binary)["Subcommands"] if line.startswith("  ") and
            not line.startswith("   ")}


def option_lines(binary, command):
    """The lines of `COMMAND --help` that start an option: "  -f,--format TEXT:{a,b} ..."."""
    return [line for line in help_sections(binary, command)["Options"] if re.match(r"^  -", line)]


def option_names(binary, command):
    names = set()
    for line in option_lines(binary, command):
        names.update(line.split()[0].split(","))
    return names


def format_values(binary, command):
    """The values `COMMAND --help` shows for --format: "-f,--format TEXT:{a,b,c}"."""
    for line in option_lines(binary, command):
        if "--format" in line.split()[0].split(","):
            match = re.search(r"\{([^}]*)\}", line)
            check(match, "%s --help: no values shown for --format: %r" % (command, line))
            return set(match.group(1).split(","))
    raise Failure("%s --help shows no --format" % command)


# Loads the script, finds the function `complete -p` names, and calls it the way bash
# does for the words given (the last one is the word being completed): one candidate a line.
BASH_COMPLETE = r'''
source <("$1" completions bash) || exit 3
spec=$(complete -p pyspy-cpp) || exit 4
function=${spec#*-F }
function=${function%% *}
shift
COMP_WORDS=("$@")
COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
COMP_LINE="${COMP_WORDS[*]}"
COMP_POINT=${#COMP_LINE}
"$function" pyspy-cpp "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\n' "${COMPREPLY[@]}"
'''


def bash_complete(binary, words, cwd=None):
    code, out, err = run(["bash", "-c", BASH_COMPLETE, "bash", binary] + words, cwd=cwd)
    check(code == 0 and not err, "completing %r: exit %d: %s" % (words, code, err))
    return {line for line in out.split("\n") if line}


def expect(got, expected, what):
    check(got == expected, "%s: got %s, expected %s" % (what, sorted(got), sorted(expected)))
    log("ok   %s: %d candidates" % (what, len(got)))


def test_bash(binary, _python, tmp):
    code, out, err = run(["bash", "-c", 'source <("$1" completions bash); complete -p pyspy-cpp', "bash", binary])
    check(code == 0 and not err, "loading the bash script: exit %d: %s" % (code, err))
    check(re.fullmatch(r"complete -F (\w+) pyspy-cpp\n", out), "complete -p pyspy-cpp: %r" % out)
    log("ok   loads: %s" % out.strip())

    commands = subcommands(binary)
    check({"dump", "record", "top", "diff", "completions"} <= commands, "--help lists %s" % sorted(commands))
    expect(bash_complete(binary, [PROGRAM, ""]), commands, "pyspy-cpp <TAB>")
    expect(bash_complete(binary, [PROGRAM, "d"]), {c for c in commands if c.startswith("d")}, "pyspy-cpp d<TAB>")
    expect(bash_complete(binary, [PROGRAM, "-"]), option_names(binary, None), "pyspy-cpp -<TAB>")

    for command in sorted(commands):
        names = option_names(binary, command)
        expect(bash_complete(binary, [PROGRAM, command, "--"]), {n for n in names if n.startswith("--")},
               "pyspy-cpp %s --<TAB>" % command)
    # dump's hidden --scan-only is in neither --help nor the completions.
    check("--scan-only" not in bash_complete(binary, [PROGRAM, "dump", "--"]), "dump offers the hidden --scan-only")

    for command in ("record", "diff"):
        values = format_values(binary, command)
        expect(bash_complete(binary, [PROGRAM, command, "--format", ""]), values, "%s --format <TAB>" % command)
        expect(bash_complete(binary, [PROGRAM, command, "-f", "r"]), {v for v in values if v.startswith("r")},
               "%s -f r<TAB>" % command)
        expect(bash_complete(binary, [PROGRAM, command, "--format", "="]), values, "%s --format=<TAB>" % command)
    expect(bash_complete(binary, [PROGRAM, "record", "-o", "out.svg", "--format", "sp"]), {"speedscope"},
           "record -o out.svg --format sp<TAB>")

    # Files: -o, diff BASE NEW, a started program's arguments; pids; the program itself.
    for name in ("base.txt", "new.txt", "other.svg"):
        open(os.path.join(tmp, name), "w").close()
    expect(bash_complete(binary, [PROGRAM, "diff", ""], cwd=tmp), {"base.txt", "new.txt", "other.svg"},
           "diff <TAB> (BASE)")
    expect(bash_complete(binary, [PROGRAM, "diff", "base.txt", "n"], cwd=tmp), {"new.txt"}, "diff base.txt n<TAB>")
    expect(bash_complete(binary, [PROGRAM, "diff", "-f", "raw", "base.txt", "n"], cwd=tmp), {"new.txt"},
           "diff -f raw base.txt n<TAB>")
    expect(bash_complete(binary, [PROGRAM, "record", "-o", "o"], cwd=tmp), {"other.svg"}, "record -o o<TAB>")
    expect(bash_complete(binary, [PROGRAM, "record", "--", "python3", "b"], cwd=tmp), {"base.txt"},
           "record -- python3 b<TAB>")
    check("python3" in bash_complete(binary, [PROGRAM, "record", "--", "python"]), "record -- python<TAB>: no python3")
    log("ok   record -- python<TAB> offers python3")
    pids = bash_complete(binary, [PROGRAM, "dump", "--pid", ""])
    check(str(os.getpid()) in pids and all(p.isdigit() for p in pids), "dump --pid <TAB>: %s" % sorted(pids)[:10])
    log("ok   dump --pid <TAB>: %d pids, this driver's among them" % len(pids))
    expect(bash_complete(binary, [PROGRAM, "completions", ""]), {"bash", "zsh", "fish"}, "completions <TAB>")

    # An unknown shell is a usage error, in one line.
    code, out, err = run([binary, "completions", "tcsh"])
    check(code == 2 and not out and len(err.strip().split("\n")) == 1 and "tcsh" in err,
          "completions tcsh: exit %d, stderr %r" % (code, err))
    log("ok   completions tcsh: exit 2: %s" % err.strip())


def write_script(binary, shell, tmp, name):
    code, out, err = run([binary, "completions", shell])
    check(code == 0 and out and not err, "completions %s: exit %d: %s" % (shell, code, err))
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(out)
    return path


def test_zsh(binary, _python, tmp):
    if not shutil.which("zsh"):
        raise Skip("zsh is not installed")
    path = write_script(binary, "zsh", tmp, "_pyspy-cpp")
    code, out, err = run(["zsh", "-n", path])
    check(code == 0 and not err, "zsh -n: exit %d: %s" % (code, err))
    log("ok   zsh -n")
    # Sourced after compinit, it registers its function for pyspy-cpp.
    code, out, err = run(["zsh", "-f", "-c", 'autoload -U compinit && compinit -u -D && source "$1" && '
                          'print -r -- "$_comps[pyspy-cpp]"', "zsh", path])
    check(code == 0 and out.strip() == "_pyspy-cpp" and not err, "zsh compdef: exit %d: %r %s" % (code, out, err))
    log("ok   zsh: sourced, pyspy-cpp is completed by %s" % out.strip())


def fish_complete(path, line):
    code, out, err = run(["fish", "--no-config", "-c", "source %s; complete -C %s" % (shlex.quote(path),
                                                                                    shlex.quote(line))])
    check(code == 0 and not err, "fish complete -C %r: exit %d: %s" % (line, code, err))
    return {entry.split("\t")[0] for entry in out.split("\n") if entry}


def test_fish(binary, _python, tmp):
    if not shutil.which("fish"):
        raise Skip("fish is not installed")
    path = write_script(binary, "fish", tmp, "pyspy-cpp.fish")
    code, out, err = run(["fish", "--no-config", "--no-execute", path])
    check(code == 0 and not err, "fish --no-execute: exit %d: %s" % (code, err))
    log("ok   fish --no-execute")
    expect(fish_complete(path, "pyspy-cpp "), subcommands(binary), "fish: pyspy-cpp <TAB>")
    expect(fish_complete(path, "pyspy-cpp record --format "), format_values(binary, "record"),
           "fish: record --format <TAB>")
    names = {n for n in option_names(binary, "record") if n.startswith("--")}
    expect(fish_complete(path, "pyspy-cpp record --"), names, "fish: record --<TAB>")


def test_install(binary, _python, tmp):
    build = os.path.dirname(binary)
    prefix = os.path.join(tmp, "prefix")
    cmake = os.environ.get("PYSPY_CMAKE", "cmake")
    code, out, err = run([cmake, "--install", build, "--prefix", prefix])
    check(code == 0, "cmake --install: exit %d: %s %s" % (code, out, err))
    expected = {
        "bin/pyspy-cpp": None,
        "share/man/man1/pyspy-cpp.1": "man",
        "share/bash-completion/completions/pyspy-cpp": "bash",
        "share/zsh/vendor-completions/_pyspy-cpp": "zsh",
        "share/fish/vendor_completions.d/pyspy-cpp.fish": "fish",
    }
    for relative, what in sorted(expected.items()):
        path = os.path.join(prefix, relative)
        check(os.path.isfile(path), "cmake --install: no %s" % relative)
        if what:
            with open(path) as f:
                installed = f.read()
            code, printed, err = run([binary, "completions", what])
            check(code == 0 and installed == printed, "%s is not what `completions %s` prints" % (relative, what))
        log("ok   installed %s" % relative)

    page = os.path.join(prefix, "share/man/man1/pyspy-cpp.1")
    env = dict(os.environ, MANWIDTH="80", LC_ALL="C", MAN_KEEP_FORMATTING="")
    env.pop("MANPAGER", None)
    env.pop("PAGER", None)
    code, out, err = run(["man", "-l", page], env=env)
    check(code == 0 and not err.strip(), "man -l: exit %d: %s" % (code, err))
    text = re.sub(r".\x08", "", out)
    for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "COMMANDS", "EXIT STATUS", "SEE ALSO"):
        check(re.search(r"^%s$" % section, text, re.M), "man -l: no section %s" % section)
    for command in subcommands(binary):
        check(re.search(r"^ +pyspy-cpp %s$" % command, text, re.M), "man -l: no subsection for %s" % command)
    for option in option_names(binary, "record"):
        check(option in text, "man -l: record's %s is missing" % option)
    for value in format_values(binary, "record"):
        check(value in text, "man -l: --format's %s is missing" % value)
    check(all(len(line) <= 80 for line in text.split("\n")), "man -l: a line is wider than MANWIDTH=80")
    check("scan-only" not in text, "man -l: shows the hidden --scan-only")
    log("ok   man -l renders: %d lines, every section, command and record option" % len(text.split("\n")))
    if shutil.which("groff"):
        code, out, err = run(["groff", "-ww", "-z", "-man", page])
        check(code == 0 and not err, "groff -ww -z -man: exit %d: %s" % (code, err))
        log("ok   groff -ww -z -man: no warnings")


if __name__ == "__main__":
    sys.exit(driver_main({"bash": test_bash, "zsh": test_zsh, "fish": test_fish, "install": test_install},
                         "pyspy-completions-", needs_python=set()))
