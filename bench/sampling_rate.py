#!/usr/bin/env python3
"""Samples per second of profiler CPU time, per interpreter.

Usage: bench/sampling_rate.py [--seconds 5] [--binary build/pyspy-cpp]

Starts bench/deep_stack_target.py (one thread, 31-deep CPU-bound stack) under every
interpreter of the matrix (the build's tests/interpreters.txt: the pyenv set, 3.14 and
3.14t under /opt/cpython, PYSPY_TEST_PYTHONS; a row "not installed" for an absent one)
and runs `pyspy-cpp record` on it as fast as it can (-r 100000), blocking and
--nonblocking. The profiler's CPU time (user+sys) comes from wait4's rusage; samples
from its summary line. Each figure is the difference of a 1 s run and a (1 + SECONDS) s
run, so the one-off start-up (reading libpython's symbol table, discovery) is not
counted as sampling; the start-up CPU is shown on its own. Prints a Markdown table.
"""
import argparse
import os
import subprocess
import sys
import time

from bench_common import ROOT, deep_stack_target, installed_interpreters, summary_samples



def run(binary, pid, seconds, extra):
    argv = [binary, "record", "--pid", str(pid), "-r", "100000", "-d", str(seconds), "-f", "raw",
            "-o", "/tmp/pyspy-bench.txt"] + extra
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    err = proc.stderr.read().decode()
    samples = summary_samples(err)
    if samples is None or status != 0:
        raise RuntimeError("record failed: %s" % err)
    cpu = usage.ru_utime + usage.ru_stime
    return samples, cpu


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--binary", default=os.path.join(ROOT, "build", "pyspy-cpp"))
    args = parser.parse_args()
    print("| Python | blocking samples | samples / CPU-s | --nonblocking samples | samples / CPU-s | start-up CPU (ms) |")
    print("|---|---|---|---|---|---|")
    for label, python in installed_interpreters(None, 6, args.binary):
        with deep_stack_target(python) as target:
            time.sleep(0.2)
            row = [label]
            startup = None
            try:
                for extra in ([], ["--nonblocking"]):
                    short_samples, short_cpu = run(args.binary, target.pid, 1, extra)
                    samples, cpu = run(args.binary, target.pid, 1 + args.seconds, extra)
                    rate = (samples - short_samples) / max(cpu - short_cpu, 1e-6)
                    startup = short_cpu - short_samples / rate if startup is None else startup
                    row += [str(samples - short_samples), "%.0f" % rate]
                row.append("%.0f" % (max(startup, 0) * 1000))
            except RuntimeError as e:  # one interpreter pyspy-cpp cannot read: a row, not the end
                row = [label, " ".join(str(e).split())[:160].replace("|", "/")] + [""] * 4
            print("| " + " | ".join(row) + " |")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
