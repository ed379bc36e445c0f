# Integration test target for `pyspy-cpp dump` (tests/integration/test_dump.py).
# Valid under Python 2.7 and 3.6-3.14 (3.14t too). Three threads, each parked in a known place:
#   MainThread: <module> -> main -> wait_forever            (idle, in time.sleep)
#   "busy":     ... -> busy_outer -> busy_middle -> busy_inner  (active, a pure-Python loop)
#   "sleeper":  ... -> sleeper_outer -> sleeper_inner         (idle, in time.sleep)
# Once every thread is in its innermost function it writes one JSON line to stdout,
#   READY {"pid": ..., "threads": {"MainThread": {"ident": ..., "native_id": ...,
#          "frames": [{"function": ..., "filename": ..., "line": ...}, ...]}, ...}}
# with each thread's frames innermost first, as the interpreter itself reports them
# (sys._current_frames(); the qualified name on 3.11+), then waits. It exits by itself
# after LIFETIME seconds (argv[1], default 120) so that it never lingers.
# Keep the blocking calls on one line each: their line is the one a profiler must show.
import json
import os
import platform
import sys
import threading
import time

LIFETIME = float(sys.argv[1]) if len(sys.argv) > 1 else 120.0

busy_entered = threading.Event()
sleeper_entered = threading.Event()
native_ids = {}


def current_native_id():
    if hasattr(threading, "get_native_id"):
        return threading.get_native_id()
    try:  # before 3.8: gettid through ctypes
        import ctypes
        numbers = {"x86_64": 186, "amd64": 186, "aarch64": 178, "i386": 224, "i686": 224}
        number = numbers.get(platform.machine().lower())
        if number is None:
            return None
        return int(ctypes.CDLL(None, use_errno=True).syscall(number))
    except Exception:
        return None


def busy_inner():
    x = 0
    busy_entered.set()
    while True: x += 1  # noqa: E701  (one line: the busy thread's line never changes)


def busy_middle():
    busy_inner()


def busy_outer():
    native_ids["busy"] = current_native_id()
    busy_middle()


def sleeper_inner():
    sleeper_entered.set(); time.sleep(LIFETIME + 60)  # noqa: E702


def sleeper_outer():
    native_ids["sleeper"] = current_native_id()
    sleeper_inner()


def function_name(code):
    return getattr(code, "co_qualname", code.co_name)


def stack_of(frame):
    frames = []
    while frame is not None:
        frames.append({"function": function_name(frame.f_code), "filename": frame.f_code.co_filename,
                       "line": frame.f_lineno})
        frame = frame.f_back
    return frames


def innermost(ident):
    frame = sys._current_frames().get(ident)
    if frame is None:
        return None, None
    return frame.f_code.co_name, frame.f_lineno


def announce(threads):
    """Waits until the busy and sleeper threads sit in their innermost line, then
    prints the READY line. Called from wait_forever, on the line that then sleeps."""
    busy, sleeper = threads["busy"], threads["sleeper"]
    if not (busy_entered.wait(30) and sleeper_entered.wait(30)):
        sys.stderr.write("threads_target: threads did not start\n")
        os._exit(1)
    # The busy thread moves from the set() line to its loop line; wait until its line
    # is stable over several looks.
    deadline = time.time() + 30
    seen = []
    while time.time() < deadline:
        time.sleep(0.05)
        seen.append(innermost(busy.ident))
        if len(seen) >= 4 and seen[-1][0] == "busy_inner" and len(set(seen[-4:])) == 1:
            break
    else:
        sys.stderr.write("threads_target: busy thread never settled: %r\n" % (seen[-4:],))
        os._exit(1)
    while innermost(sleeper.ident)[0] != "sleeper_inner":
        time.sleep(0.01)
    time.sleep(0.1)  # let the sleeper get from set() into the sleep itself

    frames = sys._current_frames()
    me = threading.current_thread()
    report = {"pid": os.getpid(), "python": sys.version.split()[0], "executable": sys.executable,
              "script": os.path.abspath(__file__), "threads": {}}
    for name, thread, native_id in (("MainThread", me, os.getpid()),
                                    ("busy", busy, native_ids.get("busy")),
                                    ("sleeper", sleeper, native_ids.get("sleeper"))):
        stack = stack_of(frames[thread.ident])
        if thread is me:
            stack = stack[1:]  # drop announce itself: wait_forever is innermost
        report["threads"][name] = {"ident": thread.ident, "native_id": native_id, "name": thread.name,
                                   "frames": stack}
    sys.stdout.write("READY " + json.dumps(report, sort_keys=True) + "\n")
    sys.stdout.flush()


def wait_forever(threads):
    announce(threads); time.sleep(LIFETIME)  # noqa: E702


def main():
    threads = {
        "busy": threading.Thread(target=busy_outer, name="busy"),
        "sleeper": threading.Thread(target=sleeper_outer, name="sleeper"),
    }
    for t in threads.values():
        t.daemon = True
        t.start()
    wait_forever(threads)
    os._exit(0)  # daemon threads never finish; do not wait for them


if __name__ == "__main__":
    main()
