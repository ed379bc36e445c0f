"""What an integration driver needs around its checks: Failure/Skip, check(), log(),
and driver_main(), which parses `--binary BINARY CASE PYTHON`, skips (exit 77, printing
"SKIP: why") when PYTHON is not installed, and runs the case in a temporary directory.
Every driver imports its primitives from here and ends with driver_main()."""

import argparse
import os
import shutil
import signal
import sys
import tempfile

SKIP = 77


class Failure(Exception):
    pass


class Skip(Exception):
    pass


def check(cond, message):
    if not cond:
        raise Failure(message)


def log(message):
    sys.stdout.write(message + "\n")
    sys.stdout.flush()


def tracer_of(pid):
    """The TracerPid of a process (0: not traced)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("TracerPid:"):
                return int(line.split()[1])
    return 0


def driver_main(tests, tmp_prefix, needs_python=None):
    """tests: {case name: function(binary, python, tmp)}, or one such function for a
    driver without cases (`--binary BINARY PYTHON`). needs_python: the cases that need
    PYTHON (default: all); the others may be run without it. Returns the exit code."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", required=True)
    single = callable(tests)
    if not single:
        parser.add_argument("test", choices=sorted(tests))
    parser.add_argument("python", nargs="?" if needs_python is not None else None)
    args = parser.parse_args()
    run = tests if single else tests[args.test]
    if needs_python is None or args.test in needs_python:
        if not args.python:
            parser.error("%s needs an interpreter" % args.test)
        if not (os.path.isfile(args.python) and os.access(args.python, os.X_OK)):
            log("SKIP: interpreter %s is not installed" % args.python)
            return SKIP
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # ctest's timeout: still clean up
    tmp = tempfile.mkdtemp(prefix=tmp_prefix)
    try:
        run(os.path.abspath(args.binary), args.python, tmp)
    except Skip as e:
        log("SKIP: %s" % e)
        return SKIP
    except Failure as e:
        log("FAIL: %s" % e)
        return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log("ok")
    return 0
