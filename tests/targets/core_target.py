"""Target of the core-dump tests (tests/integration/test_core.py): two threads parked
in known functions, then, by the mode argument, a crash in C code in the main thread
(the kernel writes a core) or a wait to be read live and by gcore.

  core_target.py ctypes     crash_in_ctypes: ctypes.string_at(0) reads address 0
  core_target.py ext DIR    crash_in_extension: native_ext.crash() (built into DIR) reads NULL
  core_target.py cthread DIR  crash_in_c_thread: a thread native_ext starts (no Python in it) reads NULL
  core_target.py park       prints "READY {}" and sleeps in park_main until killed

Lines the test looks for are marked with "# LINE <name>" comments.
"""
from __future__ import print_function

import os
import sys
import threading
import time


def parked_waiter(event):
    event.wait()  # LINE waiter


def parked_sleeper():
    while True:
        time.sleep(60)  # LINE sleeper


def crash_in_ctypes(marker):
    import ctypes
    crash_note = "about to read address 0 (%s)" % marker
    return ctypes.string_at(0), crash_note  # LINE ctypes


def crash_in_extension(marker):
    import native_ext
    crash_note = "about to crash in C (%s)" % marker
    return native_ext.crash(), crash_note  # LINE ext


def crash_in_c_thread(marker):
    import native_ext
    crash_note = "a C thread is about to crash (%s)" % marker
    return native_ext.crash_in_thread(), crash_note  # LINE cthread


def park_main():
    print("READY {}")
    sys.stdout.flush()
    while True:
        time.sleep(60)  # LINE park


def wait_parked(threads, names):
    """Until every thread's innermost frame is its parking function: then each is where
    the test expects it at the moment of the crash."""
    deadline = time.time() + 30
    while time.time() < deadline:
        frames = sys._current_frames()
        innermost = set()
        for thread in threads:
            frame = frames.get(thread.ident)
            # Event.wait and time.sleep: the parking function or what it is blocked in.
            while frame is not None and frame.f_code.co_name not in names:
                frame = frame.f_back
            if frame is not None:
                innermost.add(frame.f_code.co_name)
        if innermost == set(names):
            return
        time.sleep(0.01)
    raise SystemExit("threads did not park")


def main():
    mode = sys.argv[1]
    event = threading.Event()
    waiter = threading.Thread(target=parked_waiter, args=(event,), name="core-waiter")
    sleeper = threading.Thread(target=parked_sleeper, name="core-sleeper")
    for thread in (waiter, sleeper):
        thread.daemon = True
        thread.start()
    wait_parked([waiter, sleeper], ["parked_waiter", "parked_sleeper"])
    if mode == "ctypes":
        crash_in_ctypes("ctypes-marker-4242")
    elif mode == "ext":
        sys.path.insert(0, sys.argv[2])
        crash_in_extension("ext-marker-4242")
    elif mode == "cthread":
        sys.path.insert(0, sys.argv[2])
        crash_in_c_thread("cthread-marker-4242")
    else:
        park_main()


if __name__ == "__main__":
    main()
