# Target for `record` tests: one thread spending about 3/4 of its CPU in
# three_quarters() and 1/4 in one_quarter(). The split is by work (loop iterations,
# calibrated once to ~5 ms per unit), not by wall clock, so it holds on a loaded
# machine too. Valid under Python 2.7 and 3.6+.
# Prints "READY <json>" with the functions' files and line ranges, then runs for
# LIFETIME seconds (argv[1], default 60) and exits with status EXIT (argv[2], default 0).
# SPLIT (argv[3], default "3:1") is the units of work of three_quarters and one_quarter
# per round: "1:3" swaps the shares (25% / 75%, for the diff tests).
import json
import os
import sys
import time

LIFETIME = float(sys.argv[1]) if len(sys.argv) > 1 else 60.0
EXIT = int(sys.argv[2]) if len(sys.argv) > 2 else 0
SPLIT = [int(n) for n in (sys.argv[3] if len(sys.argv) > 3 else "3:1").split(":")]
UNIT = [10000]  # loop iterations of one unit of work, calibrated in main()


def spin(iterations):
    i = 0
    while i < iterations:
        i += 1


def three_quarters():
    spin(SPLIT[0] * UNIT[0])  # LINE three_quarters


def one_quarter():
    spin(SPLIT[1] * UNIT[0])  # LINE one_quarter


def calibrate():
    best = None
    for _ in range(5):
        start = time.time()
        spin(100000)
        elapsed = time.time() - start
        best = elapsed if best is None else min(best, elapsed)
    UNIT[0] = max(1000, int(100000 * 0.005 / max(best, 1e-6)))


def main():
    calibrate()
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
