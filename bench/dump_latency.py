#!/usr/bin/env python3
"""Wall time of one `pyspy-cpp dump` of a 4-thread target, per interpreter.

Usage: bench/dump_latency.py [--runs N] [--binary build/pyspy-cpp]
Prints a Markdown table (median and max over N runs, blocking and --nonblocking).
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

from bench_common import interpreters

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)



def measure(binary, pid, extra, runs):
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([binary, "dump", "--pid", str(pid)] + extra, check=True, stdout=subprocess.DEVNULL)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), max(times)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--binary", default=os.path.join(ROOT, "build", "pyspy-cpp"))
    args = parser.parse_args()
    print("| Python | dump median (ms) | dump max (ms) | --nonblocking median (ms) | --nonblocking max (ms) |")
    print("|---|---|---|---|---|")
    for label, path in interpreters(args.binary):
        if not os.access(path, os.X_OK):
            print("| %s | skipped: not installed | | | |" % label)
            continue
        target = subprocess.Popen([path, os.path.join(HERE, "four_threads.py")], stdout=subprocess.PIPE)
        try:
            target.stdout.readline()
            blocking = measure(args.binary, target.pid, [], args.runs)
            nonblocking = measure(args.binary, target.pid, ["--nonblocking"], args.runs)
            print("| %s | %.1f | %.1f | %.1f | %.1f |" % ((label,) + blocking + nonblocking))
        finally:
            target.kill()
            target.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
