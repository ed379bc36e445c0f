# Integration test target for the "gilwait" thread status of `pyspy-cpp dump`
# (tests/integration/test_status.py). Valid under Python 2.7 and 3.6-3.14 (3.14t too).
# Three threads spin in pure Python, so at any moment one holds the GIL and the others
# wait for it; a "blocker" thread sleeps in read(2) and never wants the GIL (READY is
# written once /proc shows it there); the main thread may contend for the GIL. Once all spin it writes one JSON line
#   READY {"pid": ..., "spinner_native_ids": [...], "main_native_id": ...}
# and exits by itself after LIFETIME seconds (argv[1], default 60).
import json
import os
import platform
import sys
import threading
import time

LIFETIME = float(sys.argv[1]) if len(sys.argv) > 1 else 60.0
SPINNERS = 3
if sys.version_info[0] == 2:
    # 2.7's GIL is handed over every 100 bytecodes, and a waiter woken for each hand-over
    # is runnable (not asleep on the lock) much of the time; hold it longer between
    # hand-overs so that waiters sleep in sem_wait, as they do under 3.x's 5 ms interval.
    sys.setcheckinterval(100000)
native_ids = []
lock = threading.Lock()


def current_native_id():
    if hasattr(threading, "get_native_id"):
        return threading.get_native_id()
    import ctypes  # before 3.8: gettid through ctypes
    numbers = {"x86_64": 186, "amd64": 186, "aarch64": 178}
    return int(ctypes.CDLL(None, use_errno=True).syscall(numbers[platform.machine().lower()]))


def spin(deadline):
    with lock:
        native_ids.append(current_native_id())
    x = 0
    while time.time() < deadline:
        x += 1


deadline = time.time() + LIFETIME
for i in range(SPINNERS):
    thread = threading.Thread(target=spin, args=(deadline,), name="spinner-%d" % i)
    thread.daemon = True
    thread.start()
blocker_id = []


def block(fd):
    blocker_id.append(current_native_id())
    os.read(fd, 1)  # never returns: asleep in read(2), not wanting the GIL


read_end, write_end = os.pipe()
blocker = threading.Thread(target=block, args=(read_end,), name="blocker")
blocker.daemon = True
blocker.start()


def in_read(tid):  # the blocker is asleep in read(2) (syscall 0 on x86_64)
    try:
        with open("/proc/self/task/%d/syscall" % tid) as f:
            return f.read().split()[0] == "0"
    except (IOError, OSError, IndexError):
        return False


while True:
    with lock:
        if len(native_ids) == SPINNERS and blocker_id and in_read(blocker_id[0]):
            break
    time.sleep(0.01)
sys.stdout.write("READY " + json.dumps({"pid": os.getpid(), "spinner_native_ids": native_ids,
                                        "blocker_native_id": blocker_id[0],
                                        "main_native_id": current_native_id()}) + "\n")
sys.stdout.flush()
# Blocked on a lock with the GIL released and no periodic wake-up (a sleep loop would
# wake and wait for the GIL, rightly marked as waiting).
threading.Event().wait(max(0.0, deadline - time.time()))
