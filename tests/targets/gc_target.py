# Integration test target for the "gc" thread status of `pyspy-cpp dump`
# (tests/integration/test_status.py). Valid under Python 2.7 and 3.6-3.14 (3.14t too).
# A thread "collector" keeps ~400,000 tracked containers alive and runs gc.collect()
# in a loop, so that it is inside a collection (holding the GIL) most of the time;
# the main thread sleeps. After the first collection it writes one JSON line
#   READY {"pid": ..., "collector_native_id": ..., "main_native_id": ...}
# and exits by itself after LIFETIME seconds (argv[1], default 60).
import gc
import json
import os
import platform
import sys
import threading
import time

LIFETIME = float(sys.argv[1]) if len(sys.argv) > 1 else 60.0
started = threading.Event()
reported = threading.Event()
native_ids = {}


def current_native_id():
    if hasattr(threading, "get_native_id"):
        return threading.get_native_id()
    import ctypes  # before 3.8: gettid through ctypes
    numbers = {"x86_64": 186, "amd64": 186, "aarch64": 178}
    return int(ctypes.CDLL(None, use_errno=True).syscall(numbers[platform.machine().lower()]))


def collect_loop(deadline):
    gc.collect()
    # Hand the GIL to the main thread until it has written READY: 2.7's GIL is unfair, a
    # waiter can starve for tens of seconds behind a loop of long collections.
    started.set()
    reported.wait()
    while time.time() < deadline:
        gc.collect()


def collector(deadline):
    native_ids["collector"] = current_native_id()
    keep = [[i] for i in range(400000)]  # tracked containers: each collection traverses them
    collect_loop(deadline)
    return keep


deadline = time.time() + LIFETIME
thread = threading.Thread(target=collector, args=(deadline,), name="collector")
thread.daemon = True
thread.start()
started.wait()
sys.stdout.write("READY " + json.dumps({"pid": os.getpid(), "collector_native_id": native_ids["collector"],
                                        "main_native_id": current_native_id()}) + "\n")
sys.stdout.flush()
reported.set()
while time.time() < deadline:
    time.sleep(0.2)
