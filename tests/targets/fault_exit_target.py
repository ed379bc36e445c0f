# Fault-injection target (tests/integration/test_faults.py, case "exits").
# Valid under Python 2.7 and 3.6-3.14 (3.14t too).
#
#   fault_exit_target.py DELAY
#
# Starts a busy thread, prints "READY {json}", and exits DELAY seconds later (0: right
# away) with os._exit, so a profiler that attaches around then sees it go mid-operation.
import json
import os
import sys
import threading
import time

DELAY = float(sys.argv[1]) if len(sys.argv) > 1 else 0.0


def exit_spin():
    x = 0
    while True:
        x += 1


def main():
    t = threading.Thread(target=exit_spin, name="spin")
    t.daemon = True
    t.start()
    sys.stdout.write("READY " + json.dumps({"pid": os.getpid()}) + "\n")
    sys.stdout.flush()
    if DELAY > 0:
        time.sleep(DELAY)
    os._exit(0)


if __name__ == "__main__":
    main()
