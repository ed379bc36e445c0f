#!/usr/bin/env python3
"""Integration tests of launch mode (`record -- PROGRAM`, `top -- PROGRAM`, issue 18): a
program pyspy-cpp started ends with the recording, and so does everything it started.

Run by ctest (tests/integration/CMakeLists.txt) with the system python3:

  test_launch.py --binary BUILD/pyspy-cpp end|wrapper PYTHON

end: record -d 1 of a program that runs forever and has started a child and an
orphaned grandchild (the intermediate process exits at once); record -d 1 of a program
that ignores SIGINT (it gets SIGTERM after the grace period); and top of the first
program under tmux, quit with `q`. Each returns within its time plus the grace periods,
exits 0 with its output written (top: the terminal given back), and leaves no process of
the program's tree alive (found by a token in their environment).

wrapper: a bash script that starts Python after 0.5 s (a root that is not Python, as
`uv run` or a supervisor is): `record -s -- bash script.sh` and `record -s --pid BASH`
(started before Python is) profile the Python child with its exact stack, and say once
that the root is not Python; `dump -s --pid BASH` and `top -s --pid BASH` show the child;
a script that execs Python after 1.2 s is sampled itself from then on under `record -s --pid`; `dump --pid BASH`
fails (exit 5) suggesting -s; a root with no Python descendant under `record -s --wait-for-python 1`
ends after about 1 s with exit 5 and the documented message.

Exit code 0 = passed, 1 = failed, 77 = skipped (interpreter not installed).
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid

import test_top as top_driver
from driver_common import Failure, Skip, check, driver_main, log

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

    if shutil.which("tmux") is None:
        raise Skip("tmux is not installed (top -- PROGRAM quit with q is not checked)")
    token = uuid.uuid4().hex
    tmux = top_driver.Tmux(top_driver.shell_command(binary, ["--delay", "0.5", "--", python, busy],
                                                    env={"PYSPY_LAUNCH_TOKEN": token}))
    try:
        tmux.wait_for(lambda lines: any("busy (" in line for line in lines), "top to show busy()")
        quit_at = time.monotonic()
        tmux.keys("q")
        top_driver.wait_exited(tmux, "top -- busy program, q")
        elapsed = time.monotonic() - quit_at
    finally:
        tmux.close()
        for path in top_driver.SCRIPTS:
            os.unlink(path)
        del top_driver.SCRIPTS[:]
    check(elapsed < GRACE + SLACK, "top -- busy program took %.1f s to end after q" % elapsed)
    check_tree_gone(token, "top -- busy program, q")
    log("top q: ok (%.1f s from q to the shell's prompt, terminal restored)" % elapsed)


# Python started by a script after 0.5 s, as a child (not exec'd: the root stays bash).
# It spins in spin() on one line; the ready file says it is there.
WRAPPED_PROGRAM = r"""import sys
def spin():
    while True: pass
open(sys.argv[1], "w").close()
spin()
"""
WRAPPED_STACK = "<module> (wrapped.py:5);spin (wrapped.py:3)"

NOT_PYTHON_NOTE = "is not Python; profiling its Python descendants"


def write_wrapper(tmp, python, name="start.sh", before="sleep 0.5", run=""):
    """A bash script that runs `before`, then the wrapped program (`run`: "exec" to exec
    it); returns its path and the path of the ready file the program creates."""
    wrapped = os.path.join(tmp, "wrapped.py")
    with open(wrapped, "w") as f:
        f.write(WRAPPED_PROGRAM)
    script = os.path.join(tmp, name)
    ready = os.path.join(tmp, "ready")
    with open(script, "w") as f:
        f.write("#!/bin/bash\n%s\n%s %s %s %s\n" % (before, run, python, wrapped, ready))
    return script, ready


def process_stacks(raw):
    """{pid: {stack below the process frame: count}} of a raw -s profile."""
    stacks = {}
    for line in raw.splitlines():
        m = re.match(r"process (\d+): [^;]*;(.*) (\d+)$", line)
        if m:
            per = stacks.setdefault(int(m.group(1)), {})
            per[m.group(2)] = per.get(m.group(2), 0) + int(m.group(3))
    return stacks


def check_wrapped_profile(raw, root, what, exec_root=False):
    """The profile holds one Python process spinning in spin(): a child of `root`, or with
    exec_root root itself (it exec'd Python). Returns its pid and its samples in spin()."""
    stacks = process_stacks(raw)
    if exec_root:
        check(sorted(stacks) == [root], "%s: expected samples of process %d alone, found processes %s:\n%s"
              % (what, root, sorted(stacks), raw[:2000]))
        pid = root
    else:
        children = [p for p in stacks if p != root]
        check(root not in stacks and len(children) == 1,
              "%s: expected samples of one Python child of %d, found processes %s:\n%s"
              % (what, root, sorted(stacks), raw[:2000]))
        pid = children[0]
    per = stacks[pid]
    total = sum(per.values())
    top_stack, count = max(per.items(), key=lambda item: item[1])
    # Samples from before spin() (the interpreter finishing its start) may precede it.
    check(top_stack == WRAPPED_STACK and count >= 0.8 * total and count >= 10,
          "%s: expected %r in most samples, got %s" % (what, WRAPPED_STACK, per))
    return pid, count


def start_bash(argv):
    """`argv` (bash and its arguments) in its own session; returned once bash has exec'd
    and its arguments are in place (before, the pid is still a fork of this driver, itself
    Python, and then a process without arguments)."""
    p = subprocess.Popen(argv, start_new_session=True, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        try:
            with open("/proc/%d/cmdline" % p.pid, "rb") as f:
                args = f.read()
            if os.path.basename(os.readlink("/proc/%d/exe" % p.pid)) == "bash" and args:
                return p
        except OSError:
            pass
        if time.monotonic() > deadline:
            end_group(p)
            raise Failure("%s did not start within 30 s" % " ".join(argv))
        time.sleep(0.005)


def end_group(p):
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except OSError:
        pass
    p.wait()


def wait_file(path, what, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise Failure("timed out waiting for %s" % what)
        time.sleep(0.02)


def record_wrapper_pid(binary, pid, out, seconds, what, exec_root=False):
    """record -s -d SECONDS --pid of a running wrapper script: exit 0, one note that it is
    not Python, and the wrapped program's profile (check_wrapped_profile)."""
    r = subprocess.run([binary, "record", "-s", "-d", str(seconds), "-f", "raw", "-o", out, "--pid", str(pid)],
                       capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    err = r.stderr.decode(errors="replace")
    check(r.returncode == 0, "%s exited %d, expected 0: %s" % (what, r.returncode, err))
    check(err.count(NOT_PYTHON_NOTE) == 1 and ("process %d (bash " % pid) in err,
          "%s: expected one note that %d is not Python:\n%s" % (what, pid, err))
    with open(out) as f:
        return check_wrapped_profile(f.read(), pid, what, exec_root)


def test_wrapper(binary, python, tmp):
    script, ready = write_wrapper(tmp, python)

    # Launch mode: the script is started by pyspy-cpp; -d ends it and its Python child.
    token = uuid.uuid4().hex
    out = os.path.join(tmp, "launched.txt")
    rc, _, err, elapsed = run_marked(binary, ["record", "-s", "-d", "2", "-f", "raw", "-o", out, "--", "bash", script],
                                     token)
    check(rc == 0, "record -s -- bash script exited %d, expected 0: %s" % (rc, err))
    check(err.count(NOT_PYTHON_NOTE) == 1, "record -s -- bash script: expected one note %r:\n%s"
          % (NOT_PYTHON_NOTE, err))
    with open(out) as f:
        raw = f.read()
    root = int(re.search(r"process (\d+) \(bash ", err).group(1))
    child, count = check_wrapped_profile(raw, root, "record -s -- bash script")
    check(elapsed < 2 + GRACE + SLACK, "record -s -d 2 -- bash script took %.1f s" % elapsed)
    check_tree_gone(token, "record -s -- bash script")
    log("record -s -- bash: ok (child %d: %d samples in spin(), %.1f s)" % (child, count, elapsed))

    # --pid of a running script, attached before its Python starts.
    os.unlink(ready)
    p = start_bash(["bash", script])
    try:
        child, count = record_wrapper_pid(binary, p.pid, os.path.join(tmp, "attached.txt"), 2,
                                          "record -s --pid BASH")
        log("record -s --pid BASH: ok (child %d: %d samples in spin())" % (child, count))

        wait_file(ready, "the wrapped Python to start")
        r = subprocess.run([binary, "dump", "-s", "--pid", str(p.pid)], capture_output=True, timeout=60,
                           stdin=subprocess.DEVNULL)
        text, err = r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")
        check(r.returncode == 0, "dump -s --pid BASH exited %d: %s" % (r.returncode, err))
        check("== process %d (chain %d > %d) ==" % (child, p.pid, child) in text and "spin (wrapped.py:3)" in text
              and "== process %d " % p.pid not in text,
              "dump -s --pid BASH does not show the Python child %d alone:\n%s" % (child, text))
        check("process %d (bash %s) is not Python; dumping its Python descendants" % (p.pid, script) in err,
              "dump -s --pid BASH: no note that the root is not Python:\n%s" % err)
        log("dump -s --pid BASH: ok")

        r = subprocess.run([binary, "top", "-s", "--iterations", "2", "--delay", "0.5", "--pid", str(p.pid)],
                           capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
        text, err = r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")
        check(r.returncode == 0, "top -s --pid BASH exited %d: %s" % (r.returncode, err))
        check(re.search(r"^Python v\d", text, re.M) and "spin" in text and err.count(NOT_PYTHON_NOTE) == 1,
              "top -s --pid BASH: expected the child's version and spin(), and one note:\n%s\n%s" % (text, err))
        log("top -s --pid BASH: ok")

        r = subprocess.run([binary, "dump", "--pid", str(p.pid)], capture_output=True, timeout=60,
                           stdin=subprocess.DEVNULL)
        err = r.stderr.decode(errors="replace")
        check(r.returncode == 5 and "its descendant process %d" % child in err and "add -s" in err
              and err.count("\n") == 1,
              "dump --pid BASH: expected exit 5 and one line suggesting -s, got %d:\n%s" % (r.returncode, err))
        log("dump --pid BASH without -s: ok (%s)" % err.strip())
    finally:
        end_group(p)

    # A script that execs Python after 1.2 s (a container's entry point): the root itself
    # becomes Python after -s has found it is not, and is sampled from then on.
    script, ready = write_wrapper(tmp, python, "exec.sh", "sleep 1.2", "exec")
    p = start_bash(["bash", script])
    try:
        _, count = record_wrapper_pid(binary, p.pid, os.path.join(tmp, "exec.txt"), 3,
                                      "record -s --pid of a script that execs Python", exec_root=True)
        log("record -s --pid of a script that execs Python: ok (%d samples in spin() after the exec)" % count)
    finally:
        end_group(p)

    # No Python at all: --wait-for-python bounds the wait.
    p = start_bash(["bash", "-c", "sleep 60; :"])
    try:
        started = time.monotonic()
        r = subprocess.run([binary, "record", "-s", "--wait-for-python", "1", "-o", os.path.join(tmp, "none.svg"),
                            "--pid", str(p.pid)], capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
        elapsed = time.monotonic() - started
        err = r.stderr.decode(errors="replace")
        expected = "is not Python and started no Python process within 1 s (--wait-for-python SECONDS to wait longer)"
        check(r.returncode == 5 and expected in err, "record -s --wait-for-python 1 of a shell without Python: expected exit 5 "
              "and %r, got %d:\n%s" % (expected, r.returncode, err))
        check(1.0 <= elapsed < 1 + SLACK, "record -s --wait-for-python 1 gave up after %.1f s" % elapsed)
        check(not os.path.exists(os.path.join(tmp, "none.svg")), "record -s --wait-for-python 1 wrote a profile")
        log("record -s --wait-for-python 1 without Python: ok (%.1f s, exit 5)" % elapsed)
    finally:
        end_group(p)


if __name__ == "__main__":
    sys.exit(driver_main({"end": test_end, "wrapper": test_wrapper}, "pyspy-launch-"))
