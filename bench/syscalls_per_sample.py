#!/usr/bin/env python3
"""System calls one sample costs, per interpreter (strace -c on the sampler).

Usage: bench/syscalls_per_sample.py [--binary build/pyspy-cpp] [--threads N]

Records bench/deep_stack_target.py (1 thread, 31-deep stack) for 2 s at 200 Hz under
`strace -f -c`, blocking and --nonblocking, and divides each system call's count, minus
those of a 0.2 s run (start-up and output), by the difference in samples; the median
of three tries.
Prints a Markdown table of the calls per sample.
"""
import argparse
import os

from bench_common import ROOT, calls_per_sample, deep_stack_target, interpreters


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default=os.path.join(ROOT, "build", "pyspy-cpp"))
    args = parser.parse_args()
    print("| Python | mode | syscalls / sample | of which |")
    print("|---|---|---|---|")
    for label, python in interpreters(args.binary):
        if not os.access(python, os.X_OK):
            continue
        with deep_stack_target(python) as target:
            for extra, mode in (([], "blocking"), (["--nonblocking"], "nonblocking")):
                total, per = calls_per_sample(args.binary, target.pid, 2.2, 200, extra, "/tmp/pyspy-syscalls.txt")
                detail = ", ".join("%s %.1f" % (k, v) for k, v in sorted(per.items(), key=lambda kv: -kv[1]))
                print("| %s | %s | %.1f | %s |" % (label, mode, total, detail))


if __name__ == "__main__":
    main()
