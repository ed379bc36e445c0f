#!/usr/bin/env python3
"""Integration tests of `pyspy-cpp dump` against live interpreters.

Run by ctest (tests/integration/CMakeLists.txt) with the system python3:

  test_dump.py --binary BUILD/pyspy-cpp interp PYTHON   # one interpreter of the matrix
  test_dump.py --binary BUILD/pyspy-cpp no-such-process
  test_dump.py --binary BUILD/pyspy-cpp not-python
  test_dump.py --binary BUILD/pyspy-cpp permission-denied

`interp` starts tests/targets/threads_target.py under PYTHON, waits for its READY
line (which carries the stacks as the interpreter itself sees them) and runs dump in
text and JSON, blocking and --nonblocking, with and without --full-filenames,
comparing every frame of the three threads. Exit code 0 = passed, 1 = failed,
77 = skipped (the interpreter is not installed, or the test cannot run here).
"""

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from driver_common import SKIP, Failure, ReadyTarget, check, is_free_threaded, log

HERE = os.path.dirname(os.path.abspath(__file__))
TARGET = os.path.normpath(os.path.join(HERE, "..", "targets", "threads_target.py"))
DUMP_TIME_LIMIT = 2.0  # seconds, wall clock, for one `dump`
READY_TIMEOUT = 60.0
EXIT = {"ok": 0, "internal": 1, "usage": 2, "no_such_process": 3, "permission": 4, "not_python": 5,
        "unsupported": 6, "exited": 7, "timeout": 8, "io": 9}


# --- helpers -----------------------------------------------------------------------

def short_filename(path):
    """The documented shortening of `dump` without --full-filenames (include/pyspy/output/dump.h):
    ".../site-packages/x/y.py" -> "x/y.py", ".../lib/python3.11/threading.py" -> "threading.py",
    anything else -> its base name."""
    for marker in ("/site-packages/", "/dist-packages/"):
        pos = path.rfind(marker)
        if pos >= 0:
            return path[pos + len(marker):]
    m = re.search(r"/lib/python[23]\.[0-9]+t?/", path)
    if m:
        return path[m.end():]
    return path.rsplit("/", 1)[-1]


def proc_state(pid, tid=None):
    path = "/proc/%d/task/%d/stat" % (pid, tid) if tid else "/proc/%d/stat" % pid
    with open(path) as f:
        data = f.read()
    fields = data[data.rindex(")") + 2:].split()
    return fields[0], int(fields[11]) + int(fields[12])  # state, utime + stime (ticks)


def task_ids(pid):
    return sorted(int(t) for t in os.listdir("/proc/%d/task" % pid))


class Target(ReadyTarget):
    """threads_target.py under one interpreter; killed and reaped on close()."""

    def __init__(self, python):
        ReadyTarget.__init__(self, [python, TARGET, "120"], READY_TIMEOUT)

    def after_ready(self, deadline):
        # The main thread prints READY from announce(), then still has to take the GIL
        # back from the busy thread to return and enter time.sleep(). Wait until the
        # kernel has seen it asleep for several polls in a row.
        stat = "/proc/%d/task/%d/stat" % (self.pid, self.pid)
        asleep = 0
        while asleep < 5 and time.time() < deadline:
            try:
                with open(stat) as f:
                    state = f.read().rsplit(")", 1)[1].split()[0]
            except OSError:
                return
            asleep = asleep + 1 if state == "S" else 0
            time.sleep(0.02)


def run_dump(binary, pid, *flags, timeout=30, preexec=None, env=None):
    argv = [binary, "dump", "--pid", str(pid)] + list(flags)
    start = time.monotonic()
    try:
        p = subprocess.run(argv, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL,
                           preexec_fn=preexec, env=env)
    except subprocess.TimeoutExpired:
        raise Failure("%s did not finish within %d s" % (" ".join(argv), timeout))
    elapsed = time.monotonic() - start
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace"), elapsed


# --- parsing the two output formats --------------------------------------------------

THREAD_RE = re.compile(r'^Thread (\S+) \((running|gil|lock|io|sleep|child|other)((?:: .*?)?)(\+gil)?(?:\+gc)?\)(?:: "(.*)")?$')
FRAME_RE = re.compile(r"^    (.+) \((.+):(\d+|\?)\)$")


def parse_text(out):
    """Text dump -> a dict shaped like the JSON document (the fields text shows)."""
    lines = out.split("\n")
    check(len(lines) >= 3, "text output too short:\n" + out)
    m = re.match(r"^Process (\d+): (.*)$", lines[0])
    check(m, "bad first line %r" % lines[0])
    doc = {"pid": int(m.group(1)), "command_line": m.group(2)}
    m = re.match(r"^Python v(\S+)( free-threaded \(no GIL\))? \((.*)\)$", lines[1])
    check(m, "bad second line %r" % lines[1])
    doc["python_version"], doc["free_threaded"], doc["executable"] = m.group(1), bool(m.group(2)), m.group(3)
    doc["threads"] = []
    thread = None
    for line in lines[2:]:
        if line == "":
            thread = None
            continue
        m = THREAD_RE.match(line)
        if m and thread is None:
            ident = m.group(1)
            thread = {"native_id": int(ident) if ident.isdigit() else None,
                      "active": m.group(2) == "running", "holds_gil": bool(m.group(4)),
                      "waiting_for_gil": m.group(2) == "gil", "state": m.group(2),
                      "name": m.group(5), "frames": [], "truncated": False, "error": None}
            doc["threads"].append(thread)
            continue
        check(thread is not None, "line outside a thread block: %r" % line)
        if line == "    ... (stack truncated)":
            thread["truncated"] = True
            continue
        if line.startswith("    [error reading stack: "):
            thread["error"] = line.strip()
            continue
        m = FRAME_RE.match(line)
        check(m, "bad frame line %r" % line)
        thread["frames"].append({"function": m.group(1), "filename": m.group(2),
                                 "line": None if m.group(3) == "?" else int(m.group(3))})
    return doc


def parse_json(out):
    try:
        doc = json.loads(out)
    except ValueError as e:
        raise Failure("--json output is not JSON (%s):\n%s" % (e, out))
    for key in ("pid", "command_line", "python_version", "executable", "paused", "timestamp", "threads"):
        check(key in doc, "JSON document lacks %r" % key)
    for t in doc["threads"]:
        for key in ("thread_id", "native_id", "name", "active", "holds_gil", "frames", "truncated", "error"):
            check(key in t, "JSON thread lacks %r: %r" % (key, t))
        for f in t["frames"]:
            check(set(f) >= {"function", "filename", "line"}, "JSON frame lacks keys: %r" % f)
    return doc


# --- the per-interpreter test --------------------------------------------------------

def expected_frames(ready_thread, full):
    return [{"function": f["function"],
             "filename": f["filename"] if full else short_filename(f["filename"]),
             "line": f["line"]} for f in ready_thread["frames"]]


def fmt_frames(frames):
    return "\n".join("      %s (%s:%s)" % (f["function"], f["filename"], f["line"]) for f in frames)


def check_doc(doc, target, is_json, full, blocking, free_threaded=False):
    """Checks one dump against the target's own report; returns whether the busy thread
    was shown holding the GIL (never on a free-threaded build: there is none)."""
    ready = target.ready
    check(doc["pid"] == target.pid, "pid %r, expected %d" % (doc["pid"], target.pid))
    check(doc["command_line"] == " ".join(target.argv),
          "command line %r, expected %r" % (doc["command_line"], " ".join(target.argv)))
    check(doc["python_version"] == ready["python"],
          "python version %r, expected %r" % (doc["python_version"], ready["python"]))
    check(bool(doc.get("free_threaded")) == free_threaded, "%s says free-threaded is %r, expected %r" %
          ("JSON" if is_json else "the text header", doc.get("free_threaded"), free_threaded))
    check(os.path.realpath(doc["executable"]) == os.path.realpath(ready["executable"]),
          "executable %r, expected %r" % (doc["executable"], ready["executable"]))
    if is_json:
        check(doc["paused"] is blocking, "paused is %r for a %s dump" %
              (doc["paused"], "blocking" if blocking else "nonblocking"))
        check(isinstance(doc["timestamp"], (int, float)) and abs(doc["timestamp"] - time.time()) < 60,
              "timestamp %r is not now" % doc["timestamp"])

    by_name = {}
    for t in doc["threads"]:
        check(t["name"] not in by_name, "thread name %r appears twice" % t["name"])
        by_name[t["name"]] = t
    check(sorted(by_name) == ["MainThread", "busy", "sleeper"],
          "threads %r, expected MainThread, busy and sleeper" % sorted(by_name, key=str))

    for name, want in ready["threads"].items():
        t = by_name[name]
        check(t["error"] is None, "thread %s: error %r" % (name, t["error"]))
        check(not t["truncated"], "thread %s: stack truncated" % name)
        if want["native_id"] is not None:
            check(t["native_id"] == want["native_id"],
                  "thread %s: native id %r, expected %r" % (name, t["native_id"], want["native_id"]))
        if is_json:
            check(t["thread_id"] == want["ident"],
                  "thread %s: thread_id %r, expected %r" % (name, t["thread_id"], want["ident"]))
        frames = expected_frames(want, full)
        check(t["frames"] == frames, "thread %s: frames\n%s\n    expected\n%s" %
              (name, fmt_frames(t["frames"]), fmt_frames(frames)))

    check(by_name["busy"]["active"], "the busy thread is reported idle")
    check(not by_name["sleeper"]["active"], "the sleeper thread is reported active")
    check(not by_name["MainThread"]["active"], "the main thread is reported active")
    holders = [t["name"] for t in doc["threads"] if t["holds_gil"]]
    if free_threaded:
        waiters = [t["name"] for t in doc["threads"] if t.get("waiting_for_gil")]
        check(holders == [] and waiters == [], "free-threaded: no GIL, yet %r shown holding it and %r waiting for "
                                               "it" % (holders, waiters))
        return False
    check(holders in ([], ["busy"]), "GIL holders %r: only the busy thread (or nobody) may hold it" % holders)
    return holders == ["busy"]


def check_target_running(target):
    """The target must not be left stopped, and its busy thread must keep spinning."""
    busy_tid = target.ready["threads"]["busy"]["native_id"]
    check(target.proc.poll() is None, "the target died (exit status %r)" % target.proc.returncode)
    for tid in task_ids(target.pid):
        state, _ = proc_state(target.pid, tid)
        check(state not in ("t", "T"), "thread %d of the target left in state %r" % (tid, state))
    if busy_tid is not None and os.path.exists("/proc/%d/task/%d" % (target.pid, busy_tid)):
        # Until its CPU time moves on (a tick is 10 ms; a loaded machine may take longer).
        _, before = proc_state(target.pid, busy_tid)
        deadline = time.time() + 5
        state, after = proc_state(target.pid, busy_tid)
        while after <= before and time.time() < deadline:
            time.sleep(0.01)
            state, after = proc_state(target.pid, busy_tid)
        check(after > before, "the busy thread does not run any more after dump (state %r, 5 s)" % state)


def test_interp(binary, python):
    if not (os.path.isfile(python) and os.access(python, os.X_OK)):
        log("SKIP: interpreter %s is not installed" % python)
        return SKIP
    free_threaded = is_free_threaded(python)
    target = Target(python)
    try:
        log("target pid %d, Python %s (%s)%s" % (target.pid, target.ready["python"], python,
                                                 ", free-threaded" if free_threaded else ""))
        runs = [
            ([], False, False, True),
            (["--nonblocking"], False, False, False),
            (["--json"], True, False, True),
            (["--json", "--nonblocking"], True, False, False),
            (["--full-filenames"], False, True, True),
            (["--json", "--full-filenames", "--nonblocking"], True, True, False),
            # The stripped-build path: the interpreter found by a validated scan, no symbols.
            (["--json", "--scan-only"], True, False, True),
        ]
        busy_held_gil = 0
        blocking_dumps = 0
        failures = []
        for flags, is_json, full, blocking in runs:
            label = "dump " + " ".join(flags or ["(text)"])
            code, out, err, elapsed = run_dump(binary, target.pid, *flags)
            try:
                check(code == 0, "exit code %d, stderr: %s" % (code, err.strip()))
                check(elapsed < DUMP_TIME_LIMIT, "took %.2f s (limit %.1f s)" % (elapsed, DUMP_TIME_LIMIT))
                doc = parse_json(out) if is_json else parse_text(out)
                if check_doc(doc, target, is_json, full, blocking, free_threaded):
                    busy_held_gil += 1
                blocking_dumps += 1 if blocking else 0
                check_target_running(target)
                log("ok   %s (%.2f s)" % (label, elapsed))
            except Failure as e:
                failures.append("%s: %s" % (label, e))
                log("FAIL %s: %s\n--- output:\n%s--- stderr:\n%s" % (label, e, out, err))
                check_target_running(target)
        if free_threaded:
            if failures:
                raise Failure("\n".join(failures))
            log("ok   free-threaded: no thread shown holding or waiting for a GIL in any dump")
            return 0
        # The GIL holder is racy in one dump; over up to five the busy thread must show up.
        attempts = 0
        while not failures and busy_held_gil == 0 and attempts < 5:
            attempts += 1
            code, out, err, _ = run_dump(binary, target.pid, "--json")
            if code == 0 and check_doc(parse_json(out), target, True, False, True):
                busy_held_gil += 1
        if not failures and busy_held_gil == 0:
            failures.append("the busy thread was never seen holding the GIL")
        if failures:
            raise Failure("\n".join(failures))
        log("ok   busy thread seen holding the GIL in %d dump(s)" % busy_held_gil)
        return 0
    finally:
        target.close()


# --- error paths -------------------------------------------------------------------

def check_one_line(err):
    lines = err.strip("\n").split("\n")
    check(err.strip() != "" and len(lines) == 1, "stderr should be one line, got %r" % err)


def test_no_such_process(binary):
    with open("/proc/sys/kernel/pid_max") as f:
        pid = int(f.read()) - 1
    while os.path.exists("/proc/%d" % pid):
        pid -= 1
    code, out, err, _ = run_dump(binary, pid)
    check(code == EXIT["no_such_process"], "exit code %d, expected 3; stderr: %s" % (code, err.strip()))
    check_one_line(err)
    check(out == "", "stdout should be empty, got %r" % out)
    log("ok   pid %d: %s" % (pid, err.strip()))
    return 0


def spawn_sleep(argv):
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    time.sleep(0.3)  # let exec finish so the image is the program's, not ours
    check(p.poll() is None, "%s exited early" % argv)
    return p


def test_not_python(binary):
    p = spawn_sleep(["sleep", "60"])
    try:
        code, out, err, _ = run_dump(binary, p.pid)
        check(code == EXIT["not_python"], "exit code %d, expected 5; stderr: %s" % (code, err.strip()))
        check_one_line(err)
        check(re.search(r"python", err, re.I), "the message should name what was looked for: %r" % err)
        log("ok   sleep: %s" % err.strip())
        return 0
    finally:
        p.kill()
        p.wait()


def test_permission_denied(binary):
    if os.geteuid() != 0:
        log("SKIP: needs root to start a root-owned target and run pyspy-cpp as nobody")
        return SKIP
    setpriv = shutil.which("setpriv")
    if not setpriv:
        log("SKIP: setpriv (util-linux) is not installed")
        return SKIP
    # A Python target, so that only the permission can be what stops pyspy-cpp.
    python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
    p = spawn_sleep([python, "-c", "import time; time.sleep(60)"])
    tmp = tempfile.mkdtemp(prefix="pyspy-perm-")
    try:
        os.chmod(tmp, 0o755)
        copy = os.path.join(tmp, "pyspy-cpp")
        shutil.copy(binary, copy)
        os.chmod(copy, 0o755)
        argv = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", copy, "dump", "--pid", str(p.pid)]
        r = subprocess.run(argv, capture_output=True, timeout=30, stdin=subprocess.DEVNULL, cwd=tmp)
        code, err = r.returncode, r.stderr.decode(errors="replace")
        check(code == EXIT["permission"], "exit code %d, expected 4; stderr: %s" % (code, err.strip()))
        check_one_line(err)
        check(re.search(r"root|CAP_SYS_PTRACE|ptrace_scope", err),
              "the message should say how to get access (root, CAP_SYS_PTRACE, ptrace_scope): %r" % err)
        check(p.poll() is None, "the target died")
        log("ok   as nobody: %s" % err.strip())
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        p.kill()
        p.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", required=True, help="the pyspy-cpp executable")
    parser.add_argument("test", choices=["interp", "no-such-process", "not-python", "permission-denied"])
    parser.add_argument("python", nargs="?", help="the interpreter (for `interp`)")
    args = parser.parse_args()
    binary = os.path.abspath(args.binary)
    if not os.access(binary, os.X_OK):
        log("FAIL: %s is not an executable" % binary)
        return 1
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # ctest's timeout: still clean up
    try:
        if args.test == "interp":
            if not args.python:
                parser.error("interp needs the interpreter's path")
            return test_interp(binary, args.python)
        return {"no-such-process": test_no_such_process, "not-python": test_not_python,
                "permission-denied": test_permission_denied}[args.test](binary)
    except Failure as e:
        log("FAIL: %s" % e)
        return 1


if __name__ == "__main__":
    sys.exit(main())
