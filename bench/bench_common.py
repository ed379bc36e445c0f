"""Shared by the benchmark scripts: the interpreter matrix (tests/interpreters.txt)."""
import contextlib
import os
import re
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEEP_STACK_TARGET = os.path.join(HERE, "deep_stack_target.py")


def interpreters():
    """(label, path) for every line of tests/interpreters.txt, $PYENV_ROOT expanded."""
    pyenv = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    with open(os.path.join(ROOT, "tests", "interpreters.txt")) as f:
        for line in f:
            if line.strip() and not line.startswith("#"):
                label, path = line.split(None, 1)
                yield label, path.strip().replace("$PYENV_ROOT", pyenv)


def overhead_args(seconds, rounds):
    """The options of the overhead benchmarks: --seconds, --rounds, --binary, --only."""
    import argparse
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=seconds)
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--binary", default=os.path.join(ROOT, "build", "pyspy-cpp"))
    parser.add_argument("--only")
    return parser.parse_args()


def installed_interpreters(only, columns):
    """interpreters() limited to label `only` (if given); one that is not installed gets a
    table row saying so (with `columns` cells in all) and is not yielded."""
    for label, python in interpreters():
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
