#!/usr/bin/env python3
"""Target slowdown under `record` at 100 Hz, measured with a twin as the control.

Usage: bench/overhead_paired.py [--seconds 6] [--rounds 4] [--binary build/pyspy-cpp] [--only LABEL]

bench/overhead.py compares phases that follow each other in time, so anything that
changes the machine's speed between them (other tasks, the host, frequency) is read as
profiler cost: on the 2-vCPU test VM that noise is about +-3 points, larger than the
1-2% goals. Here two identical targets (bench/deep_stack_target.py in throughput mode:
one thread spinning 31 frames deep, printing iterations per second of its own CPU time)
run side by side over the same seconds, and only one of them is recorded. Whatever slows
the machine slows both; the slowdown of a round is 1 - (rate of the recorded twin) /
(rate of the other), each the median of its per-second rates over the phase. The twins
swap roles every round (so a difference between the twins themselves, e.g. one sharing
its CPU with the profiler more often, cancels), and a phase with neither recorded
measures the twins' own imbalance, which is subtracted. Reported: the median over rounds,
and the spread (min..max) so the noise is visible beside the result.

Rates are per second of the target's CPU time (getrusage), so time spent stopped or
waiting for a CPU does not count; the blocking pause itself (record's "target held
stopped") is reported by overhead.py.
"""
import select
import statistics
import subprocess
import sys
import time

from bench_common import DEEP_STACK_TARGET, installed_interpreters, overhead_args


def cpu_rates(targets, seconds):
    """Per-CPU-second rates each target prints during the next `seconds`."""
    rates = {t.pid: [] for t in targets}
    by_fd = {t.stdout.fileno(): t for t in targets}
    deadline = time.time() + seconds
    while time.time() < deadline:
        ready, _, _ = select.select(list(by_fd), [], [], max(0.0, deadline - time.time()))
        for fd in ready:
            target = by_fd[fd]
            line = target.stdout.readline().decode()
            if line.startswith("RATE "):
                rates[target.pid].append(int(line.split()[2]))
    # The first rate of a phase may straddle the change.
    return {pid: values[1:] for pid, values in rates.items()}


def ratio(rates, a, b):
    """Median rate of twin a over that of twin b."""
    return statistics.median(rates[a.pid]) / statistics.median(rates[b.pid])


def main():
    args = overhead_args(seconds=6, rounds=4)
    print("| Python | blocking: slowdown per CPU-s (median; min..max) | --nonblocking: slowdown per CPU-s (median; min..max) |")
    print("|---|---|---|")
    for label, python in installed_interpreters(args.only, 3, args.binary):
        twins = [subprocess.Popen([python, DEEP_STACK_TARGET, "throughput"], stdout=subprocess.PIPE) for _ in range(2)]
        try:
            for twin in twins:
                twin.stdout.readline()  # READY
            slowdowns = {(): [], ("--nonblocking",): []}
            for round_ in range(args.rounds):
                for extra in ([], ["--nonblocking"]):
                    # Control: neither recorded. Then the recorded twin alternates by round.
                    control = cpu_rates(twins, args.seconds)
                    recorded, other = (twins[0], twins[1]) if round_ % 2 == 0 else (twins[1], twins[0])
                    argv = [args.binary, "record", "--pid", str(recorded.pid), "-r", "100", "-d",
                            str(args.seconds + 0.5), "-f", "raw", "-o", "/tmp/pyspy-overhead-paired.txt"] + extra
                    prof = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    measured = cpu_rates(twins, args.seconds)
                    prof.wait()
                    imbalance = ratio(control, recorded, other)
                    slowdowns[tuple(extra)].append(1 - ratio(measured, recorded, other) / imbalance)
            cells = [label]
            for key in ((), ("--nonblocking",)):
                values = slowdowns[key]
                cells.append("%.2f%% (%.2f..%.2f)" % (100 * statistics.median(values), 100 * min(values),
                                                      100 * max(values)))
            print("| " + " | ".join(cells) + " |")
            sys.stdout.flush()
        finally:
            for twin in twins:
                twin.kill()
                twin.wait()


if __name__ == "__main__":
    main()
