#!/usr/bin/env python3
"""Integration tests of launch mode (`record -- PROGRAM`, `top -- PROGRAM`, issue 18): a
program pyspy-cpp started ends with the recording, and so does everything it started.

Run by ctest (tests/integration/CMakeLists.txt) with the system python3:

  test_launch.py --binary BUILD/pyspy-cpp end PYTHON

One case per interpreter: record -d 1 of a program that runs forever and has started a
child and an orphaned grandchild (the intermediate process exits at once); record -d 1
of a program that ignores SIGINT (it gets SIGTERM after the grace period); and top
--iterations 2 of the first program. Each returns within its time plus the grace
periods, exits 0 with its output written, and leaves no process of the program's tree
alive (found by a token in their environment).

Exit code 0 = passed, 1 = failed, 77 = skipped (interpreter not installed).
"""

import os
import subprocess
import sys
import time
import uuid

from driver_common import Failure, check, driver_main, log

# Runs forever in busy(), after starting a child that sleeps and an intermediate process
# that starts a sleeping grandchild and exits (the grandchild is orphaned at once).
BUSY_PROGRAM = r"""
import subprocess, sys
SLEEP = [sys.executable, "-c", "import time; time.sleep(1000)"]
subprocess.Popen(SLEEP)
subprocess.Popen([sys.executable, "-c", "import subprocess, sys; subprocess.Popen(%r)" % (SLEEP,)]).wait()
def busy():
    while True:
        pass
busy()
"""

# Runs forever and ignores SIGINT: only SIGTERM (or SIGKILL) ends it.
STUBBORN_PROGRAM = r"""
import signal
signal.signal(signal.SIGINT, signal.SIG_IGN)
def stubborn():
    while True:
        pass
stubborn()
"""

GRACE = 2.0  # record's and top's grace period after SIGINT, then after SIGTERM
SLACK = 4.0  # startup, attach and a loaded machine


def marked_processes(token):
    """Pids of live processes whose environment holds the token."""
    needle = ("PYSPY_LAUNCH_TOKEN=%s" % token).encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/environ" % entry, "rb") as f:
                if needle in f.read().split(b"\0"):
                    found.append(int(entry))
        except OSError:
            pass
    return found


def run_marked(binary, argv, token, timeout=60):
    env = dict(os.environ, PYSPY_LAUNCH_TOKEN=token)
    start = time.monotonic()
    try:
        p = subprocess.run([binary] + argv, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL, env=env)
    except subprocess.TimeoutExpired:
        raise Failure("%s did not finish within %d s" % (" ".join(argv), timeout))
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace"), \
        time.monotonic() - start


def check_tree_gone(token, what):
    left = marked_processes(token)
    if left:
        details = []
        for pid in left:
            try:
                with open("/proc/%d/cmdline" % pid, "rb") as f:
                    details.append("%d: %s" % (pid, f.read().replace(b"\0", b" ").decode(errors="replace")))
            except OSError:
                details.append(str(pid))
        for pid in left:  # do not leave them to the next test
            try:
                os.kill(pid, 9)
            except OSError:
                pass
        raise Failure("%s left processes of the program running: %s" % (what, "; ".join(details)))


def test_end(binary, python, tmp):
    busy = os.path.join(tmp, "busy.py")
    stubborn = os.path.join(tmp, "stubborn.py")
    with open(busy, "w") as f:
        f.write(BUSY_PROGRAM)
    with open(stubborn, "w") as f:
        f.write(STUBBORN_PROGRAM)

    token = uuid.uuid4().hex
    out = os.path.join(tmp, "busy.txt")
    rc, _, err, elapsed = run_marked(binary, ["record", "-d", "1", "-f", "raw", "-o", out, "--", python, busy], token)
    check(rc == 0, "record -d 1 -- busy program exited %d, expected 0: %s" % (rc, err))
    check(elapsed < 1 + GRACE + SLACK, "record -d 1 took %.1f s (a program that ends on SIGINT)" % elapsed)
    with open(out) as f:
        check("busy (" in f.read(), "the profile of the busy program does not show busy()")
    check_tree_gone(token, "record -d 1 -- busy program")
    log("record -d: ok (%.1f s, child and orphaned grandchild ended)" % elapsed)

    token = uuid.uuid4().hex
    out = os.path.join(tmp, "stubborn.txt")
    rc, _, err, elapsed = run_marked(binary, ["record", "-d", "1", "-f", "raw", "-o", out, "--", python, stubborn],
                                     token)
    check(rc == 0, "record -d 1 -- a program ignoring SIGINT exited %d, expected 0: %s" % (rc, err))
    check(elapsed >= 1 + GRACE * 0.9, "record ended the SIGINT-ignoring program after %.1f s, before the grace period"
          % elapsed)
    check(elapsed < 1 + 2 * GRACE + SLACK, "record -d 1 took %.1f s (a program ignoring SIGINT)" % elapsed)
    check(os.path.getsize(out) > 0, "no profile of the SIGINT-ignoring program")
    check_tree_gone(token, "record -d 1 -- program ignoring SIGINT")
    log("record -d, SIGINT ignored: ok (%.1f s: SIGTERM after the grace period)" % elapsed)

    token = uuid.uuid4().hex
    rc, screen, err, elapsed = run_marked(binary, ["top", "--iterations", "2", "--delay", "0.5", "--", python, busy],
                                          token)
    check(rc == 0, "top --iterations 2 -- busy program exited %d, expected 0: %s" % (rc, err))
    check("busy" in screen, "top did not show busy():\n%s" % screen)
    check(elapsed < 1 + GRACE + SLACK, "top --iterations 2 took %.1f s" % elapsed)
    check_tree_gone(token, "top -- busy program")
    log("top --iterations: ok (%.1f s)" % elapsed)


if __name__ == "__main__":
    sys.exit(driver_main({"end": test_end}, "pyspy-launch-"))
