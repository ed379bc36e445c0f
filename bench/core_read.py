#!/usr/bin/env python3
"""Cost of `pyspy-cpp dump --core` by the size of the core: wall time (median of N runs)
and pyspy-cpp's peak RSS, plain and with --native, for a crashed Python holding a heap
of 0, 256 and 1024 MiB (written, so the kernel dumps it). The core is mapped, not read:
RSS should not grow with it.

Usage: bench/core_read.py [--python PATH] [--runs N] [--sizes 0,256,1024] [--binary build/pyspy-cpp]
Needs root (it sets /proc/sys/kernel/core_pattern for the crash and restores it).
Prints a Markdown table.
"""
import argparse
import glob
import os
import resource
import shutil
import statistics
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PATTERN = "/proc/sys/kernel/core_pattern"

# Fills `mib` MiB of heap with non-zero bytes (so the pages are dumped), then crashes in
# C in a frame of its own with three parked threads beside it.
TARGET = r"""
import ctypes, sys, threading, time
heap = [bytearray(b"x" * (1 << 20)) for _ in range(int(sys.argv[1]))]
for i in range(3):
    t = threading.Thread(target=time.sleep, args=(3600,), name="parked-%d" % i)
    t.daemon = True
    t.start()
time.sleep(0.2)
def crash_here():
    ctypes.string_at(0)
crash_here()
"""


def crash(python, mib, workdir):
    with open(PATTERN) as f:
        saved = f.read().strip()
    with open(PATTERN, "w") as f:
        f.write("core.%p")
    try:
        limit = (resource.RLIM_INFINITY, resource.RLIM_INFINITY)
        subprocess.run([python, "-c", TARGET, str(mib)], cwd=workdir, stderr=subprocess.DEVNULL,
                       preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_CORE, limit))
    finally:
        with open(PATTERN, "w") as f:
            f.write(saved)
    cores = glob.glob(os.path.join(workdir, "core.*"))
    if len(cores) != 1:
        raise SystemExit("no core written in %s" % workdir)
    return cores[0]


def measure(binary, core, extra, runs):
    """Median wall ms and the largest peak RSS (MiB) over `runs` dumps."""
    times, peaks = [], []
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.Popen([binary, "dump", "--core", core] + extra, stdout=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        times.append((time.perf_counter() - start) * 1000)
        if status != 0:
            raise SystemExit("dump --core %s failed: status %d" % (" ".join(extra), status))
        peaks.append(usage.ru_maxrss / 1024.0)
    return statistics.median(times), max(peaks)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--python", default=os.path.expanduser("~/.pyenv/versions/3.12.1/bin/python"))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sizes", default="0,256,1024")
    parser.add_argument("--binary", default=os.path.join(ROOT, "build", "pyspy-cpp"))
    args = parser.parse_args()
    print("| heap (MiB) | core (MiB) | dump --core (ms) | peak RSS (MiB) | --native (ms) | --native peak RSS (MiB) |")
    print("|---|---|---|---|---|---|")
    for mib in [int(s) for s in args.sizes.split(",")]:
        workdir = tempfile.mkdtemp(prefix="pyspy-core-bench-")
        try:
            core = crash(args.python, mib, workdir)
            size = os.path.getsize(core) / (1 << 20)
            plain = measure(args.binary, core, [], args.runs)
            native = measure(args.binary, core, ["--native"], args.runs)
            print("| %d | %.0f | %.0f | %.1f | %.0f | %.1f |" % (mib, size, plain[0], plain[1], native[0], native[1]))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
