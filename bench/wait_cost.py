#!/usr/bin/env python3
"""What `record --wait` costs over a plain `record`: system calls per sample, and the
profiler's CPU time per sample, against examples/wait_app.py (10 threads: handlers in
recv and on a lock, database connections in recv and sleep, a reporter asleep).

Usage: bench/wait_cost.py [--binary build/pyspy-cpp] [--python PYTHON] [--seconds S]

Each mode runs three times at 100 Hz (median kept): once under `strace -f -c` for the
calls (minus a 0.2 s run: start-up and output), once untraced for the CPU time
(utime + stime of the pyspy-cpp process, from wait4's rusage).
Prints a Markdown table.
"""
import argparse
import os
import subprocess
import sys

from bench_common import ROOT, calls_per_sample, summary_samples


def cpu_per_sample(binary, pid, seconds, extra):
    argv = [binary, "record", "--pid", str(pid), "-r", "100", "-d", str(seconds), "-f", "raw", "-o",
            "/tmp/pyspy-wait-cost.txt"] + extra
    p = subprocess.Popen(argv, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    err = p.stderr.read().decode()
    _, status, usage = os.wait4(p.pid, 0)
    samples = summary_samples(err)
    if samples is None or status != 0:
        raise RuntimeError("record failed: %s" % err[-2000:])
    return (usage.ru_utime + usage.ru_stime) / samples * 1e6


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default=os.path.join(ROOT, "build", "pyspy-cpp"))
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--seconds", type=float, default=5)
    args = parser.parse_args()
    app = subprocess.Popen([args.python, os.path.join(ROOT, "examples", "wait_app.py"), "--seconds", "600"],
                           stdout=subprocess.PIPE)
    try:
        line = app.stdout.readline().decode()
        if not line.startswith("READY"):
            raise RuntimeError("wait_app.py did not start")
        pid = app.pid
        print("| mode | syscalls / sample | of which | profiler CPU / sample |")
        print("|---|---|---|---|")
        for extra, mode in (([], "record"), (["--wait"], "record --wait")):
            total, per = calls_per_sample(args.binary, pid, args.seconds, 100, extra, "/tmp/pyspy-wait-cost.txt")
            cpu = sorted(cpu_per_sample(args.binary, pid, args.seconds, extra) for _ in range(3))[1]
            detail = ", ".join("%s %.1f" % (k, v) for k, v in sorted(per.items(), key=lambda kv: -kv[1]))
            print("| %s | %.1f | %s | %.0f us |" % (mode, total, detail, cpu))
    finally:
        app.kill()
        app.wait()


if __name__ == "__main__":
    main()
