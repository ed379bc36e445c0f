"""What an integration driver needs around its checks: Failure/Skip, check(), log(),
and driver_main(), which parses `--binary BINARY CASE PYTHON`, skips (exit 77, printing
"SKIP: why") when PYTHON is not installed, and runs the case in a temporary directory.
Every driver imports its primitives from here; the newer ones also use driver_main()."""

import argparse
import os
import shutil
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


def driver_main(tests, tmp_prefix):
    """tests: {case name: function(binary, python, tmp)}. Returns the exit code."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", required=True)
    parser.add_argument("test", choices=sorted(tests))
    parser.add_argument("python")
    args = parser.parse_args()
    if not (os.path.isfile(args.python) and os.access(args.python, os.X_OK)):
        log("SKIP: interpreter %s is not installed" % args.python)
        return SKIP
    tmp = tempfile.mkdtemp(prefix=tmp_prefix)
    try:
        tests[args.test](args.binary, args.python, tmp)
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
