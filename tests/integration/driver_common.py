"""What an integration driver needs around its checks: Failure/Skip, check(), log(),
is_free_threaded(), wait_sampling(), ReadyTarget (a target started with the READY
handshake), and driver_main(), which parses `--binary BINARY
CASE PYTHON`, skips (exit 77, printing "SKIP: why") when PYTHON is not installed, and
runs the case in a temporary directory. Every driver imports its primitives from here and ends with
driver_main()."""

import argparse
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

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


# Run by the interpreter under test (2.7 too): "1" for a free-threaded build.
FREE_THREADED_SCRIPT = ("import sys, sysconfig; "
                        "sys.stdout.write('1' if sysconfig.get_config_var('Py_GIL_DISABLED') else '0')")
_free_threaded = {}


def is_free_threaded(python):
    """Whether `python` is a free-threaded build (Py_GIL_DISABLED: 3.13t, 3.14t): it has no
    GIL, so no thread holds or waits for one, threads are active or idle by the OS alone,
    --gil is refused and top shows "free-threaded (no GIL)" instead of the GIL gauge."""
    if python not in _free_threaded:
        out = subprocess.check_output([python, "-c", FREE_THREADED_SCRIPT], stdin=subprocess.DEVNULL, timeout=60)
        _free_threaded[python] = out.strip() == b"1"
    return _free_threaded[python]


def check_gil_refused(returncode, stderr, what):
    """`what --gil` against a free-threaded target: refused (a non-zero exit) with one
    line that says there is no GIL."""
    err = stderr.strip()
    check(returncode != 0, "%s --gil on a free-threaded build exited 0" % what)
    check(err and len(err.split("\n")) == 1 and ("GIL" in err or "free-threaded" in err),
          "%s --gil: expected one line saying there is no GIL, got %r" % (what, stderr))


class ReadyTarget(object):
    """A target program started with the ready handshake: it prints "READY {json}" on
    stdout once it runs what is tested, and `ready` is that JSON (earlier lines are
    skipped). The constructor closes it and fails, with the end of its stderr, when no
    READY line comes within `ready_timeout` s. Its stdout is read only through line() and
    json_line(), unbuffered, so select() never misses a line held in a buffer. Killed and
    reaped by close() and on leaving a `with` block; after_ready() is the subclasses' hook
    for a condition to wait for past READY."""

    def __init__(self, argv, ready_timeout=60, preexec=None, stderr=subprocess.PIPE):
        self.argv = [str(a) for a in argv]
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=stderr, stdin=subprocess.DEVNULL,
                                     preexec_fn=preexec)
        self.pid = self.proc.pid
        self._pending = b""
        deadline = time.time() + ready_timeout
        try:
            self.ready = self.json_line("READY", ready_timeout)
            self.after_ready(deadline)
        except Failure as e:
            self.close()
            err = self.proc.stderr.read().decode(errors="replace")[-2000:].strip() if self.proc.stderr else ""
            raise Failure("%s: %s; stderr: %s" % (" ".join(self.argv[1:2]) or self.argv[0], e, err))

    def after_ready(self, deadline):
        pass

    def line(self, timeout):
        """The next line of its stdout (text, no newline) within `timeout` s, or None when
        none comes in time or stdout is closed."""
        deadline = time.time() + timeout
        while b"\n" not in self._pending:
            r, _, _ = select.select([self.proc.stdout], [], [], max(0.0, deadline - time.time()))
            if not r:
                return None
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                return None
            self._pending += chunk
        line, self._pending = self._pending.split(b"\n", 1)
        return line.decode(errors="replace")

    def json_line(self, prefix, timeout):
        """The JSON of the next stdout line that starts with `prefix` and a space (other
        lines are skipped) within `timeout` s."""
        deadline = time.time() + timeout
        while True:
            line = self.line(max(0.0, deadline - time.time()))
            if line is None:
                raise Failure("no %s line within %.0f s" % (prefix, timeout))
            if line.startswith(prefix + " "):
                return json.loads(line[len(prefix) + 1:])

    def alive(self):
        return self.proc.poll() is None

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def tracer_of(pid):
    """The TracerPid of a process (0: not traced)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("TracerPid:"):
                return int(line.split()[1])
    return 0


def wait_sampling(proc, target_pid, what, timeout=60):
    """Waits until pyspy-cpp (`proc`, a Popen) has taken its first snapshot of target_pid:
    from then on it holds the target's /proc/PID/task/TID/syscall files open (its
    ThreadStatReader), in both modes. A condition to wait for instead of a fixed sleep
    that guesses how long the attach takes. Fails if proc ends first or after timeout."""
    prefix = "/proc/%d/task/" % target_pid
    fd_dir = "/proc/%d/fd" % proc.pid
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise Failure("%s: pyspy-cpp ended (exit %d) before it sampled %d" % (what, proc.returncode, target_pid))
        try:
            for fd in os.listdir(fd_dir):
                try:
                    if os.readlink(os.path.join(fd_dir, fd)).startswith(prefix):
                        return
                except OSError:
                    pass
        except OSError:
            pass
        time.sleep(0.01)
    raise Failure("%s: pyspy-cpp did not sample %d within %d s" % (what, target_pid, timeout))


NATIVE_EXT_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "targets", "native_ext.c")

# Where the interpreter's headers are and what its extension modules are called.
BUILD_INFO = r"""
import sys
try:
    import sysconfig
    paths = sysconfig.get_paths()
    includes = [paths["include"], paths.get("platinclude", paths["include"])]
    suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
except ImportError:
    from distutils import sysconfig
    includes = [sysconfig.get_python_inc(), sysconfig.get_python_inc(plat_specific=True)]
    suffix = ".so"
sys.stdout.write("\n".join([suffix] + includes) + "\n")
"""


def build_extension(python, tmp):
    """Compiles tests/targets/native_ext.c against PYTHON's headers into TMP (where the
    target then imports it from); returns the module's path."""
    lines = subprocess.check_output([python, "-c", BUILD_INFO], universal_newlines=True).split("\n")
    suffix, includes = lines[0], [path for path in lines[1:] if path]
    check(any(os.path.isfile(os.path.join(path, "Python.h")) for path in includes),
          "no Python.h for %s in %s (Debian's interpreter needs python3.X-dev: scripts/install-deps)"
          % (python, includes))
    out = os.path.join(tmp, "native_ext" + suffix)
    command = ["gcc", "-shared", "-fPIC", "-O0", "-g", "-fno-omit-frame-pointer", "-o", out, NATIVE_EXT_SOURCE]
    for path in includes:
        command += ["-I", path]
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    check(result.returncode == 0, "compiling the extension failed: %s" % result.stdout)
    return out



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
