#!/usr/bin/env python3
"""Profiler CPU per sample at 100 Hz by where the target and pyspy-cpp run.

Usage: bench/overhead_placement.py [--seconds 6] [--rounds 2] [--binary build/pyspy-cpp] [--only 3.12]

For one interpreter (--only, default 3.12), runs bench/deep_stack_target.py (one thread
spinning 31 frames deep) under `record -r 100`, blocking and --nonblocking, with four
placements (taskset):
  free        nothing pinned (what users get)
  split       target on CPU 1, pyspy-cpp on CPU 0
  shared      both on CPU 0 (the sampler preempts the target; its vCPU never idles)
  split-awake as split, plus a SCHED_IDLE spinner on CPU 0: the sampler's vCPU never
              halts, yet the spinner yields to it at once
and prints µs of pyspy-cpp CPU per sample (schedstat of all its threads, over a steady
window that starts 1 s after its start), one column per round. Read with
build/bench/bench_sampling_floor: the gap between the two is the profiler's own code.
Needs 2 CPUs.
"""
import os
import subprocess
import sys
import time

from bench_common import deep_stack_target, installed_interpreters, overhead_args, profiler_cpu_ns

PLACEMENTS = {  # name: (target CPU, profiler CPU, spinner on the profiler's CPU)
    "free": (None, None, False),
    "split": ("1", "0", False),
    "shared": ("0", "0", False),
    "split-awake": ("1", "0", True),
}


def pinned(cpu, argv):
    return (["taskset", "-c", cpu] if cpu else []) + argv


def per_sample_us(binary, python, placement, flags, seconds):
    target_cpu, profiler_cpu, awake = PLACEMENTS[placement]
    with deep_stack_target(python, "throughput", prefix=pinned(target_cpu, [])) as target:
        spinner = None
        try:
            if awake:
                spinner = subprocess.Popen(pinned(profiler_cpu, ["chrt", "-i", "0", sys.executable, "-c",
                                                                 "while True: pass"]))
            argv = [binary, "record", "--pid", str(target.pid), "-r", "100", "-d", str(seconds + 1.5), "-f", "raw",
                    "-o", "/tmp/pyspy-placement.txt"] + flags
            prof = subprocess.Popen(pinned(profiler_cpu, argv), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.0)
            start_ns, start = profiler_cpu_ns(prof.pid), time.time()
            time.sleep(seconds)
            used_ns, wall = profiler_cpu_ns(prof.pid) - start_ns, time.time() - start
            prof.wait()
            return used_ns / 1e3 / (wall * 100)
        finally:
            if spinner:
                spinner.kill()
                spinner.wait()


def main():
    args = overhead_args(seconds=6, rounds=2)
    if (os.cpu_count() or 1) < 2:
        sys.exit("overhead_placement.py needs 2 CPUs")
    for label, python in installed_interpreters(args.only or "3.12", 2 + args.rounds, args.binary):
        print("%s: µs of pyspy-cpp CPU per sample at 100 Hz, %d round(s) of %.0f s" % (label, args.rounds, args.seconds))
        print("| placement | mode | " + " | ".join("round %d" % (i + 1) for i in range(args.rounds)) + " |")
        print("|---|---|" + "---|" * args.rounds)
        for placement in PLACEMENTS:
            for mode, flags in (("blocking", []), ("--nonblocking", ["--nonblocking"])):
                cells = ["%.0f" % per_sample_us(args.binary, python, placement, flags, args.seconds)
                         for _ in range(args.rounds)]
                print("| %s | %s | %s |" % (placement, mode, " | ".join(cells)))
                sys.stdout.flush()


if __name__ == "__main__":
    main()
