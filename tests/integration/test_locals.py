#!/usr/bin/env python3
"""Integration test of `pyspy-cpp dump --locals` against a live interpreter.

Run by ctest (tests/integration/CMakeLists.txt) with the system python3:

  test_locals.py --binary BUILD/pyspy-cpp PYTHON

Starts tests/targets/locals_target.py under PYTHON; its READY line names every argument
and local of its frames `holder`, `cell_holder` (cell variables: locals and an argument
captured by an inner function) and `reader` (that closure, with free variables) with
Python's own repr() and what `-l` and `-ll` must show. Then checks, for each of those
frames, that `dump -l` (text), `dump -l --json` and `dump -ll --json` show exactly those
names, each once, with exactly those values, and that a plain `dump` shows no locals.
Exit code 0 = passed, 1 = failed, 77 = skipped (the interpreter is not installed).
"""

import json
import os
import re
import subprocess
import sys

from driver_common import Failure, ReadyTarget, check, driver_main

HERE = os.path.dirname(os.path.abspath(__file__))
TARGET = os.path.normpath(os.path.join(HERE, "..", "targets", "locals_target.py"))
READY_TIMEOUT = 30.0


def start_target(python, target=TARGET):
    """Starts `target` under `python` for 60 s; returns its Popen (the caller kills it)
    and its READY document."""
    started = ReadyTarget([python, target, "60"], READY_TIMEOUT)
    return started.proc, started.ready


def dump(binary, pid, *flags):
    result = subprocess.run([binary, "dump", "--pid", str(pid)] + list(flags), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, universal_newlines=True, timeout=30)
    check(result.returncode == 0, "dump %s exited %d: %s" % (" ".join(flags), result.returncode, result.stderr))
    return result.stdout


def compare(shown, expected, key, what):
    """shown: [(name, repr)] of the holder frame; expected: the target's report."""
    names = [name for name, _ in shown]
    check(len(names) == len(set(names)), "%s: a name shown twice: %s" % (what, names))
    check(set(names) == set(expected), "%s: names %s, expected %s" % (what, sorted(names), sorted(expected)))
    for name, value in shown:
        check(value == expected[name][key],
              "%s: %s = %s, expected %s (repr %s)" % (what, name, value, expected[name][key], expected[name]["repr"]))


def holder_frame_json(document, function):
    for thread in document["threads"]:
        for frame in thread["frames"]:
            if frame["function"] == function:
                return frame
    raise Failure("no frame %s in the JSON dump" % function)


def holder_locals_text(text, function):
    lines = text.splitlines()
    header = re.compile(r"^    %s \(locals_target\.py:\d+\)$" % re.escape(function))
    for i, line in enumerate(lines):
        if header.match(line):
            shown = []
            for local in lines[i + 1:]:
                if not local.startswith("        "):
                    break
                check(" = " in local, "not a local: %r" % local)
                name, value = local[8:].split(" = ", 1)
                shown.append((name, value))
            return shown
    raise Failure("no frame %s in the text dump:\n%s" % (function, text))


def check_cells(frames):
    """The target's own report has the cell and free variables this test is about."""
    by_function = dict((frame["function"], frame["locals"]) for frame in frames)
    check(len(by_function) == 3, "the target reported frames %s" % sorted(by_function))
    cells = [names for function, names in by_function.items() if function.split(".")[-1] == "cell_holder"]
    free = [names for function, names in by_function.items() if function.split(".")[-1] == "reader"]
    check(len(cells) == 1 and len(free) == 1, "no cell_holder or reader frame: %s" % sorted(by_function))
    for names, what in ((cells[0], "cell_holder"), (free[0], "reader")):
        check(names.get("captured", {}).get("repr") == "['shared', 2]", "%s: captured %s" % (what, names))
        check(names.get("counter", {}).get("repr") == "42", "%s: counter %s" % (what, names))
        check("later" not in names, "%s: the empty cell later is reported" % what)
    check(set(cells[0]) == set(["counter", "kept", "captured", "plain", "reader"]),
          "cell_holder reported %s" % sorted(cells[0]))
    check(set(free[0]) == set(["step", "own", "captured", "counter"]), "reader reported %s" % sorted(free[0]))


def run(binary, python, tmp):
    with ReadyTarget([python, TARGET, "60"], READY_TIMEOUT) as target:
        proc, ready = target.proc, target.ready
        pid, frames = ready["pid"], ready["frames"]
        check(len(ready["locals"]) >= 25, "the target reported only %d locals" % len(ready["locals"]))
        check(frames[0]["function"] == ready["function"], "the first frame reported is %s" % frames[0]["function"])
        check_cells(frames)

        plain = dump(binary, pid)
        for frame in frames:
            check(holder_locals_text(plain, frame["function"]) == [], "dump without --locals shows locals")

        text = dump(binary, pid, "--locals")
        short_json = json.loads(dump(binary, pid, "-l", "--json"))
        long_json = json.loads(dump(binary, pid, "-ll", "--json"))
        for report in frames:
            function, expected = report["function"], report["locals"]
            compare(holder_locals_text(text, function), expected, "short", "%s: dump -l" % function)

            frame = holder_frame_json(short_json, function)
            check(frame.get("locals_error") is None, "%s: locals_error: %s" % (function, frame.get("locals_error")))
            compare([(v["name"], v["repr"]) for v in frame["locals"]], expected, "short",
                    "%s: dump -l --json" % function)

            frame = holder_frame_json(long_json, function)
            compare([(v["name"], v["repr"]) for v in frame["locals"]], expected, "long",
                    "%s: dump -ll --json" % function)

        plain_json = holder_frame_json(json.loads(dump(binary, pid, "--json")), ready["function"])
        check("locals" not in plain_json, "dump --json without --locals has a locals field")
        check(proc.poll() is None, "the target died during the dumps")


if __name__ == "__main__":
    sys.exit(driver_main(run, "pyspy-locals-"))
