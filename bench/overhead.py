#!/usr/bin/env python3
"""Cost of `record` at the default 100 Hz, per interpreter.

Usage: bench/overhead.py [--seconds 8] [--rounds 3] [--binary build/pyspy-cpp] [--only LABEL]

For each interpreter of tests/interpreters.txt, starts bench/deep_stack_target.py in
throughput mode (it prints how many loop iterations it did each second) and measures:
  - its throughput alone, while recorded (blocking, the default) and while recorded
    with --nonblocking: slowdown = 1 - with / alone, medians of the per-second rates,
    both per second of wall time (what a user sees, but on a shared or virtual machine
    swamped by scheduling noise) and per second of the target's own CPU time (what the
    profiler costs a running target: caches, memory bus, page-table locks);
  - the profiler's own CPU time as a share of one core: in steady state (the sum of
    /proc/PID/task/*/schedstat run times of pyspy-cpp, nanoseconds, from 1 s after its
    start to the end of the measured phase: what a long recording costs), and over the
    whole run from wait4 (user+sys, including start-up: attach, symbols, ~10 ms);
  - in blocking mode, the share of time the target was stopped (record's own account:
    from before the first PTRACE_SEIZE to the last PTRACE_DETACH of each sample), the
    direct, noise-free part of the blocking slowdown.
Phases alternate (alone, blocking, alone, nonblocking), `--rounds` times, so drift in the
machine's speed hits all of them alike; each slowdown is the median over the rounds of
1 - (rate while recorded) / (rate in the alone phase just before). Nothing is pinned to a
CPU: in a virtual machine, a pinned target whose vCPU idles while it is paused waits for
the hypervisor to wake that vCPU on resume (measured: 40% slowdown at 100 Hz blocking
on the 2-vCPU Firecracker VM, against ~2% unpinned), which is a property of the host,
not of the profiler. Prints a Markdown table.
"""
import os
import re
import select
import statistics
import subprocess
import sys
import time

from bench_common import deep_stack_target, installed_interpreters, overhead_args, profiler_cpu_ns


def rates(target, seconds):
    """(per wall-second, per CPU-second) rates the target prints during the next `seconds`."""
    wall, cpu = [], []
    deadline = time.time() + seconds
    while time.time() < deadline:
        r, _, _ = select.select([target.stdout], [], [], max(0.0, deadline - time.time()))
        if not r:
            break
        line = target.stdout.readline().decode()
        if line.startswith("RATE "):
            fields = line.split()
            wall.append(int(fields[1]))
            cpu.append(int(fields[2]))
    return wall[1:], cpu[1:]  # the first may straddle the phase change


def main():
    args = overhead_args(seconds=8, rounds=3)
    print("| Python | alone (it/s of CPU) | blocking: target held stopped | blocking: slowdown per CPU-s "
          "| --nonblocking: slowdown per CPU-s | blocking: slowdown per wall-s | --nonblocking: slowdown per wall-s "
          "| profiler CPU blocking (steady; whole run) | profiler CPU --nonblocking (steady; whole run) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for label, python in installed_interpreters(args.only, 9, args.binary):
        with deep_stack_target(python, "throughput") as target:
            alone_cpu = []
            slowdowns = {}  # (mode, "wall" | "cpu") -> per-round slowdowns
            cpu_shares = {(): [], ("--nonblocking",): []}
            steady_shares = {(): [], ("--nonblocking",): []}
            paused = []
            for _ in range(args.rounds):
                for extra in ([], ["--nonblocking"]):
                    before_wall, before_cpu = rates(target, args.seconds)
                    alone_cpu += before_cpu
                    argv = [args.binary, "record", "--pid", str(target.pid), "-r", "100", "-d",
                            str(args.seconds + 1.5), "-f", "raw", "-o", "/tmp/pyspy-overhead.txt"] + extra
                    start = time.time()
                    prof = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                    rates(target, 1.0)  # start-up: not part of the steady-state figures
                    steady_start, steady_ns = time.time(), profiler_cpu_ns(prof.pid)
                    with_wall, with_cpu = rates(target, args.seconds)
                    steady_ns = profiler_cpu_ns(prof.pid) - steady_ns
                    steady_shares[tuple(extra)].append(100.0 * steady_ns / 1e9 / (time.time() - steady_start))
                    err = prof.stderr.read().decode(errors="replace")
                    _, status, usage = os.wait4(prof.pid, 0)
                    m = re.search(r"paused (\d+) us per sample, ([0-9.]+)% of the time", err)
                    if m:
                        paused.append(float(m.group(2)))
                    wall = time.time() - start
                    cpu = usage.ru_utime + usage.ru_stime
                    for kind, before, with_profiler in (("wall", before_wall, with_wall), ("cpu", before_cpu, with_cpu)):
                        slowdowns.setdefault((tuple(extra), kind), []).append(
                            1 - statistics.median(with_profiler) / statistics.median(before))
                    cpu_shares[tuple(extra)].append(100.0 * cpu / wall)
            pct = lambda values: "%.2f%%" % (100.0 * statistics.median(values))
            cells = [label, "%d" % statistics.median(alone_cpu),
                     "%.2f%%" % statistics.median(paused) if paused else "?",
                     pct(slowdowns[((), "cpu")]), pct(slowdowns[(("--nonblocking",), "cpu")]),
                     pct(slowdowns[((), "wall")]), pct(slowdowns[(("--nonblocking",), "wall")])]
            for key in ((), ("--nonblocking",)):
                cells.append("%.2f%%; %.2f%%" % (statistics.median(steady_shares[key]),
                                                 statistics.median(cpu_shares[key])))
            print("| " + " | ".join(cells) + " |")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
