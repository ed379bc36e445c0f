#!/usr/bin/env python3
"""Instructions pyspy-cpp executes per sample, per interpreter, counted by callgrind.

Usage: bench/instructions_per_sample.py [--seconds 4] [--rate 200] [--binary build/pyspy-cpp]
                                        [--only LABEL]
Needs valgrind (apt-get install valgrind).

The CPU-time benchmarks (overhead.py, overhead_placement.py) move by +-30% between runs
on the 2-vCPU test VM, more than a change to the profiler's own code is worth; an
instruction count does not depend on the machine's mood. For bench/deep_stack_target.py
(one thread, 31-deep stack) under every interpreter of tests/interpreters.txt, this runs
`pyspy-cpp record --nonblocking` under `valgrind --tool=callgrind` for 1 s and for
1 + SECONDS s and divides the difference of their instruction totals by the difference
of their sample counts: start-up and output writing cancel out. It counts user-space
instructions only (the kernel's side of each system call is not included; see
syscalls_per_sample.py for those) and --nonblocking only (under valgrind the blocking
pause would stretch with the slowed-down profiler). Valgrind 3.19 (Debian 12) does not
know pidfd_open, so under it the per-sample exit check falls back to reading and parsing
/proc/PID/stat: about 3,400 of each sample's instructions that a normal run spends on
one poll(2) instead. Prints a Markdown table.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

from bench_common import ROOT, deep_stack_target, installed_interpreters, summary_samples


def run(binary, pid, seconds, rate, workdir):
    out = os.path.join(workdir, "callgrind.out")
    argv = ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out, binary, "record", "--pid", str(pid),
            "--nonblocking", "-r", str(rate), "-d", str(seconds), "-f", "raw", "-o",
            os.path.join(workdir, "profile.txt")]
    proc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=seconds * 20 + 120)
    err = proc.stderr.decode(errors="replace")
    samples = summary_samples(err)
    total = re.search(r"Collected : (\d+)", err)
    if proc.returncode != 0 or samples is None or not total:
        raise RuntimeError("record under callgrind failed: %s" % err[-2000:])
    return samples, int(total.group(1))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=4)
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--binary", default=os.path.join(ROOT, "build", "pyspy-cpp"))
    parser.add_argument("--only")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        sys.exit("instructions_per_sample.py: valgrind is not installed (apt-get install valgrind)")
    print("| Python | samples (difference) | instructions per sample |")
    print("|---|---|---|")
    with tempfile.TemporaryDirectory() as workdir:
        for label, python in installed_interpreters(args.only, 3, args.binary):
            with deep_stack_target(python) as target:
                time.sleep(0.2)
                short_samples, short_total = run(args.binary, target.pid, 1, args.rate, workdir)
                samples, total = run(args.binary, target.pid, 1 + args.seconds, args.rate, workdir)
                per_sample = (total - short_total) / max(samples - short_samples, 1)
                print("| %s | %d | %.0f |" % (label, samples - short_samples, per_sample))
                sys.stdout.flush()


if __name__ == "__main__":
    main()
