# Integration test target for `pyspy-cpp top` (tests/integration/test_top.py).
# Valid under Python 2.7 and 3.6-3.14 (3.14t too). Two threads:
#   MainThread: <module> -> main -> run_hot -> hot_function  (active, a pure-Python loop;
#               run_hot spends a little time itself, so its %Total beats hot_function's)
#   "idler":    ... -> idle_outer -> idle_inner               (idle, in time.sleep)
# When both are in place it writes one line to stdout,
#   READY {"pid": ..., "python": "3.11.7"}
# and runs until killed or LIFETIME seconds (argv[1], default 120) have passed.
import json
import os
import sys
import threading
import time

LIFETIME = float(sys.argv[1]) if len(sys.argv) > 1 else 120.0
idler_entered = threading.Event()


def idle_inner():
    idler_entered.set(); time.sleep(LIFETIME + 60)  # noqa: E702


def idle_outer():
    idle_inner()


def hot_function(n):
    x = 0
    for i in range(n):
        x += i * i
    return x


def run_hot(deadline):
    announced = False
    while time.time() < deadline:
        hot_function(20000)
        y = 0
        for i in range(500):  # a little time in run_hot itself
            y += i
        if not announced:
            announced = True
            sys.stdout.write("READY " + json.dumps({"pid": os.getpid(), "python": sys.version.split()[0]}) + "\n")
            sys.stdout.flush()


def main():
    idler = threading.Thread(target=idle_outer, name="idler")
    idler.daemon = True
    idler.start()
    if not idler_entered.wait(30):
        sys.stderr.write("top_target: idler did not start\n")
        os._exit(1)
    run_hot(time.time() + LIFETIME)
    os._exit(0)


if __name__ == "__main__":
    main()
