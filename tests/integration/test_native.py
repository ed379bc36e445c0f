#!/usr/bin/env python3
"""Integration test of `pyspy-cpp dump --native` and `record --native` against a live
interpreter. Run by ctest (tests/integration/CMakeLists.txt) with the system python3:

  test_native.py --binary BUILD/pyspy-cpp CASE PYTHON

Cases (tests/targets/native_target.py is the target):
  ext     tests/targets/native_ext.c is compiled with gcc against PYTHON's headers; the
          main thread runs outer_py -> call_back (C) -> inner_py, a thread spinner_py ->
          spin (C). dump --native (JSON and text) must show Python and C frames
          interleaved in that order with the C functions' names, no eval-loop frame,
          and --native-all must add the interpreter's own frames; --native with
          --nonblocking is a usage error (exit 2).
  qsort   ctypes calls libc's qsort with a Python comparison callback: a qsort-family
          libc frame sits between compare and sort_them.
  record  record --native -f raw of the ext target: a collapsed stack holds
          outer_py;...;native_ext_call_back;...;inner_py in that order.
  top     top --native (plain-text snapshots) of the ext target has rows for the
          spinner's C functions.
Exit code 0 = passed, 1 = failed, 77 = skipped (the interpreter is not installed).
"""

import json
import os
import re
import select
import subprocess
import sys
import time

from driver_common import Failure, build_extension, check, driver_main, log

HERE = os.path.dirname(os.path.abspath(__file__))
TARGETS = os.path.normpath(os.path.join(HERE, "..", "targets"))
TARGET = os.path.join(TARGETS, "native_target.py")
READY_TIMEOUT = 30.0
USAGE_EXIT = 2

def start_target(python, args, wanted):
    """Starts the target; returns it once it printed every line of `wanted`."""
    proc = subprocess.Popen([python, TARGET] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    missing = set(wanted)
    deadline = time.time() + READY_TIMEOUT
    pending = b""
    seen = []
    # Raw reads: two writers (Python's and C's stdout) may land in one read, which a
    # buffered readline would keep from select().
    while missing and time.time() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.time()))
        if not ready:
            break
        chunk = os.read(proc.stdout.fileno(), 4096)
        if not chunk:
            break
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            seen.append(line.strip().decode("utf-8", "replace"))
            missing.discard(seen[-1])
    if missing:
        alive = proc.poll() is None
        proc.kill()
        raise Failure("target did not print %s (printed %s, then %r; %s): %s"
                      % (sorted(missing), seen, pending, "still running" if alive else "exited %s" % proc.returncode,
                         proc.stderr.read().decode("utf-8", "replace")))
    return proc


def stop(proc):
    proc.kill()
    proc.wait()


def run(binary, args, timeout=60):
    return subprocess.run([binary] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=timeout)


def dump_json(binary, pid, *flags):
    result = run(binary, ["dump", "--pid", str(pid), "--json"] + list(flags))
    check(result.returncode == 0, "dump --json %s exited %d: %s" % (" ".join(flags), result.returncode,
                                                                   result.stderr))
    return json.loads(result.stdout)


def base(path):
    return os.path.basename(path or "")


def frames_of(document, python_function):
    """The merged frames of the thread whose stack has the Python function."""
    for thread in document["threads"]:
        if any(f["kind"] == "python" and f["function"] == python_function for f in thread["frames"]):
            check(not thread.get("merge_failed"), "merge failed for the thread of %s: %s"
                  % (python_function, thread.get("native_error")))
            return thread["frames"]
    raise Failure("no thread runs %s: %s" % (python_function, json.dumps(document)[:4000]))


def describe(frames):
    return " | ".join("%s:%s" % (f["kind"][0], f["function"]) for f in frames)


def index_of(frames, kind, pattern, start=0, module=None):
    """Index of the first frame at or after `start` of `kind` whose function matches."""
    for i in range(start, len(frames)):
        f = frames[i]
        if f["kind"] == kind and re.fullmatch(pattern, f["function"]) and (
                module is None or re.match(module, base(f.get("module")))):
            return i
    raise Failure("no %s frame %s (module %s) at or after position %d: %s"
                  % (kind, pattern, module, start, describe(frames)))


def expect_in_order(frames, expected):
    """expected: [(kind, function regex, module regex or None)], innermost first."""
    position = 0
    for kind, pattern, module in expected:
        position = index_of(frames, kind, pattern, position, module) + 1


def python_functions(frames):
    return [f["function"] for f in frames if f["kind"] == "python"]


def is_interpreter_module(module):
    name = base(module)
    return name.startswith("libpython") or re.fullmatch(r"python[0-9.]*[dmut]*", name) is not None


EVAL_LOOP = r"(_PyEval_EvalFrameDefault|PyEval_EvalFrameEx)(\..*)?"


def check_no_interpreter_frames(frames, what):
    for f in frames:
        if f["kind"] == "native":
            check(not re.fullmatch(EVAL_LOOP, f["function"]), "%s: eval-loop frame shown: %s" % (what, describe(frames)))
            check(not is_interpreter_module(f.get("module")),
                  "%s: interpreter frame %s (%s) shown without --native-all" % (what, f["function"], f.get("module")))


MAIN_EXPECTED = [("python", r"inner_py", None),
                 ("native", r"native_ext_call_python", r"native_ext"),
                 ("native", r"native_ext_call_back", r"native_ext"),
                 ("python", r"outer_py", None),
                 ("python", r"<module>", None)]
SPINNER_EXPECTED = [("native", r"native_ext_spin_loop", r"native_ext"),
                    ("native", r"native_ext_spin", r"native_ext"),
                    ("python", r"spinner_py", None),
                    ("python", r"(Thread\.)?run", None)]


def start_ext_target(python, tmp):
    build_extension(python, tmp)
    return start_target(python, ["ext", tmp, "60"], ["ready", "spin-ready"])


def test_ext(binary, python, tmp):
    proc = start_ext_target(python, tmp)
    try:
        started = time.time()
        document = dump_json(binary, proc.pid, "--native")
        log("dump --native --json took %.3f s" % (time.time() - started))
        main = frames_of(document, "outer_py")
        log("main: " + describe(main))
        expect_in_order(main, MAIN_EXPECTED)
        check(python_functions(main) == ["wait_in_python", "inner_py", "outer_py", "run_ext", "<module>"],
              "Python frames of the main thread: %s" % python_functions(main))
        check_no_interpreter_frames(main, "main thread")
        spinner = frames_of(document, "spinner_py")
        log("spinner: " + describe(spinner))
        expect_in_order(spinner, SPINNER_EXPECTED)
        check_no_interpreter_frames(spinner, "spinner thread")
        # Every native frame names its module and address.
        for f in main + spinner:
            if f["kind"] == "native":
                check(isinstance(f["address"], int) and f["address"] > 0, "native frame without address: %s" % f)

        # --native-all: the interpreter's frames between C and Python, eval loops still merged.
        everything = frames_of(dump_json(binary, proc.pid, "--native-all"), "outer_py")
        expect_in_order(everything, MAIN_EXPECTED)
        between = everything[index_of(everything, "python", "inner_py") + 1:
                             index_of(everything, "native", "native_ext_call_python")]
        check(any(f["kind"] == "native" and is_interpreter_module(f.get("module")) for f in between),
              "--native-all shows no interpreter frame between inner_py and the C caller: %s" % describe(everything))
        check(not any(re.fullmatch(EVAL_LOOP, f["function"]) for f in everything),
              "--native-all: an eval-loop frame was not replaced: %s" % describe(everything))

        # Text: the same order, native frames marked with their module.
        result = run(binary, ["dump", "--pid", str(proc.pid), "--native"])
        check(result.returncode == 0, "dump --native exited %d: %s" % (result.returncode, result.stderr))
        lines = result.stdout.splitlines()
        log(result.stdout)
        positions = []
        for pattern in [r"    inner_py \(native_target\.py:\d+\)$",
                        r"    native_ext_call_python \(native_ext\.c:\d+\) \[native: native_ext.*\.so\]$",
                        r"    native_ext_call_back \(native_ext\.c:\d+\) \[native: native_ext.*\.so\]$",
                        r"    outer_py \(native_target\.py:\d+\)$"]:
            found = [i for i, line in enumerate(lines) if re.match(pattern, line)]
            check(found, "no line matching %r in the text dump" % pattern)
            positions.append(found[0])
        check(positions == sorted(positions), "text dump out of order: lines %s" % positions)

        # --native needs the pause.
        result = run(binary, ["dump", "--pid", str(proc.pid), "--native", "--nonblocking"])
        check(result.returncode == USAGE_EXIT, "--native --nonblocking exited %d, expected %d"
              % (result.returncode, USAGE_EXIT))
        check(len(result.stderr.strip().splitlines()) == 1 and "--nonblocking" in result.stderr,
              "--native --nonblocking: expected one line naming --nonblocking, got %r" % result.stderr)
    finally:
        stop(proc)


def test_qsort(binary, python, tmp):
    proc = start_target(python, ["qsort", "60"], ["ready"])
    try:
        frames = frames_of(dump_json(binary, proc.pid, "--native"), "sort_them")
        log("main: " + describe(frames))
        # glibc 2.36 names the frames qsort_r / msort_with_tmp; require one of the family.
        expect_in_order(frames, [("python", r"compare", None),
                                 ("native", r"(__)?(qsort|qsort_r|msort_with_tmp|msort)(\..*)?", r"libc"),
                                 ("python", r"sort_them", None),
                                 ("python", r"<module>", None)])
        check_no_interpreter_frames(frames, "qsort thread")
    finally:
        stop(proc)


def test_record(binary, python, tmp):
    proc = start_ext_target(python, tmp)
    out = os.path.join(tmp, "native.txt")
    try:
        # --idle: the main thread sleeps most of the time in wait_in_python.
        result = run(binary, ["record", "--pid", str(proc.pid), "--native", "--idle", "-d", "2", "-r", "50", "-f",
                              "raw", "-o", out], timeout=60)
        check(result.returncode == 0, "record --native exited %d: %s" % (result.returncode, result.stderr))
        log(result.stderr.strip())
        with open(out) as f:
            stacks = [line.rsplit(" ", 1)[0].split(";") for line in f.read().splitlines() if line.strip()]
        check(stacks, "record --native wrote no stack")

        def ordered(stack, names):
            position = 0
            for name in names:
                hits = [i for i in range(position, len(stack)) if re.match(name, stack[i])]
                if not hits:
                    return False
                position = hits[0] + 1
            return True

        # Outermost first: Python -> C -> C -> Python.
        main = [r"outer_py ", r"native_ext_call_back ", r"native_ext_call_python ", r"inner_py "]
        check(any(ordered(s, main) for s in stacks), "no collapsed stack with %s: %s" % (main, stacks[:10]))
        spinner = [r"spinner_py ", r"native_ext_spin ", r"native_ext_spin_loop "]
        check(any(ordered(s, spinner) for s in stacks), "no collapsed stack with %s: %s" % (spinner, stacks[:10]))
        check(not any(re.match(EVAL_LOOP + " ", frame) for s in stacks for frame in s),
              "an eval-loop frame in the recorded stacks")
    finally:
        stop(proc)


def test_top(binary, python, tmp):
    proc = start_ext_target(python, tmp)
    try:
        result = run(binary, ["top", "--pid", str(proc.pid), "--native", "--delay", "1", "--iterations", "2"],
                     timeout=60)
        check(result.returncode == 0, "top --native exited %d: %s" % (result.returncode, result.stderr))
        log(result.stdout)
        # The spinner thread is active in C the whole time: its native frames are rows.
        for name in ["native_ext_spin_loop", "native_ext_spin", "spinner_py"]:
            check(re.search(r"%\s+\S+\s+\S+\s+" + re.escape(name) + r" \(", result.stdout),
                  "no row for %s in top --native" % name)
    finally:
        stop(proc)


if __name__ == "__main__":
    sys.exit(driver_main({"ext": test_ext, "qsort": test_qsort, "record": test_record, "top": test_top},
                         "pyspy-native-"))
