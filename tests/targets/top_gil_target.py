# GIL target for `pyspy-cpp top` (tests/integration/test_top.py) and `record`
# (test_record.py, case threads). Valid under Python 2.7 and 3.6-3.14 (3.14t too).
# argv[1] is the mode:
#   cpu    THREADS threads (argv[3], default 2) spin in pure Python ("spin_a", "spin_b",
#          ...): with a GIL it is always held by one of them while the others wait for
#          it; on a free-threaded build they all run at once; the main thread sleeps
#   sleep  THREADS threads sleep ("sleep_a", "sleep_b", ...) and so does the main
#          thread: the GIL is almost never held
# When the threads run it writes `READY {"pid": ..., "python": ..., "mode": ...,
# "threads": THREADS}` and lives until killed or LIFETIME seconds (argv[2], default 120)
# have passed.
import json
import os
import sys
import threading
import time

MODE = sys.argv[1] if len(sys.argv) > 1 else "cpu"
LIFETIME = float(sys.argv[2]) if len(sys.argv) > 2 else 120.0
THREADS = int(sys.argv[3]) if len(sys.argv) > 3 else 2
started = []
lock = threading.Lock()


def spin():
    with lock:
        started.append(1)
    x = 0
    while True:
        x += 1


def snooze():
    with lock:
        started.append(1)
    time.sleep(LIFETIME + 60)


def main():
    if MODE not in ("cpu", "sleep"):
        sys.stderr.write("top_gil_target: mode is cpu or sleep\n")
        os._exit(2)
    body = spin if MODE == "cpu" else snooze
    for name in "abcdefghijklmnopqrstuvwxyz"[:THREADS]:
        t = threading.Thread(target=body, name=("spin_" if MODE == "cpu" else "sleep_") + name)
        t.daemon = True
        t.start()
    deadline = time.time() + 30
    while len(started) < THREADS and time.time() < deadline:
        time.sleep(0.01)
    if len(started) < THREADS:
        sys.stderr.write("top_gil_target: threads did not start\n")
        os._exit(1)
    time.sleep(0.2)
    sys.stdout.write("READY " + json.dumps({"pid": os.getpid(), "python": sys.version.split()[0], "mode": MODE,
                                            "threads": THREADS}) + "\n")
    sys.stdout.flush()
    time.sleep(LIFETIME)
    os._exit(0)


if __name__ == "__main__":
    main()
