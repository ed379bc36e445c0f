#!/usr/bin/env python3
"""Integration tests of `-s/--subprocesses` (record and dump) against process trees.

Run by ctest (tests/integration/CMakeLists.txt) with the system python3:

  test_subprocesses.py --binary BUILD/pyspy-cpp CASE PYTHON

CASE: pool-fork, pool-spawn (record -s of a multiprocessing.Pool(3): the parent and
three worker pids, each with pool_task), delayed (a child started after profiling
began), orphan (a child whose parent exits, and the grandchild it starts afterwards),
sleep (a non-Python child: one note, no failure), dump (dump -s: each process once),
formats (process-thread names in speedscope and chrometrace, process frames in the
flame graph).
The target is tests/targets/process_tree_target.py.

Exit code 0 = passed, 1 = failed, 77 = skipped (interpreter not installed, or no spawn
start method on 2.7).
"""

import json
import os
import re
import select
import signal
import subprocess
import sys
import time

from driver_common import Failure, Skip, check, driver_main, log

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
TARGET = os.path.join(ROOT, "tests", "targets", "process_tree_target.py")
COLLAPSED_LINE = re.compile(r"^(.+) (\d+)$")
PROCESS_FRAME = re.compile(r"^process (\d+): (.*)$")


def read_line(proc, prefix, timeout):
    """The next stdout line of proc starting with prefix, as JSON."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        r, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.time()))
        if not r:
            break
        line = proc.stdout.readline().decode()
        if not line:
            break
        if line.startswith(prefix + " "):
            return json.loads(line[len(prefix) + 1:])
    raise Failure("no %s line from the target within %.0f s" % (prefix, timeout))


def is_ours(pid):
    """Whether pid still runs the target or its sleep (not a reuse of the pid)."""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return False
    return argv[0].endswith(b"sleep") or any(a.endswith(b"process_tree_target.py") for a in argv) or \
        any(b"multiprocessing" in a for a in argv)


class Target(object):
    def __init__(self, python, *args):
        self.proc = subprocess.Popen([python, TARGET] + [str(a) for a in args], stdout=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL)
        self.pid = self.proc.pid
        try:
            self.ready = read_line(self.proc, "READY", 60)
        except Failure:
            self.close()
            raise

    def close(self):
        """Kills the target and the descendants it reported, so none spins on."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        ready = getattr(self, "ready", {})
        for key in ("children", "workers", "sleep", "child"):
            for pid in ready.get(key, []) if isinstance(ready.get(key), list) else [ready.get(key)]:
                if pid and is_ours(pid):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass


def run(binary, args, timeout=60):
    p = subprocess.run([binary] + args, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def record_raw(binary, tmp, args, timeout=60):
    """record -s -f raw: {pid: [stacks (lists of frames, the process frame removed)]}, stderr."""
    out = os.path.join(tmp, "profile.txt")
    rc, _, err = run(binary, ["record", "-s", "-f", "raw", "-o", out] + args, timeout)
    check(rc == 0, "record -s exited with %d: %s" % (rc, err))
    stacks = {}
    with open(out, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            m = COLLAPSED_LINE.match(line.rstrip("\n"))
            check(m is not None, "line %d does not match the collapsed grammar: %r" % (number, line))
            frames = m.group(1).split(";")
            root = PROCESS_FRAME.match(frames[0])
            check(root is not None, "line %d has no process root frame: %r" % (number, frames[0]))
            stacks.setdefault(int(root.group(1)), []).append((frames[1:], int(m.group(2))))
    return stacks, err


def samples_in(stacks, pid, function):
    """Samples of pid whose stack has `function` (a frame "function (file:line)")."""
    return sum(count for frames, count in stacks.get(pid, [])
               if any(f == function or f.startswith(function + " (") for f in frames))


def python_version(python):
    out = subprocess.check_output([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"])
    return tuple(int(x) for x in out.decode().split("."))


def test_pool(binary, python, tmp, method):
    if method == "spawn" and python_version(python) < (3, 4):
        raise Skip("Python 2.7 has no spawn start method")
    target = Target(python, "pool", method, 8)
    try:
        workers = target.ready["workers"]
        check(len(set(workers)) == 3, "the target reports workers %r" % workers)
        stacks, err = record_raw(binary, tmp, ["--pid", str(target.pid), "-d", "3"])
        done = read_line(target.proc, "DONE", 30)
    finally:
        target.close()
    log("pids in the profile: %s" % {pid: sum(c for _, c in s) for pid, s in stacks.items()})
    check(samples_in(stacks, target.pid, "parent_work") > 0, "no parent_work sample from the parent %d" % target.pid)
    for pid in workers:
        check(pid in done["ran"], "worker %d ran no task (ran: %r)" % (pid, done["ran"]))
        n = samples_in(stacks, pid, "pool_task")
        check(n > 0, "no pool_task sample from worker %d; pids in the profile: %s" % (pid, sorted(stacks)))
    check("error:" not in err, "record -s printed an error: %s" % err)


def test_delayed(binary, python, tmp):
    target = Target(python, "delayed", 1.5, 3)
    try:
        stacks, err = record_raw(binary, tmp, ["--pid", str(target.pid)])
        child = read_line(target.proc, "DONE", 10)["child"]
    finally:
        target.close()
    check(samples_in(stacks, target.pid, "parent_work") > 0, "no parent_work sample from the parent")
    n = samples_in(stacks, child, "child_work")
    log("child %d started after 1.5 s: %d child_work samples" % (child, n))
    check(n > 0, "no child_work sample from the delayed child %d; pids: %s" % (child, sorted(stacks)))
    check("exited" in err, "record did not end with the tree: %s" % err)


def test_orphan(binary, python, tmp):
    facts_path = os.path.join(tmp, "facts.json")
    target = Target(python, "orphan", 3, facts_path)
    try:
        stacks, err = record_raw(binary, tmp, ["--pid", str(target.pid)])
    finally:
        target.close()
    check(os.path.exists(facts_path), "the orphaned child wrote no facts")
    with open(facts_path) as f:
        facts = json.load(f)
    check(facts["child"] == target.ready["child"], "facts %r do not match READY %r" % (facts, target.ready))
    check(samples_in(stacks, target.pid, "parent_work") > 0, "no parent_work sample from the parent")
    n = samples_in(stacks, facts["child"], "child_work")
    m = samples_in(stacks, facts["grandchild"], "grandchild_work")
    log("orphan %d: %d child_work samples; its later child %d: %d grandchild_work samples" %
        (facts["child"], n, facts["grandchild"], m))
    check(n > 0, "no child_work sample from the orphaned child; pids: %s" % sorted(stacks))
    check(m > 0, "no grandchild_work sample from the orphan's child; pids: %s" % sorted(stacks))


def test_sleep(binary, python, tmp):
    target = Target(python, "sleep", 6)
    try:
        stacks, err = record_raw(binary, tmp, ["--pid", str(target.pid), "-d", "2.5"])
    finally:
        target.close()
    sleeper = target.ready["sleep"]
    notes = [line for line in err.splitlines() if "note:" in line and str(sleeper) in line]
    log("notes: %r" % notes)
    check(len(notes) == 1, "expected one note about the sleep process %d, got %r (stderr: %s)" % (sleeper, notes, err))
    check("not a Python" in notes[0] or "no CPython" in notes[0].lower() or "python" in notes[0].lower(),
          "the note does not say why: %r" % notes[0])
    check(sleeper not in stacks, "the sleep process has samples")
    check(samples_in(stacks, target.pid, "parent_work") > 0, "no parent_work sample from the parent")


def test_dump(binary, python, tmp):
    target = Target(python, "tree", 8)
    try:
        rc, out, err = run(binary, ["dump", "-s", "--pid", str(target.pid)])
        rcj, outj, errj = run(binary, ["dump", "-s", "--json", "--pid", str(target.pid)])
    finally:
        target.close()
    check(rc == 0, "dump -s exited with %d: %s" % (rc, err))
    children = target.ready["children"]
    headers = re.findall(r"^== process (\d+) \(chain ([\d >]+)\) ==$", out, re.M)
    pids = [int(p) for p, _ in headers]
    log("dump -s headers: %r" % headers)
    check(len(pids) == len(set(pids)), "a process is printed twice: %r" % pids)
    check(sorted(pids) == sorted([target.pid] + children), "dumped %r, expected %r" % (pids, [target.pid] + children))
    check(pids[0] == target.pid, "the root is not first: %r" % pids)
    for pid, chain in headers:
        expected = str(target.pid) if int(pid) == target.pid else "%d > %s" % (target.pid, pid)
        check(chain == expected, "process %s has chain %r, expected %r" % (pid, chain, expected))
        check(len(re.findall(r"^Process %s: " % pid, out, re.M)) == 1, "process %s: not one Process line" % pid)
    sections = re.split(r"^== process \d+ .*$", out, flags=re.M)[1:]
    for (pid, _), section in zip(headers, sections):
        function = "parent_work" if int(pid) == target.pid else "child_work"
        check(re.search(r"^\s+%s \(" % function, section, re.M), "process %s: no %s frame in\n%s" % (pid, function, section))
    sleeper = target.ready["sleep"]
    notes = [line for line in err.splitlines() if "note:" in line and str(sleeper) in line]
    check(len(notes) == 1, "expected one note about the sleep process, got %r" % err)
    check(rcj == 0, "dump -s --json exited with %d: %s" % (rcj, errj))
    doc = json.loads(outj)
    jpids = [p["pid"] for p in doc["processes"]]
    check(sorted(jpids) == sorted(pids), "JSON dumped %r, text %r" % (jpids, pids))


def test_formats(binary, python, tmp):
    """Speedscope: a profile per process-thread named with its pid; chrometrace: thread
    names with the pid; flamegraph: a `process PID: ...` frame per Python process."""
    target = Target(python, "tree", 8)
    outputs = {}
    try:
        pids = [target.pid] + target.ready["children"]
        for fmt in ("speedscope", "chrometrace", "flamegraph"):
            path = os.path.join(tmp, "profile." + fmt)
            rc, _, err = run(binary, ["record", "-s", "-f", fmt, "-o", path, "--pid", str(target.pid), "-d", "1.5"])
            check(rc == 0, "record -s -f %s exited with %d: %s" % (fmt, rc, err))
            with open(path, encoding="utf-8") as f:
                outputs[fmt] = f.read()
    finally:
        target.close()
    names = [p["name"] for p in json.loads(outputs["speedscope"])["profiles"]]
    log("speedscope profiles: %r" % names)
    for pid in pids:
        check(any(n.startswith("process %d Thread %d " % (pid, pid)) for n in names),
              "no speedscope profile for the main thread of process %d: %r" % (pid, names))
    trace = json.loads(outputs["chrometrace"])
    thread_names = [e["args"]["name"] for e in trace["traceEvents"] if e.get("name") == "thread_name"]
    for pid in pids:
        check(any(n.startswith("pid %d: " % pid) for n in thread_names),
              "no chrometrace thread named for process %d: %r" % (pid, thread_names))
    for pid in pids:
        check("process %d: " % pid in outputs["flamegraph"], "no process %d frame in the flame graph" % pid)
    check("process %d: " % target.ready["sleep"] not in outputs["flamegraph"], "the sleep process is in the flame graph")


TESTS = {
    "formats": test_formats,
    "pool-fork": lambda b, p, t: test_pool(b, p, t, "fork"),
    "pool-spawn": lambda b, p, t: test_pool(b, p, t, "spawn"),
    "delayed": test_delayed,
    "orphan": test_orphan,
    "sleep": test_sleep,
    "dump": test_dump,
}


if __name__ == "__main__":
    sys.exit(driver_main(TESTS, "pyspy-subprocesses-"))
