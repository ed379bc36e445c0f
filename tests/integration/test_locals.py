#!/usr/bin/env python3
"""Integration test of `pyspy-cpp dump --locals` against a live interpreter.

Run by ctest (tests/integration/CMakeLists.txt) with the system python3:

  test_locals.py --binary BUILD/pyspy-cpp PYTHON

Starts tests/targets/locals_target.py under PYTHON; its READY line names every argument
and local of its frame `holder` with Python's own repr() and what `-l` and `-ll` must
show. Then checks, for that frame, that `dump -l` (text), `dump -l --json` and
`dump -ll --json` show exactly those names with exactly those values, and that a plain
`dump` shows no locals. Exit code 0 = passed, 1 = failed, 77 = skipped (the
interpreter is not installed).
"""

import json
import os
import re
import select
import subprocess
import sys
import time

from driver_common import Failure, check, driver_main

HERE = os.path.dirname(os.path.abspath(__file__))
TARGET = os.path.normpath(os.path.join(HERE, "..", "targets", "locals_target.py"))
READY_TIMEOUT = 30.0


def start_target(python, target=TARGET):
    """Starts `target` under `python` for 60 s; returns it and its READY document."""
    proc = subprocess.Popen([python, target, "60"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            universal_newlines=True)
    deadline = time.time() + READY_TIMEOUT
    while time.time() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.time()))
        if not ready:
            break
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith("READY "):
            return proc, json.loads(line[len("READY "):])
    proc.kill()
    raise Failure("target did not report READY: %s" % proc.stderr.read())


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


def run(binary, python, tmp):
    proc, ready = start_target(python)
    try:
        pid, function, expected = ready["pid"], ready["function"], ready["locals"]
        check(len(expected) >= 25, "the target reported only %d locals" % len(expected))

        plain = dump(binary, pid)
        check(holder_locals_text(plain, function) == [], "dump without --locals shows locals")

        text = dump(binary, pid, "--locals")
        compare(holder_locals_text(text, function), expected, "short", "dump -l")

        frame = holder_frame_json(json.loads(dump(binary, pid, "-l", "--json")), function)
        check(frame.get("locals_error") is None, "locals_error: %s" % frame.get("locals_error"))
        compare([(v["name"], v["repr"]) for v in frame["locals"]], expected, "short", "dump -l --json")

        frame = holder_frame_json(json.loads(dump(binary, pid, "-ll", "--json")), function)
        compare([(v["name"], v["repr"]) for v in frame["locals"]], expected, "long", "dump -ll --json")

        plain_json = holder_frame_json(json.loads(dump(binary, pid, "--json")), function)
        check("locals" not in plain_json, "dump --json without --locals has a locals field")
        check(proc.poll() is None, "the target died during the dumps")
    finally:
        proc.kill()
        proc.wait()


if __name__ == "__main__":
    sys.exit(driver_main(run, "pyspy-locals-"))
