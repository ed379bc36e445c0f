#!/usr/bin/env python3
"""Cost of `record` at the default 100 Hz, per interpreter.

Usage: bench/overhead.py [--seconds 10] [--binary build/pyspy-cpp] [--only LABEL]

For each interpreter of tests/interpreters.txt, starts bench/deep_stack_target.py in
throughput mode (it prints how many loop iterations it did each second) and measures:
  - its throughput alone, while recorded (blocking, the default) and while recorded
    with --nonblocking: slowdown = 1 - with / alone, medians of the per-second rates;
  - the profiler's own CPU time (user+sys, from wait4) as a share of one core.
Phases alternate (alone, blocking, alone, nonblocking) so drift in the machine's speed
hits all of them alike. Prints a Markdown table.
"""
import argparse
import os
import select
import statistics
import subprocess
import sys
import time

from bench_common import interpreters

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TARGET = os.path.join(HERE, "deep_stack_target.py")



def rates(target, seconds):
    """The per-second rates the target prints during the next `seconds`."""
    out = []
    deadline = time.time() + seconds
    while time.time() < deadline:
        r, _, _ = select.select([target.stdout], [], [], max(0.0, deadline - time.time()))
        if not r:
            break
        line = target.stdout.readline().decode()
        if line.startswith("RATE "):
            out.append(int(line.split()[1]))
    return out[1:]  # the first may straddle the phase change


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--binary", default=os.path.join(ROOT, "build", "pyspy-cpp"))
    parser.add_argument("--only")
    args = parser.parse_args()
    print("| Python | alone (it/s) | blocking slowdown | --nonblocking slowdown | profiler CPU blocking | profiler CPU --nonblocking |")
    print("|---|---|---|---|---|---|")
    for label, python in interpreters():
        if args.only and label != args.only:
            continue
        if not os.access(python, os.X_OK):
            print("| %s | skipped (not installed) | | | | |" % label)
            continue
        target = subprocess.Popen([python, TARGET, "throughput"], stdout=subprocess.PIPE)
        try:
            target.stdout.readline()  # READY
            alone = []
            result = {}
            for extra in ([], ["--nonblocking"]):
                alone += rates(target, args.seconds)
                argv = [args.binary, "record", "--pid", str(target.pid), "-r", "100", "-d", str(args.seconds),
                        "-f", "raw", "-o", "/tmp/pyspy-overhead.txt"] + extra
                start = time.time()
                prof = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                with_profiler = rates(target, args.seconds)
                _, status, usage = os.wait4(prof.pid, 0)
                wall = time.time() - start
                cpu = usage.ru_utime + usage.ru_stime
                result[tuple(extra)] = (with_profiler, 100.0 * cpu / wall)
            base = statistics.median(alone)
            cells = [label, "%d" % base]
            for key in ((), ("--nonblocking",)):
                with_profiler, _ = result[key]
                cells.append("%.2f%%" % (100.0 * (1 - statistics.median(with_profiler) / base)))
            for key in ((), ("--nonblocking",)):
                cells.append("%.2f%%" % result[key][1])
            print("| " + " | ".join(cells) + " |")
            sys.stdout.flush()
        finally:
            target.kill()
            target.wait()


if __name__ == "__main__":
    main()
