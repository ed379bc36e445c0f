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
import subprocess
import tempfile

from bench_common import ROOT, deep_stack_target, interpreters, summary_samples


def traced(binary, pid, seconds, extra):
    with tempfile.NamedTemporaryFile(suffix=".strace") as out:
        argv = ["strace", "-f", "-c", "-o", out.name, binary, "record", "--pid", str(pid), "-r", "200", "-d",
                str(seconds), "-f", "raw", "-o", "/tmp/pyspy-syscalls.txt"] + extra
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
                # Three tries, the median kept: under strace on a loaded machine a run
                # now and then takes far fewer samples than asked, which inflates its ratio.
                tries = []
                for _ in range(3):
                    s0, c0 = traced(args.binary, target.pid, 0.2, extra)
                    s1, c1 = traced(args.binary, target.pid, 2.2, extra)
                    n = max(s1 - s0, 1)
                    per = {k: (c1.get(k, 0) - c0.get(k, 0)) / n for k in set(c0) | set(c1)}
                    per = {k: v for k, v in per.items()
                           if v >= 0.05 and k not in ("rt_sigtimedwait", "futex", "write")}
                    tries.append((sum(per.values()), per))
                total, per = sorted(tries, key=lambda t: t[0])[1]
                detail = ", ".join("%s %.1f" % (k, v) for k, v in sorted(per.items(), key=lambda kv: -kv[1]))
                print("| %s | %s | %.1f | %s |" % (label, mode, total, detail))


if __name__ == "__main__":
    main()
