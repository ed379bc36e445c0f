#!/usr/bin/env python3
"""Soak: `record` at 1000 Hz for 10 minutes against a target that churns threads and code
objects (tests/targets/fault_churn_target.py), watching pyspy-cpp from the outside.

Usage: bench/soak.py [--minutes 10] [--rate 1000] [--nonblocking] [--python LABEL]
                     [--distinct N] [--binary build/pyspy-cpp]

Every 10 s it reads pyspy-cpp's resident set (VmRSS) and CPU time (utime+stime of
/proc/PID/stat) and the target's liveness. At the end it prints a Markdown table: samples,
error share (from record's summary), peak RSS (VmHWM), RSS after the first minute and at
the end, RSS growth per minute after the first minute (least-squares slope), profiler CPU
as a share of one core overall and its highest 10-s window, and whether the target was
still alive and not traced. Memory grows with distinct stacks, and by default
the target names every function it builds anew (gen_0, gen_1, ...), so the distinct
stacks never stop growing; with --distinct N it reuses N names (and files) while still
building and freeing a new code object every few milliseconds, so the distinct stacks
are bounded and any growth after they have all been seen is a leak.
Not part of CI (it takes the whole duration); docs/performance.md reports its results.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

from bench_common import interpreters

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TARGET = os.path.join(ROOT, "tests", "targets", "fault_churn_target.py")
TICKS = os.sysconf("SC_CLK_TCK")


def status_kb(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / float(TICKS)  # utime, stime


def slope(points):
    """Least-squares slope of (x, y) points."""
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    den = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / den if den else 0.0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--nonblocking", action="store_true")
    parser.add_argument("--python", default="3.12", help="a label of the matrix (the build's tests/interpreters.txt)")
    parser.add_argument("--distinct", type=int, default=0, help="bound the target's distinct function names")
    parser.add_argument("--binary", default=os.path.join(ROOT, "build", "pyspy-cpp"))
    args = parser.parse_args()
    python = dict(interpreters(args.binary)).get(args.python)
    if not python or not os.access(python, os.X_OK):
        sys.exit("interpreter %s is not installed" % args.python)

    seconds = args.minutes * 60
    work = tempfile.mkdtemp(prefix="pyspy-soak-")
    target = subprocess.Popen([python, TARGET, os.path.join(work, "churn.log"), str(seconds + 120), str(args.distinct)],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        if not target.stdout.readline().startswith(b"READY"):
            sys.exit("the churn target did not start")
        out = os.path.join(work, "soak.txt")
        argv = [args.binary, "record", "--pid", str(target.pid), "-r", str(args.rate), "-d", str(seconds),
                "-f", "raw", "-o", out] + (["--nonblocking"] if args.nonblocking else [])
        start = time.time()
        prof = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        rss, windows = [], []
        last_cpu, last_t = 0.0, start
        while True:
            done, status, usage = os.wait4(prof.pid, os.WNOHANG)
            if done:
                break
            time.sleep(min(10.0, max(0.5, start + seconds + 5 - time.time())))
            done, status, usage = os.wait4(prof.pid, os.WNOHANG)
            if done:
                break
            try:
                now, cpu = time.time(), cpu_seconds(prof.pid)
                rss.append((now - start, status_kb(prof.pid, "VmRSS")))
                hwm = status_kb(prof.pid, "VmHWM")
            except (IOError, OSError, IndexError, ValueError):
                break  # it just exited
            windows.append(100.0 * (cpu - last_cpu) / (now - last_t))
            last_cpu, last_t = cpu, now
            sys.stderr.write("\r%4.0f s: RSS %.1f MB, CPU %.1f%% of a core   " % (now - start, rss[-1][1] / 1024.0,
                                                                              windows[-1]))
            sys.stderr.flush()
        prof.returncode = status  # reaped by wait4 above
        wall = time.time() - start
        err = prof.stderr.read().decode(errors="replace")
        sys.stderr.write("\n")
        m = re.search(r"(\d+) samples, (\d+) errors \(([0-9.]+)%\)", err)
        alive = target.poll() is None
        traced = False
        if alive:
            with open("/proc/%d/status" % target.pid) as f:
                traced = any(l.startswith("TracerPid:") and l.split()[1] != "0" for l in f)
        after_first = [(t / 60.0, kb / 1024.0) for t, kb in rss if t >= 60]
        mode = "--nonblocking" if args.nonblocking else "blocking"
        with open(out, encoding="utf-8", errors="replace") as f:
            stacks = sum(1 for _ in f)
        print("| Python | mode | distinct names | rate | minutes | samples | errors | distinct stacks | peak RSS | RSS at 1 min "
              "| RSS at end | RSS growth after 1 min | profiler CPU (all) | highest 10-s CPU | target after |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        print("| %s | %s | %s | %d Hz | %.0f | %s | %s | %d | %.1f MB | %.1f MB | %.1f MB | %+.2f MB/min | %.1f%% | %.1f%% "
              "| %s |" % (
            args.python, mode, args.distinct or "unbounded", args.rate, wall / 60.0, m.group(1) if m else "?",
            "%s (%s%%)" % (m.group(2), m.group(3)) if m else "?", stacks, (usage.ru_maxrss / 1024.0),
            after_first[0][1] if after_first else 0.0, rss[-1][1] / 1024.0 if rss else 0.0,
            slope(after_first), 100.0 * (usage.ru_utime + usage.ru_stime) / wall, max(windows) if windows else 0.0,
            "alive, not traced" if alive and not traced else ("traced!" if alive else "dead!")))
        if status != 0:
            print("pyspy-cpp exited with status %d: %s" % (status, err.strip()))
            return 1
        return 0
    finally:
        if target.poll() is None:
            target.kill()
        target.wait()


if __name__ == "__main__":
    sys.exit(main())
