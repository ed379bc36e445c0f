"""Shared by the benchmark scripts: the interpreter matrix (the build's
tests/interpreters.txt, see interpreters()), the deep-stack target, summary parsing."""
import contextlib
import glob
import os
import re
import subprocess
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEEP_STACK_TARGET = os.path.join(HERE, "deep_stack_target.py")
# The extra interpreters tests/CMakeLists.txt expects (built by hand: DEVELOPERS.md);
# only read here when no build has written its matrix.
CPYTHON_ROOT = "/opt/cpython"
EXPECTED = [("3.14", CPYTHON_ROOT + "/3.14/bin/python3"), ("3.14t", CPYTHON_ROOT + "/3.14t/bin/python3")]


def matrix_file(binary=None):
    """The matrix as a build sees it (written at configure time next to the binary's
    tests: <build>/tests/interpreters.txt), or None when there is none."""
    build = os.path.dirname(os.path.abspath(binary)) if binary else os.path.join(ROOT, "build")
    path = os.path.join(build, "tests", "interpreters.txt")
    return path if os.path.isfile(path) else None


def read_matrix(path):
    pyenv = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    with open(path) as f:
        for line in f:
            if line.strip() and not line.startswith("#"):
                label, python = line.split(None, 1)
                yield label, python.strip().replace("$PYENV_ROOT", pyenv)


def interpreters(binary=None):
    """(label, path) for every interpreter of the matrix: the build's (that of `binary`,
    default build/pyspy-cpp), else tests/interpreters.txt, 3.14 and 3.14t under
    /opt/cpython and any other /opt/cpython/<dir>/bin/python3 (PYSPY_TEST_PYTHONS is
    read only by cmake). Absent interpreters are listed too."""
    generated = matrix_file(binary)
    if generated:
        for entry in read_matrix(generated):
            yield entry
        return
    seen_labels, seen_files = set(), set()
    extra = EXPECTED + [(os.path.basename(os.path.dirname(os.path.dirname(p))), p)
                        for p in sorted(glob.glob(CPYTHON_ROOT + "/*/bin/python3"))]
    for label, python in list(read_matrix(os.path.join(ROOT, "tests", "interpreters.txt"))) + extra:
        try:
            st = os.stat(python)
            same = (st.st_dev, st.st_ino)  # a hard link too (python3.14 and python3.14t)
        except OSError:
            same = os.path.realpath(python)
        if label in seen_labels or same in seen_files:
            continue
        seen_labels.add(label)
        seen_files.add(same)
        yield label, python


def overhead_args(seconds, rounds):
    """The options of the overhead benchmarks: --seconds, --rounds, --binary, --only."""
    import argparse
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=seconds)
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--binary", default=os.path.join(ROOT, "build", "pyspy-cpp"))
    parser.add_argument("--only")
    return parser.parse_args()


def installed_interpreters(only, columns, binary=None):
    """interpreters(binary) limited to label `only` (if given); one that is not installed
    gets a table row saying so (with `columns` cells in all) and is not yielded."""
    for label, python in interpreters(binary):
        if only and label != only:
            continue
        if not os.access(python, os.X_OK):
            print("| %s | skipped (not installed) |%s" % (label, " |" * (columns - 2)))
            continue
        yield label, python


def profiler_cpu_ns(pid):
    """CPU time of all threads of `pid` so far, in ns (schedstat: finer than stat's ticks)."""
    total = 0
    for task in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, task)) as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass  # a thread that ended between the listing and the read
    return total


@contextlib.contextmanager
def deep_stack_target(python, *args, prefix=()):
    """bench/deep_stack_target.py under `python` with `args` (`prefix`, e.g. a taskset
    command, goes before the interpreter), yielded once it has printed READY; killed when
    the block ends."""
    target = subprocess.Popen(list(prefix) + [python, DEEP_STACK_TARGET] + list(args), stdout=subprocess.PIPE)
    try:
        target.stdout.readline()  # READY
        yield target
    finally:
        target.kill()
        target.wait()


SUMMARY_SAMPLES = re.compile(r"done after [0-9.]+ s: (\d+) samples")


def summary_samples(stderr):
    """The sample count of record's summary line ("done after S s: N samples"), or None.
    Not the first "N samples" on stderr: the lag warning ("10 of 38 samples late") has one."""
    m = SUMMARY_SAMPLES.search(stderr)
    return int(m.group(1)) if m else None


def traced_record(binary, pid, seconds, rate, extra, output):
    """`record` of `pid` under `strace -f -c`: (samples, {system call: count})."""
    with tempfile.NamedTemporaryFile(suffix=".strace") as out:
        argv = ["strace", "-f", "-c", "-o", out.name, binary, "record", "--pid", str(pid), "-r", str(rate), "-d",
                str(seconds), "-f", "raw", "-o", output] + extra
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


def calls_per_sample(binary, pid, seconds, rate, extra, output):
    """System calls per sample of `record` (minus a 0.2 s run: start-up and output), the
    median of three tries: (total, {call: per sample}), calls under 0.05 per sample and the
    ones not made by sampling (rt_sigtimedwait, futex, write) left out. Under strace on a
    loaded machine a run now and then takes far fewer samples than asked, which inflates
    its ratio: hence the median."""
    tries = []
    for _ in range(3):
        s0, c0 = traced_record(binary, pid, 0.2, rate, extra, output)
        s1, c1 = traced_record(binary, pid, seconds, rate, extra, output)
        n = max(s1 - s0, 1)
        per = {k: (c1.get(k, 0) - c0.get(k, 0)) / n for k in set(c0) | set(c1)}
        per = {k: v for k, v in per.items() if v >= 0.05 and k not in ("rt_sigtimedwait", "futex", "write")}
        tries.append((sum(per.values()), per))
    return sorted(tries, key=lambda t: t[0])[1]
