# Target for `record --period` (tests/integration/test_continuous.py): one thread that
# spins in first_phase() for SWITCH seconds after its READY line (argv[1], default 3.5),
# prints "SWITCH <unix time>" the moment it turns to second_phase(), and spins there
# until LIFETIME seconds have passed (argv[2], default 60). Valid under Python 2.7 and 3.6+.
import json
import os
import sys
import time

SWITCH = float(sys.argv[1]) if len(sys.argv) > 1 else 3.5
LIFETIME = float(sys.argv[2]) if len(sys.argv) > 2 else 60.0


def first_phase(until):
    while time.time() < until:
        i = 0
        while i < 20000:
            i += 1


def second_phase(until):
    while time.time() < until:
        i = 0
        while i < 20000:
            i += 1


def main():
    start = time.time()
    sys.stdout.write("READY %s\n" % json.dumps({"pid": os.getpid()}))
    sys.stdout.flush()
    first_phase(start + SWITCH)
    sys.stdout.write("SWITCH %.3f\n" % time.time())
    sys.stdout.flush()
    second_phase(start + LIFETIME)


if __name__ == "__main__":
    main()
