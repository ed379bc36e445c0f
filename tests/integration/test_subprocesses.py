#!/usr/bin/env python3
"""Integration tests of `-s/--subprocesses` (record and dump) against process trees.

Run by ctest (tests/integration/CMakeLists.txt) with the system python3:

  test_subprocesses.py --binary BUILD/pyspy-cpp CASE PYTHON

CASE: pool-fork, pool-spawn (record -s of a multiprocessing.Pool(3): the parent and
three worker pids, each with pool_task), delayed (a child started after profiling
began), orphan (a child whose parent exits, and the grandchild it starts afterwards),
sleep (a non-Python child: one note, no failure, in record -s and top -s), dump (dump -s: each process once),
formats (process-thread names in speedscope and chrometrace, process frames in the
flame graph), top (`top -s` without a terminal: the per-process table of a Pool(3) lists
the parent and the three workers once each, the workers busy; pool_task in the function
rows), top-delayed (how soon a child started later shows up in `top -s`), top-tty (the
`P` key under tmux: the per-process view and back; `q` restores the terminal), shared and
top-shared (pool-fork and top with PYSPY_MAX_SAMPLER_THREADS=1: the three workers are
sampled by one shared sampler thread, each at about the parent's rate).
The target is tests/targets/process_tree_target.py.

Exit code 0 = passed, 1 = failed, 77 = skipped (interpreter not installed, or no spawn
start method on 2.7).
"""

import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time

from driver_common import ReadyTarget, Skip, check, driver_main, log
import test_top as top_driver

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
TARGET = os.path.join(ROOT, "tests", "targets", "process_tree_target.py")
COLLAPSED_LINE = re.compile(r"^(.+) (\d+)$")
PROCESS_FRAME = re.compile(r"^process (\d+): (.*)$")


def is_ours(pid):
    """Whether pid still runs the target or its sleep (not a reuse of the pid)."""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return False
    return argv[0].endswith(b"sleep") or any(a.endswith(b"process_tree_target.py") for a in argv) or \
        any(b"multiprocessing" in a for a in argv)


class Target(ReadyTarget):
    def __init__(self, python, *args):
        ReadyTarget.__init__(self, [python, TARGET] + list(args), stderr=None)

    def close(self):
        """Kills the target and the descendants it reported, so none spins on."""
        ReadyTarget.close(self)
        ready = getattr(self, "ready", {})
        for key in ("children", "workers", "sleep", "child"):
            for pid in ready.get(key, []) if isinstance(ready.get(key), list) else [ready.get(key)]:
                if pid and is_ours(pid):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass


def run(binary, args, timeout=60, env=None):
    """env: variables added to this process's environment."""
    p = subprocess.run([binary] + args, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL,
                       env=dict(os.environ, **env) if env else None)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def record_raw(binary, tmp, args, timeout=60, env=None):
    """record -s -f raw: {pid: [stacks (lists of frames, the process frame removed)]}, stderr."""
    out = os.path.join(tmp, "profile.txt")
    rc, _, err = run(binary, ["record", "-s", "-f", "raw", "-o", out] + args, timeout, env)
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


# One sampler thread per process for the root only: the three workers of a Pool(3) go to
# one shared sampler thread (the bound / 16, at least one).
SHARED_ENV = {"PYSPY_MAX_SAMPLER_THREADS": "1"}


def test_pool(binary, python, tmp, method, env=None):
    if method == "spawn" and python_version(python) < (3, 4):
        raise Skip("Python 2.7 has no spawn start method")
    # The pool runs 3 s after READY, past record's 2 s (~200 samples of each worker).
    target = Target(python, "pool", method, 3)
    try:
        workers = target.ready["workers"]
        check(len(set(workers)) == 3, "the target reports workers %r" % workers)
        stacks, err = record_raw(binary, tmp, ["--pid", str(target.pid), "-d", "2"], env=env)
        done = target.json_line("DONE", 30)
    finally:
        target.close()
    log("pids in the profile: %s" % {pid: sum(c for _, c in s) for pid, s in stacks.items()})
    check(samples_in(stacks, target.pid, "parent_work") > 0, "no parent_work sample from the parent %d" % target.pid)
    for pid in workers:
        check(pid in done["ran"], "worker %d ran no task (ran: %r)" % (pid, done["ran"]))
        n = samples_in(stacks, pid, "pool_task")
        check(n > 0, "no pool_task sample from worker %d; pids in the profile: %s" % (pid, sorted(stacks)))
    check("error:" not in err, "record -s printed an error: %s" % err)
    # Blocking mode: the pause summary covers every process.
    check(re.search(r"the targets were paused \d+ us per sample \(mean over [4-9] processes\), at most [0-9.]+% of "
                    r"the time \(process \d+\)", err), "no pause summary over the processes: %s" % err)


def test_delayed(binary, python, tmp):
    target = Target(python, "delayed", 1.5, 2)
    try:
        stacks, err = record_raw(binary, tmp, ["--pid", str(target.pid)])
        child = target.json_line("DONE", 10)["child"]
    finally:
        target.close()
    check(samples_in(stacks, target.pid, "parent_work") > 0, "no parent_work sample from the parent")
    n = samples_in(stacks, child, "child_work")
    log("child %d started after 1.5 s: %d child_work samples" % (child, n))
    check(n > 0, "no child_work sample from the delayed child %d; pids: %s" % (child, sorted(stacks)))
    check("exited" in err, "record did not end with the tree: %s" % err)


def test_orphan(binary, python, tmp):
    facts_path = os.path.join(tmp, "facts.json")
    target = Target(python, "orphan", 2, facts_path)
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
    target = Target(python, "sleep", 8)
    try:
        stacks, err = record_raw(binary, tmp, ["--pid", str(target.pid), "-d", "2.5"])
        # top -s likewise: one note, and the sleep process is not in the per-process table.
        # Two refreshes: the note comes once the child's attach gives up, after 1 s.
        rc, top_out, top_err = run(binary, ["top", "-s", "--iterations", "2", "--delay", "1", "--pid", str(target.pid)])
        target_status = target.proc.poll()  # None: still running, as it should be
    finally:
        target.close()
    check(rc == 0, "top -s exited with %d (the target's status: %r): %s" % (rc, target_status, top_err))
    top_notes = [line for line in top_err.splitlines() if "note:" in line and str(target.ready["sleep"]) in line]
    check(len(top_notes) == 1, "top -s: expected one note about the sleep process, got %r" % top_err)
    top_pids = [r["pid"] for r in process_rows(text_snapshots(top_out)[-1])]
    check(top_pids == [target.pid], "top -s: per-process rows %r, expected only the parent %d" % (top_pids, target.pid))
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
            rc, _, err = run(binary, ["record", "-s", "-f", fmt, "-o", path, "--pid", str(target.pid), "-d", "1"])
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


# --- top -s ------------------------------------------------------------------------------

# A row of the per-process table: %CPU (or "-"), %GIL, samples, pid, command.
PROCESS_ROW = re.compile(r"^\s*([0-9.]+%|-)\s+([0-9.]+)%\s+(\d+)\s+(\d+)  (.*)$")
PROCESS_HEAD = re.compile(r"^\s*%CPU\s+%GIL\s+Samples\s+PID\s+Command")


def process_rows(lines):
    """The rows of the per-process table in `lines` (a screen or a text snapshot)."""
    rows, inside = [], False
    for line in lines:
        if PROCESS_HEAD.match(line):
            inside = True
            continue
        m = PROCESS_ROW.match(line) if inside else None
        if m:
            cpu = None if m.group(1) == "-" else float(m.group(1)[:-1])
            rows.append({"cpu": cpu, "gil": float(m.group(2)), "samples": int(m.group(3)), "pid": int(m.group(4)),
                         "command": m.group(5)})
        elif inside and line.strip() == "":
            inside = False
    return rows


def text_snapshots(out):
    """`top` text output -> one list of lines per snapshot."""
    return [chunk.split("\n") for chunk in re.split(r"\n(?=Process \d+: )", out) if chunk.startswith("Process ")]


def check_pool_processes(rows, parent, workers, what, min_cpu):
    pids = [r["pid"] for r in rows]
    check(len(pids) == len(set(pids)), "%s: a process is listed twice: %r" % (what, pids))
    check(set(pids) == set([parent] + workers), "%s: processes %r, expected the parent %d and workers %r"
          % (what, sorted(pids), parent, workers))
    cpus = [r["cpu"] for r in rows]
    known = [c for c in cpus if c is not None]
    check(known == sorted(known, reverse=True), "%s: rows not sorted by %%CPU: %r" % (what, cpus))
    for r in rows:
        if r["pid"] in workers:
            check(r["cpu"] is not None and r["cpu"] >= min_cpu, "%s: worker %d at %r%% CPU, expected >= %.0f%%"
                  % (what, r["pid"], r["cpu"], min_cpu))
            check(r["samples"] > 0, "%s: worker %d has no samples" % (what, r["pid"]))


# Four CPU-bound processes (three workers and the parent waiting in parent_work) share
# this machine's cores with whatever else runs: a worker gets well under one core (13-18%
# each measured on 2 cores next to a compiler and another test run), while an idle
# process shows 0-1%.
MIN_WORKER_CPU = 5.0


def test_top(binary, python, tmp, env=None):
    target = Target(python, "pool", "fork", 10)
    try:
        workers = target.ready["workers"]
        rc, out, err = run(binary, ["top", "-s", "--iterations", "3", "--delay", "1", "--pid", str(target.pid)],
                           env=env)
    finally:
        target.close()
    check(rc == 0, "top -s exited with %d: %s" % (rc, err))
    check("\x1b" not in out, "escape sequences in the non-terminal output")
    snaps = text_snapshots(out)
    check(len(snaps) == 3, "expected 3 snapshots, got %d:\n%s" % (len(snaps), out))
    last = snaps[-1]
    text = "\n".join(last)
    log(text)
    check(re.search(r"\| 4 processes \|", text), "the header does not count 4 processes:\n%s" % text)
    check("Processes:" in last, "no per-process section:\n%s" % text)
    check_pool_processes(process_rows(last), target.pid, workers, "top -s", MIN_WORKER_CPU)
    # The function rows merge the workers: pool_task is one row (per line), run by several.
    tasks = [line for line in last if re.search(r"\bpool_task \(", line)]
    check(tasks, "no pool_task row:\n%s" % text)
    check(any(re.search(r"\b[23] procs\b", line) for line in tasks), "no pool_task row ran in several processes:\n%s"
          % text)
    if env:
        # The workers share one sampler thread (earliest due first): each gets about as
        # many samples as the others, and none is starved next to the parent, which has a
        # thread of its own. (On a loaded machine the shared thread gets one thread's share
        # of the CPU for three processes: 52-54 samples a second each next to the parent's
        # 86 were measured at load 8 on 2 cores, so the bound is loose.)
        samples = dict((r["pid"], r["samples"]) for r in process_rows(last))
        log("samples in the last 1 s window: %r" % samples)
        shared = [samples[pid] for pid in workers]
        check(min(shared) * 2 >= max(shared), "the shared thread's processes were sampled unevenly: %r" % samples)
        check(min(shared) * 4 >= samples[target.pid], "a worker (shared thread) has far fewer samples than the "
              "parent: %r" % samples)


def test_top_delayed(binary, python, tmp):
    """A child started 1.5 s after top -s: the first snapshot that shows it sampled."""
    target = Target(python, "delayed", 1.5, 4)
    proc = subprocess.Popen([binary, "top", "-s", "--delay", "0.1", "--pid", str(target.pid)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        child = target.json_line("DONE", 10)
        pid, started = child["child"], child["started"]
        # close() kills it too: left running, it would hold ctest's output pipe open for
        # the rest of its 4 s.
        target.ready["child"] = pid
        deadline, buf, seen = time.time() + 15, b"", None
        while seen is None and time.time() < deadline:
            r, _, _ = select.select([proc.stdout], [], [], 0.5)
            if not r:
                continue
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break
            now = time.time()
            buf += chunk
            for snap in text_snapshots(buf.decode(errors="replace")):
                if any(r["pid"] == pid and r["samples"] > 0 for r in process_rows(snap)):
                    seen = now
                    break
    finally:
        proc.kill()
        proc.wait()
        target.close()
    check(seen is not None, "child %d never appeared sampled in top -s:\n%s" % (pid, buf.decode(errors="replace")))
    latency = seen - started
    log("child %d first shown sampled %.0f ms after its Popen (refresh every 100 ms)" % (pid, 1000 * latency))
    # Its interpreter's start-up, the attach retries, one scan and one refresh; a loaded
    # machine can take seconds over the interpreter alone.
    check(latency < 5.0, "the child took %.1f s to appear" % latency)


def test_top_tty(binary, python, tmp):
    if shutil.which("tmux") is None:
        raise Skip("tmux is not installed")
    target = Target(python, "pool", "fork", 30)
    try:
        workers = target.ready["workers"]
        tmux = top_driver.Tmux(top_driver.shell_command(binary, ["-s", "--delay", "0.5", "--pid", str(target.pid)]))
        try:
            tmux.wait_for(lambda l: top_driver.table(l) or any("pool_task (" in x for x in l), "the function table")
            tmux.keys("P")

            def per_process(lines):
                rows = process_rows(lines)
                busy = [r for r in rows if r["pid"] in workers and (r["cpu"] or 0) >= MIN_WORKER_CPU]
                return rows if len(rows) == 4 and len(busy) == 3 and any("per process" in x for x in lines) else None
            rows = tmux.wait_for(per_process, "the per-process view with 4 processes, the workers busy")
            check_pool_processes(rows, target.pid, workers, "top -s, P", MIN_WORKER_CPU)
            log("P: %r" % [(r["pid"], r["cpu"], r["gil"], r["samples"]) for r in rows])
            tmux.keys("P")
            tmux.wait_for(lambda l: not process_rows(l) and any("pool_task (" in x for x in l),
                          "the function table back after P")
            tmux.keys("q")
            top_driver.wait_exited(tmux, "q after P")
        finally:
            tmux.close()
    finally:
        target.close()
        for path in top_driver.SCRIPTS:
            os.unlink(path)
        del top_driver.SCRIPTS[:]


TESTS = {
    "formats": test_formats,
    "pool-fork": lambda b, p, t: test_pool(b, p, t, "fork"),
    "pool-spawn": lambda b, p, t: test_pool(b, p, t, "spawn"),
    "delayed": test_delayed,
    "orphan": test_orphan,
    "sleep": test_sleep,
    "dump": test_dump,
    "top": test_top,
    "top-delayed": test_top_delayed,
    "top-tty": test_top_tty,
    "shared": lambda b, p, t: test_pool(b, p, t, "fork", SHARED_ENV),
    "top-shared": lambda b, p, t: test_top(b, p, t, SHARED_ENV),
}


if __name__ == "__main__":
    sys.exit(driver_main(TESTS, "pyspy-subprocesses-"))
