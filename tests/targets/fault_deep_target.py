# Fault-injection target (tests/integration/test_faults.py, case "deep").
# Valid under Python 2.7 and 3.6-3.14 (3.14t too).
#
#   fault_deep_target.py DEPTH [LIFETIME] [busy]
#
# The main thread recurses DEPTH frames deep in deep_recurse (the recursion limit is
# raised to allow it) and then parks in deep_bottom: asleep, or spinning with "busy".
# Prints "READY {json}" from the bottom, then stays there until LIFETIME seconds pass.
import json
import os
import sys
import threading
import time

DEPTH = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
LIFETIME = float(sys.argv[2]) if len(sys.argv) > 2 else 120.0
BUSY = len(sys.argv) > 3 and sys.argv[3] == "busy"


def deep_bottom():
    sys.stdout.write("READY " + json.dumps({"pid": os.getpid(), "depth": DEPTH}) + "\n")
    sys.stdout.flush()
    end = time.time() + LIFETIME
    if BUSY:
        x = 0
        while time.time() < end:
            x += 1
    else:
        time.sleep(LIFETIME)
    os._exit(0)


def deep_recurse(n):
    if n <= 1:
        deep_bottom()
    deep_recurse(n - 1)


def main():
    sys.setrecursionlimit(DEPTH + 1000)
    try:
        threading.stack_size(256 * 1024 * 1024)  # before 3.11 each Python call also takes C stack
    except (ValueError, AttributeError):
        pass
    # Recurse on a thread with a big C stack; the main thread waits for it.
    t = threading.Thread(target=deep_recurse, args=(DEPTH - 1,), name="deep")
    t.daemon = True
    t.start()
    t.join(LIFETIME + 60)
    os._exit(0)


if __name__ == "__main__":
    main()
