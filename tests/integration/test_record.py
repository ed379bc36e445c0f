#!/usr/bin/env python3
"""Integration tests of `pyspy-cpp record` against live interpreters.

Run by ctest (tests/integration/CMakeLists.txt) with the system python3:

  test_record.py --binary BUILD/pyspy-cpp split PYTHON      # 75/25 shares, per interpreter
  test_record.py --binary BUILD/pyspy-cpp program PYTHON    # record -- PYTHON script: exit status
  test_record.py --binary BUILD/pyspy-cpp lifecycle PYTHON  # SIGINT, target exit, SIGKILL of pyspy
  test_record.py --binary BUILD/pyspy-cpp formats PYTHON    # every format from a live target, parsed back
  test_record.py --binary BUILD/pyspy-cpp threads PYTHON    # 4 CPU-bound threads: at once without a GIL

Exit code 0 = passed, 1 = failed, 77 = skipped (interpreter not installed).
"""

import gzip
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import xml.dom.minidom

from driver_common import (SKIP, Failure, ReadyTarget, Skip, check, check_gil_refused, driver_main, is_free_threaded,
                           log, tracer_of, wait_sampling)
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
TARGET = os.path.join(ROOT, "tests", "targets", "cpu_split_target.py")
THREADS_TARGET = os.path.join(ROOT, "tests", "targets", "top_gil_target.py")
COLLAPSED_LINE = re.compile(r"^(.+) (\d+)$")


class Target(ReadyTarget):
    """cpu_split_target.py under PYTHON, started and waited for (READY line)."""

    def __init__(self, python, lifetime=60, status=0):
        ReadyTarget.__init__(self, [python, TARGET, lifetime, status])


def record(binary, args, timeout=60):
    p = subprocess.run([binary, "record"] + args, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def parse_collapsed(path):
    stacks = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.rstrip("\n")
            m = COLLAPSED_LINE.match(line)
            check(m is not None, "%s:%d does not match the collapsed grammar: %r" % (path, number, line))
            stacks.append((m.group(1).split(";"), int(m.group(2))))
    return stacks


FRAME = re.compile(r"^(.*) \((.*):(\d+)\)$")


def shares(stacks, ready):
    """Samples in three_quarters / one_quarter, and the frames seen for each."""
    counts = {"three_quarters": 0, "one_quarter": 0}
    for frames, count in stacks:
        for frame in frames:
            m = FRAME.match(frame)
            if not m:
                continue
            name, filename, line = m.group(1), m.group(2), int(m.group(3))
            if name in counts:
                check(os.path.basename(filename) == os.path.basename(ready["file"]),
                      "%s in file %s, expected %s" % (name, filename, ready["file"]))
                # The call line, or the def line for a sample taken as the function was
                # entered (its first instruction; the interpreter reports that line too).
                expected = ready["lines"][name]
                check(line in (expected, expected - 1), "%s at line %d, expected %d" % (name, line, expected))
                counts[name] += count
                break
    return counts


def test_split(binary, python, tmp):
    target = Target(python)
    try:
        out = os.path.join(tmp, "split.txt")
        # 500 Hz for 2.5 s: ~1250 samples (600 at least, as a loaded machine delays
        # some), so sampling noise alone is ~1.2-1.8 points (1 sigma: sqrt(0.75 * 0.25 / n))
        # and the 5-point bound is not a coin toss; 2.5 s is still ~125 rounds of the
        # target's 20 ms three_quarters + one_quarter.
        code, _, err = record(binary, ["--pid", str(target.pid), "-d", "2.5", "-r", "500", "-f", "raw", "-o", out])
        check(code == 0, "record exit %d: %s" % (code, err))
        counts = shares(parse_collapsed(out), target.ready)
        total = counts["three_quarters"] + counts["one_quarter"]
        check(total >= 600, "only %d samples in the two functions over 2.5 s at 500 Hz" % total)
        share = 100.0 * counts["three_quarters"] / total
        log("three_quarters %d, one_quarter %d: %.1f%% / %.1f%%" % (counts["three_quarters"], counts["one_quarter"],
                                                                  share, 100 - share))
        check(abs(share - 75) <= 5, "three_quarters has %.1f%% of the samples, expected 75 +- 5" % share)
        # The same in --nonblocking mode.
        code, _, err = record(binary, ["--pid", str(target.pid), "-d", "2.5", "-r", "500", "-f", "raw", "-o", out,
                                       "--nonblocking"])
        check(code == 0, "record --nonblocking exit %d: %s" % (code, err))
        counts = shares(parse_collapsed(out), target.ready)
        total = counts["three_quarters"] + counts["one_quarter"]
        share = 100.0 * counts["three_quarters"] / max(1, total)
        check(abs(share - 75) <= 5, "--nonblocking: three_quarters has %.1f%%, expected 75 +- 5" % share)
        check(target.proc.poll() is None, "the target died while being recorded")
    finally:
        target.close()


def test_program(binary, python, tmp):
    out = os.path.join(tmp, "program.txt")
    code, _, err = record(binary, ["-f", "raw", "-o", out, "--", python, TARGET, "2", "7"])
    check(code == 7, "record -- PROGRAM returned %d, expected the program's status 7 (stderr: %s)" % (code, err))
    check(os.path.exists(out), "no output written")
    stacks = parse_collapsed(out)
    check(sum(c for _, c in stacks) > 50, "too few samples from the program: %r" % stacks[:3])
    check(not [f for f in os.listdir(tmp) if ".tmp." in f], "temporary files left: %r" % os.listdir(tmp))
    code, _, err = record(binary, ["-f", "raw", "-o", out, "--", "/nonexistent/program"])
    check(code == 2, "a program that cannot start gives %d (expected 2): %s" % (code, err))


def wait_output(proc, timeout):
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise Failure("record did not end within %d s" % timeout)
    return proc.returncode, proc.stderr.read().decode(errors="replace")


def thread_states(pid):
    states = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
            states[int(tid)] = f.read().rsplit(")", 1)[1].split()[0]
    return states


def test_lifecycle(binary, python, tmp):
    # SIGINT during --pid recording writes the output and exits 0. Each signal is sent a
    # while after the first sample (wait_sampling), not after a guess at the attach time:
    # 0.6 s at 200 Hz, ~120 samples for the 50 asked.
    target = Target(python)
    try:
        out = os.path.join(tmp, "sigint.txt")
        proc = subprocess.Popen([binary, "record", "--pid", str(target.pid), "-r", "200", "-f", "raw", "-o", out],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        wait_sampling(proc, target.pid, "SIGINT")
        time.sleep(0.6)
        proc.send_signal(signal.SIGINT)
        code, err = wait_output(proc, 20)
        check(code == 0, "SIGINT: exit %d: %s" % (code, err))
        check(sum(c for _, c in parse_collapsed(out)) > 50, "SIGINT: too few samples")
        check(tracer_of(target.pid) == 0, "SIGINT: the target is still traced")

        # SIGTERM likewise, in --nonblocking mode and with an output format of its own.
        out = os.path.join(tmp, "sigterm.json")
        proc = subprocess.Popen([binary, "record", "--pid", str(target.pid), "-f", "speedscope", "-o", out,
                                 "--nonblocking"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        wait_sampling(proc, target.pid, "SIGTERM")
        time.sleep(0.6)
        proc.send_signal(signal.SIGTERM)
        code, err = wait_output(proc, 20)
        check(code == 0, "SIGTERM: exit %d: %s" % (code, err))
        with open(out) as f:
            check(json.load(f)["profiles"], "SIGTERM: the speedscope file has no profile")

        # SIGKILL of pyspy-cpp while it samples in blocking mode: the kernel detaches it
        # and the target keeps running (never left stopped). Killed at five moments
        # 10-250 ms into the sampling, at 1000 Hz: some land mid-pause.
        out = os.path.join(tmp, "sigkill.txt")
        for attempt in range(5):
            proc = subprocess.Popen([binary, "record", "--pid", str(target.pid), "-r", "1000", "-f", "raw", "-o", out],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
            wait_sampling(proc, target.pid, "SIGKILL %d" % attempt)
            time.sleep(0.01 + 0.06 * attempt)
            proc.kill()
            proc.wait()
        time.sleep(0.2)
        check(tracer_of(target.pid) == 0, "SIGKILL: the target is still traced")
        states = thread_states(target.pid)
        check(all(s not in ("t", "T") for s in states.values()), "SIGKILL: target threads left stopped: %r" % states)
        check(not os.path.exists(out), "SIGKILL: a partial output file was left at the destination")
        check(target.proc.poll() is None, "the target died")
    finally:
        target.close()

    # A target that exits mid-recording leaves a complete output and exit 0 (1.5 s at
    # 200 Hz: ~300 samples for the 50 asked).
    target = Target(python, lifetime=1.5)
    try:
        out = os.path.join(tmp, "exit.txt")
        code, _, err = record(binary, ["--pid", str(target.pid), "-r", "200", "-f", "raw", "-o", out], timeout=30)
        check(code == 0, "target exit: record returned %d: %s" % (code, err))
        check("the target exited" in err, "target exit: not reported: %r" % err)
        check(sum(c for _, c in parse_collapsed(out)) > 50, "target exit: too few samples")
    finally:
        target.close()


def run_tool(argv, timeout=60):
    p = subprocess.run(argv, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def test_formats(binary, python, tmp):
    target = Target(python)
    skipped = []
    try:
        files = {}
        for fmt, ext in (("flamegraph", "svg"), ("speedscope", "json"), ("raw", "txt"), ("chrometrace", "json"),
                         ("pprof", "pb.gz")):
            out = os.path.join(tmp, "profile-%s.%s" % (fmt, ext))
            # 0.5 s at 200 Hz: ~100 samples, one_quarter (1/4 of them) missing 0.75^100 = 3e-13.
            code, _, err = record(binary, ["--pid", str(target.pid), "-d", "0.5", "-r", "200", "-f", fmt, "-o", out,
                                           "-t"])
            check(code == 0, "%s: exit %d: %s" % (fmt, code, err))
            files[fmt] = out

        doc = xml.dom.minidom.parse(files["flamegraph"])
        text = doc.documentElement.toxml()
        check("three_quarters" in text and "one_quarter" in text, "flamegraph lacks the functions")

        with open(files["speedscope"]) as f:
            speedscope = json.load(f)
        names = [fr["name"] for fr in speedscope["shared"]["frames"]]
        check("three_quarters" in names, "speedscope lacks three_quarters: %r" % names[:10])
        validator = os.path.join(ROOT, "tests", "formats", "check_speedscope.sh")
        if os.path.exists(validator):
            code, out, err = run_tool([validator, files["speedscope"]], timeout=300)
            if code == SKIP:
                skipped.append("speedscope schema (%s)" % (out + err).strip())
            else:
                check(code == 0, "speedscope schema validation failed: %s %s" % (out, err))
        else:
            skipped.append("speedscope schema (no validator)")

        stacks = parse_collapsed(files["raw"])
        check(all(frames[0].startswith("Thread") for frames, _ in stacks), "raw -t: stacks lack a thread root")

        with open(files["chrometrace"]) as f:
            trace = json.load(f)
        events = trace["traceEvents"] if isinstance(trace, dict) else trace
        check(any(e.get("ph") == "X" and e.get("name") == "three_quarters" for e in events),
              "chrometrace lacks an X event for three_quarters")
        check(any(e.get("ph") == "M" and e.get("name") == "thread_name" for e in events),
              "chrometrace lacks thread names")

        with gzip.open(files["pprof"]) as f:
            check(len(f.read()) > 0, "pprof is empty")
        go = shutil.which("go")
        if go:
            env = dict(os.environ, HOME=tmp, GOCACHE=os.path.join(tmp, "gocache"), GOPATH=os.path.join(tmp, "gopath"))
            p = subprocess.run([go, "tool", "pprof", "-top", files["pprof"]], capture_output=True, timeout=300,
                               env=env, stdin=subprocess.DEVNULL)
            top = p.stdout.decode(errors="replace")
            check(p.returncode == 0 and "three_quarters" in top,
                  "go tool pprof -top: %d %s %s" % (p.returncode, top, p.stderr.decode(errors="replace")))
        else:
            skipped.append("go tool pprof (go not installed)")
    finally:
        target.close()
    if skipped:
        # A consumer that is missing leaves a check undone: the case is reported skipped
        # (exit 77), never passed; scripts/install-deps installs them all.
        raise Skip("the other formats passed, but not checked here: %s" % ", ".join(skipped))


SPINNERS = 4
SUMMARY_TICKS = re.compile(r"after [0-9.]+ s: (\d+) samples")


def test_threads(binary, python, tmp):
    """Four CPU-bound threads (top_gil_target.py cpu): record (active threads only, the
    default) samples every one of them. On a free-threaded build they run at once: about
    four thread-samples per sample, each thread in most samples, and --gil is refused
    with one line. With a GIL they take turns: about one per sample."""
    free_threaded = is_free_threaded(python)
    with ReadyTarget([python, THREADS_TARGET, "cpu", "60", SPINNERS]) as target:
        proc = target.proc
        out = os.path.join(tmp, "threads.txt")
        # 1.5 s at 200 Hz: ~300 samples, as many as 3 s at 100 Hz gave.
        code, _, err = record(binary, ["--pid", str(proc.pid), "-d", "1.5", "-r", "200", "-f", "raw", "-t", "-o", out])
        check(code == 0, "record exit %d: %s" % (code, err))
        m = SUMMARY_TICKS.search(err)
        check(m is not None, "no summary line: %r" % err)
        ticks = int(m.group(1))
        check(ticks >= 100, "only %d samples in 1.5 s at 200 Hz" % ticks)
        per_thread = {}
        for frames, count in parse_collapsed(out):
            if any(f.startswith("spin (") for f in frames):
                per_thread[frames[0]] = per_thread.get(frames[0], 0) + count
        at_once = float(sum(per_thread.values())) / ticks
        log("%d samples; spinning threads %s: %.2f running per sample%s" % (
            ticks, sorted(per_thread.values()), at_once, " (free-threaded)" if free_threaded else ""))
        check(len(per_thread) == SPINNERS, "%d spinning threads sampled, expected %d: %r"
              % (len(per_thread), SPINNERS, sorted(per_thread)))
        if free_threaded:
            check(at_once >= SPINNERS - 0.8, "free-threaded: %.2f of the %d CPU-bound threads running per sample, "
                                             "expected all at once" % (at_once, SPINNERS))
            check(min(per_thread.values()) >= 0.6 * ticks, "free-threaded: a spinning thread in only %d of %d "
                                                           "samples" % (min(per_thread.values()), ticks))
            gil_out = os.path.join(tmp, "gil.txt")
            code, _, err = record(binary, ["--pid", str(proc.pid), "-d", "1", "--gil", "-f", "raw", "-o", gil_out])
            check_gil_refused(code, err, "record")
            check(not os.path.exists(gil_out), "record --gil, refused, wrote a profile")
        elif target.ready["python"].startswith("2."):
            # 2.7's old GIL is dropped and fought over every 100 bytecodes: its waiters are
            # runnable, not asleep, so they count as running (3.5 of 4 measured).
            log("2.7: threads taking turns with the old GIL are not checked")
        else:
            # The new GIL (3.2+): its waiters sleep; 1.2 measured on 3.6-3.13.
            check(at_once <= 2.0, "%.2f of the %d CPU-bound threads running per sample: they should take turns "
                                  "holding the GIL" % (at_once, SPINNERS))
        check(proc.poll() is None, "the target died while being recorded")


TESTS = {"split": test_split, "program": test_program, "lifecycle": test_lifecycle, "formats": test_formats,
         "threads": test_threads}


if __name__ == "__main__":
    sys.exit(driver_main(TESTS, "pyspy-record-"))
