#!/usr/bin/env python3
"""Integration test of `pyspy-cpp dump --core`. Run by ctest (tests/integration/CMakeLists.txt):

  test_core.py --binary BUILD/pyspy-cpp CASE [PYTHON]

Cases (tests/targets/core_target.py is the target):
  crash   per interpreter: the target parks two named threads and crashes in C code,
          once through ctypes (ctypes.string_at(0)) and once in the test C extension
          (native_ext.crash(), tests/targets/native_ext.c), with core dumps enabled
          (RLIMIT_CORE; the core pattern is set to "core.%p" under a lock and restored).
          dump --core must say SIGSEGV at address 0 in the main thread, mark that thread,
          show its Python stack with the exact line of the call that crashed, the parked
          threads by name in their functions at their lines, the crashing frame's local
          with --locals, and with --native the C frame of the crash (libc's for ctypes,
          native_ext_crash_now for the extension) under the Python line that called it.
  gcore   per interpreter: gdb's gcore of the parked target (the target is left running,
          its threads asleep): dump --core of that core gives the same threads, names,
          stacks and states as the live dump taken just before (retried until two live
          dumps around the gcore agree, so the moment is the same).
  errors  no interpreter of the matrix: a missing file (exit 3), a file that is not a core
          (exit 10), a core of a process that is not Python (gcore of sleep: exit 5), a
          truncated core (exit 10), an --executable that does not match the core (exit 10),
          --core with --pid or -s (exit 2).
Exit code 0 = passed, 1 = failed, 77 = skipped (the interpreter, gdb or core dumps are not available).
"""

import contextlib
import fcntl
import glob
import json
import os
import resource
import shutil
import signal
import subprocess
import sys

from driver_common import Failure, ReadyTarget, Skip, build_extension, check, driver_main, log

HERE = os.path.dirname(os.path.abspath(__file__))
TARGET = os.path.normpath(os.path.join(HERE, "..", "targets", "core_target.py"))
CORE_PATTERN = "/proc/sys/kernel/core_pattern"
PATTERN_LOCK = "/tmp/pyspy-cpp-core-pattern.lock"
NO_SUCH_FILE_EXIT, NOT_PYTHON_EXIT, BAD_CORE_EXIT, USAGE_EXIT = 3, 5, 10, 2


def marked_lines():
    """{name: line} of the target's "# LINE name" comments."""
    lines = {}
    with open(TARGET) as source:
        for number, text in enumerate(source, 1):
            if "# LINE " in text:
                lines[text.split("# LINE ")[1].strip()] = number
    return lines


LINES = marked_lines()


def run(binary, args, timeout=120):
    return subprocess.run([binary] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=timeout)


def dump_core(binary, core, *flags):
    result = run(binary, ["dump", "--core", core, "--json"] + list(flags))
    check(result.returncode == 0, "dump --core %s exited %d: %s" % (" ".join(flags), result.returncode,
                                                                   result.stderr.strip()))
    return json.loads(result.stdout)


def enable_cores():
    """The child's preexec: no core size limit (as root), else as much as the hard limit
    allows (need_core_limit has made sure that is something)."""
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    except (ValueError, OSError):
        hard = resource.getrlimit(resource.RLIMIT_CORE)[1]
        resource.setrlimit(resource.RLIMIT_CORE, (hard, hard))


def need_core_limit():
    """Skips when no core can be written: a hard core size limit of 0 that this process
    may not raise (no CAP_SYS_RESOURCE)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
    if hard != 0:
        return
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (soft, resource.RLIM_INFINITY))
    except (ValueError, OSError):
        raise Skip("the hard core size limit is 0 and this process may not raise it")


@contextlib.contextmanager
def cores_in_cwd():
    """Core files land in the crashing process's working directory as core.PID while
    the block runs: the core pattern is set (as root) and restored after. Tests running
    at once take turns (a lock), so none restores the pattern while another crashes."""
    with open(PATTERN_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with open(CORE_PATTERN) as f:
            saved = f.read().strip()
        changed = False
        if saved != "core.%p":
            try:
                with open(CORE_PATTERN, "w") as f:
                    f.write("core.%p")
                changed = True
            except OSError as e:
                if saved.startswith("|") or "/" in saved:
                    raise Skip("cores go to %r and the core pattern cannot be changed: %s" % (saved, e))
        try:
            yield
        finally:
            if changed:
                with open(CORE_PATTERN, "w") as f:
                    f.write(saved)


def crash(python, args, workdir):
    """Runs the target to its crash; returns the core file it left in `workdir`."""
    need_core_limit()
    os.makedirs(workdir)
    with cores_in_cwd():
        proc = subprocess.Popen([python, TARGET] + args, cwd=workdir, preexec_fn=enable_cores,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = proc.communicate(timeout=60)
    check(proc.returncode == -signal.SIGSEGV, "the target %s exited %d, not by SIGSEGV: %s"
          % (args[0], proc.returncode, err.decode(errors="replace").strip()))
    cores = glob.glob(os.path.join(workdir, "core*"))
    check(len(cores) == 1, "expected one core file in %s, found %s" % (workdir, os.listdir(workdir)))
    return cores[0]


def thread_named(document, name):
    for thread in document["threads"]:
        if thread["name"] == name:
            return thread
    raise Failure("no thread named %r in %s" % (name, [t["name"] for t in document["threads"]]))


def python_frames(thread):
    return [f for f in thread["frames"] if f.get("kind", "python") == "python"]


def has_frame(thread, function, line):
    return any(f["function"] == function and f["line"] == line for f in python_frames(thread))


def check_parked(document, what):
    for name, function, line in (("core-waiter", "parked_waiter", LINES["waiter"]),
                                 ("core-sleeper", "parked_sleeper", LINES["sleeper"])):
        thread = thread_named(document, name)
        check(has_frame(thread, function, line), "%s: thread %s is not in %s at line %d: %s"
              % (what, name, function, line, python_frames(thread)))


def check_crash(binary, core, mode, function, marker, target_pid):
    what = "%s core" % mode
    document = dump_core(binary, core)
    info = document.get("core")
    check(info is not None, "%s: no \"core\" object in the JSON" % what)
    check(info["signal"] == signal.SIGSEGV and info["signal_name"] == "SIGSEGV",
          "%s: signal %s (%s), not SIGSEGV" % (what, info["signal"], info["signal_name"]))
    check(info["fault_address"] == 0, "%s: fault address %s, not 0" % (what, info["fault_address"]))
    check(info["thread"] == target_pid and info["thread_is_python"],
          "%s: crashed thread %s (python: %s), not the main thread %d" % (what, info["thread"],
                                                                           info["thread_is_python"], target_pid))
    check(document["pid"] == target_pid, "%s: pid %s, not %d" % (what, document["pid"], target_pid))
    crashed = [t for t in document["threads"] if t.get("crashed")]
    check(len(crashed) == 1 and crashed[0]["native_id"] == target_pid,
          "%s: the crashed thread is not marked once: %s" % (what, [(t["native_id"], t.get("crashed"))
                                                                     for t in document["threads"]]))
    main = crashed[0]
    check(main["name"] == "MainThread", "%s: crashed thread named %r" % (what, main["name"]))
    line = LINES[mode]
    names = [(f["function"], f["line"]) for f in main["frames"]]
    check((function, line) in names, "%s: no %s at line %d in the crashed stack: %s" % (what, function, line, names))
    index = names.index((function, line))
    check([n for n, _ in names[index + 1:index + 3]] == ["main", "<module>"],
          "%s: %s is not called from main < <module>: %s" % (what, function, names))
    check(info["module_problems"] == [], "%s: module problems: %s" % (what, info["module_problems"]))
    check_parked(document, what)

    # --locals: the crashing frame's argument.
    document = dump_core(binary, core, "--locals")
    frame = [f for f in python_frames(thread_named(document, "MainThread")) if f["function"] == function][0]
    locals_ = {entry["name"]: entry["repr"] for entry in frame.get("locals", [])}
    check(marker in locals_.get("marker", ""), "%s: --locals of %s: %s (error %s)" % (what, function, locals_,
                                                                                    frame.get("locals_error")))

    # Text: the crash line and the marked thread.
    text = run(binary, ["dump", "--core", core])
    check(text.returncode == 0, "%s: text dump exited %d: %s" % (what, text.returncode, text.stderr))
    wanted = "Killed by SIGSEGV (address not mapped) at address 0x0 in thread %d" % target_pid
    check(wanted in text.stdout, "%s: no %r in the text dump:\n%s" % (what, wanted, text.stdout))
    check("Thread %d (running+gil) [crashed: SIGSEGV]" % target_pid in text.stdout
          or "Thread %d (running) [crashed: SIGSEGV]" % target_pid in text.stdout,
          "%s: the crashed thread's header is not marked:\n%s" % (what, text.stdout))
    return main


def check_native(binary, core, mode, function, crash_frame):
    """--native: the C frame of the crash is innermost and sits under the Python line
    that called it."""
    what = "%s core --native" % mode
    document = dump_core(binary, core, "--native")
    main = thread_named(document, "MainThread")
    check(not main.get("merge_failed"), "%s: merge failed: %s" % (what, main.get("native_error")))
    frames = main["frames"]
    check(frames and frames[0]["kind"] == "native", "%s: the innermost frame is not native: %s"
          % (what, frames[:3]))
    check(crash_frame(frames[0]), "%s: the innermost frame is %s in %s" % (what, frames[0]["function"],
                                                                          frames[0]["module"]))
    kinds = [(f["kind"], f["function"]) for f in frames]
    line = LINES[mode]
    python_at = [i for i, f in enumerate(frames) if f["kind"] == "python" and f["function"] == function]
    check(python_at and frames[python_at[0]]["line"] == line, "%s: no %s at line %d: %s" % (what, function, line,
                                                                                           kinds))
    first_python = [f["kind"] for f in frames].index("python")
    check(first_python <= python_at[0], "%s: the crash frame is not under %s: %s" % (what, function, kinds))
    return kinds


def test_crash(binary, python, tmp):
    # Through ctypes: the read of address 0 is in libc (strlen, from PyBytes_FromString).
    core = crash(python, ["ctypes"], os.path.join(tmp, "ctypes"))
    pid = int(core.rsplit(".", 1)[1])
    check_crash(binary, core, "ctypes", "crash_in_ctypes", "ctypes-marker-4242", pid)
    kinds = check_native(binary, core, "ctypes", "crash_in_ctypes",
                         lambda frame: os.path.basename(frame["module"] or "").startswith("libc.so"))
    log("ctypes --native: %s" % kinds[:6])
    os.remove(core)

    # In the C extension: native_ext_crash_now reads NULL, under crash_in_extension.
    ext_dir = os.path.join(tmp, "ext-build")
    os.makedirs(ext_dir)
    build_extension(python, ext_dir)
    core = crash(python, ["ext", ext_dir], os.path.join(tmp, "ext"))
    pid = int(core.rsplit(".", 1)[1])
    check_crash(binary, core, "ext", "crash_in_extension", "ext-marker-4242", pid)
    kinds = check_native(binary, core, "ext", "crash_in_extension",
                         lambda frame: frame["function"] == "native_ext_crash_now")
    names = [name for _, name in kinds]
    check(names[:2] == ["native_ext_crash_now", "native_ext_crash"],
          "ext core --native: the extension's frames are not innermost: %s" % kinds)
    log("ext --native: %s" % kinds[:6])

    # A C thread of the extension crashes while the main thread waits for it in
    # crash_in_c_thread: without --native the crash line says so; with it, that thread
    # comes first with its native stack.
    ext_core = core
    core = crash(python, ["cthread", ext_dir], os.path.join(tmp, "cthread"))
    pid = int(core.rsplit(".", 1)[1])
    document = dump_core(binary, core)
    info = document["core"]
    check(info["signal"] == signal.SIGSEGV and info["thread"] != pid and not info["thread_is_python"]
          and not any(t.get("crashed") for t in document["threads"]),
          "cthread core: %s, crashed %s" % (info, [t["native_id"] for t in document["threads"] if t.get("crashed")]))
    check(has_frame(thread_named(document, "MainThread"), "crash_in_c_thread", LINES["cthread"]),
          "cthread core: main is not in crash_in_c_thread: %s" % thread_named(document, "MainThread")["frames"])
    check_parked(document, "cthread core")
    document = dump_core(binary, core, "--native")
    first = document["threads"][0]
    names = [f["function"] for f in first["frames"]]
    check(first.get("crashed") and first["native_id"] == info["thread"] and first["name"] is None
          and names[:2] == ["native_ext_crash_now", "native_ext_crash_thread"],
          "cthread core --native: the first thread is %s %s: %s" % (first["native_id"], first.get("crashed"), names))
    log("cthread --native: %s" % names[:4])

    # The extension moved after the crash: reported, and found again with --lib-search-path.
    moved = os.path.join(tmp, "moved")
    os.makedirs(moved)
    for name in os.listdir(ext_dir):
        shutil.move(os.path.join(ext_dir, name), moved)
    result = run(binary, ["dump", "--core", ext_core, "--native", "--json"])
    check(result.returncode == 0, "ext core, extension moved: exit %d: %s" % (result.returncode, result.stderr))
    check("native_ext" in result.stderr and "not found" in result.stderr,
          "ext core, extension moved: no warning about it: %r" % result.stderr)
    frames = thread_named(json.loads(result.stdout), "MainThread")["frames"]
    check(frames[0]["function"] != "native_ext_crash_now", "ext core, extension moved: still symbolized: %s"
          % frames[0])
    document = dump_core(binary, ext_core, "--native", "--lib-search-path", moved)
    frames = thread_named(document, "MainThread")["frames"]
    check(frames[0]["function"] == "native_ext_crash_now" and document["core"]["module_problems"] == [],
          "ext core, --lib-search-path: %s, problems %s" % (frames[0], document["core"]["module_problems"]))


def stacks_of(document):
    """What must agree between a live dump and a core's: per OS thread, its name, state,
    GIL, and Python frames."""
    out = {}
    for thread in document["threads"]:
        out[thread["native_id"]] = (thread["name"], thread["state"], thread["holds_gil"],
                                    [(f["function"], f["filename"], f["line"]) for f in python_frames(thread)])
    return out


def need_gcore():
    if shutil.which("gcore") is None:
        raise Skip("gdb's gcore is not installed (scripts/install-deps installs gdb)")


def gcore(pid, prefix):
    result = subprocess.run(["gcore", "-o", prefix, str(pid)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            universal_newlines=True, timeout=120)
    core = "%s.%d" % (prefix, pid)
    check(result.returncode == 0 and os.path.isfile(core), "gcore %d failed (%d): %s" % (pid, result.returncode,
                                                                                       result.stdout[-2000:]))
    return core


def test_gcore(binary, python, tmp):
    need_gcore()
    with ReadyTarget([python, TARGET, "park"]) as target:  # READY: its threads are parked
        pid = target.proc.pid
        for attempt in range(5):
            before = run(binary, ["dump", "--pid", str(pid), "--json"])
            check(before.returncode == 0, "live dump exited %d: %s" % (before.returncode, before.stderr))
            core = gcore(pid, os.path.join(tmp, "gcore%d" % attempt))
            after = run(binary, ["dump", "--pid", str(pid), "--json"])
            check(after.returncode == 0, "live dump exited %d: %s" % (after.returncode, after.stderr))
            live = stacks_of(json.loads(before.stdout))
            if live == stacks_of(json.loads(after.stdout)):
                break
            log("the target moved between the live dumps (attempt %d): again" % attempt)
            os.remove(core)
        else:
            raise Failure("the parked target never held still across gcore")
        document = dump_core(binary, core)
        check(document["core"]["signal"] == 0, "gcore: a signal is reported: %s" % document["core"])
        check(not any(t.get("crashed") for t in document["threads"]), "gcore: a thread is marked crashed")
        from_core = stacks_of(document)
        check(from_core == live, "gcore: the core's stacks differ from the live ones:\ncore %s\nlive %s"
              % (json.dumps(from_core, sort_keys=True), json.dumps(live, sort_keys=True)))
        check_parked(document, "gcore")
        main = thread_named(document, "MainThread")
        check(has_frame(main, "park_main", LINES["park"]), "gcore: main is not in park_main: %s" % main["frames"])
        text = run(binary, ["dump", "--core", core])
        check("No fatal signal recorded" in text.stdout, "gcore: text dump: %s" % text.stdout[:400])
        log("gcore: %d threads agree with the live dump" % len(live))


def expect_exit(binary, args, code, words, what):
    result = run(binary, args)
    check(result.returncode == code, "%s: exit %d, wanted %d: %s" % (what, result.returncode, code,
                                                                   result.stderr.strip()))
    message = result.stderr.strip()
    check(len(message.splitlines()) == 1, "%s: not a one-line error: %r" % (what, message))
    for word in words:
        check(word in message, "%s: %r does not say %r" % (what, message, word))
    log("%s: %s" % (what, message))


def test_errors(binary, python, tmp):
    missing = os.path.join(tmp, "no-such-core")
    expect_exit(binary, ["dump", "--core", missing], NO_SUCH_FILE_EXIT, ["no such core file"], "missing")
    text = os.path.join(tmp, "notes.txt")
    with open(text, "w") as f:
        f.write("not a core\n" * 100)
    expect_exit(binary, ["dump", "--core", text], BAD_CORE_EXIT, ["not an ELF file"], "text file")
    expect_exit(binary, ["dump", "--core", "/bin/ls"], BAD_CORE_EXIT, ["not a core file"], "executable")
    expect_exit(binary, ["dump", "--core", text, "--pid", "1"], USAGE_EXIT, ["--core"], "--core with --pid")
    expect_exit(binary, ["dump", "--core", text, "-s"], USAGE_EXIT, ["-s"], "--core with -s")

    need_gcore()
    sleeper = subprocess.Popen(["sleep", "120"])
    try:
        core = gcore(sleeper.pid, os.path.join(tmp, "sleep"))
    finally:
        sleeper.kill()
        sleeper.wait()
    expect_exit(binary, ["dump", "--core", core], NOT_PYTHON_EXIT, ["not a Python process"], "core of sleep")
    size = os.path.getsize(core)
    cut = os.path.join(tmp, "cut-core")
    with open(core, "rb") as src, open(cut, "wb") as dst:
        dst.write(src.read(size // 2))
    expect_exit(binary, ["dump", "--core", cut], BAD_CORE_EXIT, ["truncated"], "truncated core")

    # A Python core read with an executable that is not the one it ran; and cut in half
    # (the kernel writes the notes first: the threads are there, memory is not).
    system_python = "/usr/bin/python3"
    core = crash(system_python, ["ctypes"], os.path.join(tmp, "python"))
    expect_exit(binary, ["dump", "--core", core, "--executable", "/bin/ls"], BAD_CORE_EXIT,
                ["build id", "--executable"], "mismatched executable")
    with open(core, "rb") as src, open(cut, "wb") as dst:
        dst.write(src.read(os.path.getsize(core) // 2))
    expect_exit(binary, ["dump", "--core", cut], BAD_CORE_EXIT, ["truncated", "ulimit -c"], "truncated Python core")


if __name__ == "__main__":
    sys.exit(driver_main({"crash": test_crash, "gcore": test_gcore, "errors": test_errors}, "pyspy-core-",
                         needs_python={"crash", "gcore"}))
