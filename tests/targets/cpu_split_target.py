# Target for `record` tests: one thread spending about 3/4 of its CPU in
# three_quarters() and 1/4 in one_quarter(), measured by the interpreter's own clock
# so the split holds whatever the machine's speed. Valid under Python 2.7 and 3.6+.
# Prints "READY <json>" with the functions' files and line ranges, then runs for
# LIFETIME seconds (argv[1], default 60) and exits with status EXIT (argv[2], default 0).
import json
import os
import sys
import time

LIFETIME = float(sys.argv[1]) if len(sys.argv) > 1 else 60.0
EXIT = int(sys.argv[2]) if len(sys.argv) > 2 else 0
SLICE = 0.004  # seconds of one unit of work


def spin(seconds):
    end = time.time() + seconds
    while time.time() < end:
        pass


def three_quarters():
    spin(3 * SLICE)  # LINE three_quarters


def one_quarter():
    spin(SLICE)  # LINE one_quarter


def main():
    lines = {}
    with open(__file__) as f:
        for number, text in enumerate(f, 1):
            if "# LINE " in text and "lines[" not in text:
                lines[text.split("# LINE ")[1].strip()] = number
    sys.stdout.write("READY " + json.dumps({"pid": os.getpid(), "file": os.path.abspath(__file__),
                                            "lines": lines}) + "\n")
    sys.stdout.flush()
    deadline = time.time() + LIFETIME
    while time.time() < deadline:
        three_quarters()
        one_quarter()
    sys.exit(EXIT)


if __name__ == "__main__":
    main()
