#!/usr/bin/env python3
"""Samples per second of profiler CPU time, per interpreter.

Usage: bench/sampling_rate.py [--seconds 5] [--binary build/pyspy-cpp]

Starts bench/deep_stack_target.py (one thread, 31-deep CPU-bound stack) under every
interpreter of tests/interpreters.txt and runs `pyspy-cpp record` on it as fast as it
can (-r 100000), blocking and --nonblocking. The profiler's CPU time (user+sys) comes
from wait4's rusage; samples from its summary line. Prints a Markdown table.
"""
import argparse
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TARGET = os.path.join(HERE, "deep_stack_target.py")


def interpreters():
    pyenv = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    with open(os.path.join(ROOT, "tests", "interpreters.txt")) as f:
        for line in f:
            if line.strip() and not line.startswith("#"):
                label, path = line.split(None, 1)
                yield label, path.strip().replace("$PYENV_ROOT", pyenv)


def run(binary, pid, seconds, extra):
    argv = [binary, "record", "--pid", str(pid), "-r", "100000", "-d", str(seconds), "-f", "raw",
            "-o", "/tmp/pyspy-bench.txt"] + extra
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    err = proc.stderr.read().decode()
    m = re.search(r"(\d+) samples", err)
    if not m or status != 0:
        raise RuntimeError("record failed: %s" % err)
    samples = int(m.group(1))
    cpu = usage.ru_utime + usage.ru_stime
    return samples, cpu


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--binary", default=os.path.join(ROOT, "build", "pyspy-cpp"))
    args = parser.parse_args()
    print("| Python | blocking samples | samples / CPU-s | --nonblocking samples | samples / CPU-s |")
    print("|---|---|---|---|---|")
    for label, python in interpreters():
        if not os.access(python, os.X_OK):
            print("| %s | skipped (not installed) | | | |" % label)
            continue
        target = subprocess.Popen([python, TARGET], stdout=subprocess.PIPE)
        try:
            target.stdout.readline()
            time.sleep(0.2)
            row = [label]
            for extra in ([], ["--nonblocking"]):
                samples, cpu = run(args.binary, target.pid, args.seconds, extra)
                row += [str(samples), "%.0f" % (samples / cpu if cpu > 0 else 0)]
            print("| " + " | ".join(row) + " |")
            sys.stdout.flush()
        finally:
            target.kill()
            target.wait()


if __name__ == "__main__":
    main()
