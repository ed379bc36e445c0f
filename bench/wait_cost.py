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
import resource
import subprocess
import sys
import tempfile

from bench_common import ROOT, summary_samples


def traced(binary, pid, seconds, extra):
    with tempfile.NamedTemporaryFile(suffix=".strace") as out:
        argv = ["strace", "-f", "-c", "-o", out.name, binary, "record", "--pid", str(pid), "-r", "100", "-d",
                str(seconds), "-f", "raw", "-o", "/tmp/pyspy-wait-cost.txt"] + extra
        p = subprocess.run(argv, capture_output=True)
        samples = summary_samples(p.stderr.decode())
        if samples is None:
            raise RuntimeError("record under strace failed: %s" % p.stderr.decode()[-2000:])
        counts = {}
        for line in open(out.name):
            parts = line.split()
            if len(parts) >= 5 and parts[0][0].isdigit() and parts[-1] != "total":
                counts[parts[-1]] = int(parts[3])
        return samples, counts


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
            tries = []
            for _ in range(3):
                s0, c0 = traced(args.binary, pid, 0.2, extra)
                s1, c1 = traced(args.binary, pid, args.seconds, extra)
                n = max(s1 - s0, 1)
                per = {k: (c1.get(k, 0) - c0.get(k, 0)) / n for k in set(c0) | set(c1)}
                per = {k: v for k, v in per.items() if v >= 0.05 and k not in ("rt_sigtimedwait", "futex", "write")}
                tries.append((sum(per.values()), per))
            total, per = sorted(tries, key=lambda t: t[0])[1]
            cpu = sorted(cpu_per_sample(args.binary, pid, args.seconds, extra) for _ in range(3))[1]
            detail = ", ".join("%s %.1f" % (k, v) for k, v in sorted(per.items(), key=lambda kv: -kv[1]))
            print("| %s | %.1f | %s | %.0f us |" % (mode, total, detail, cpu))
    finally:
        app.kill()
        app.wait()


if __name__ == "__main__":
    main()
