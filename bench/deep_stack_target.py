# Benchmark target: one thread, a 31-deep CPU-bound Python stack (30 nested calls of
# level() under <module>), forever. With an argument "throughput", it instead prints
# the number of innermost iterations done each second ("RATE n"), for overhead runs.
import sys
import time

DEPTH = 30
MODE = sys.argv[1] if len(sys.argv) > 1 else "spin"


def level(n):
    if n > 1:
        return level(n - 1)
    count = 0
    last = time.time()
    sys.stdout.write("READY\n")
    sys.stdout.flush()
    while True:
        for _ in range(1000):
            count += 1
        if MODE == "throughput":
            now = time.time()
            if now - last >= 1.0:
                sys.stdout.write("RATE %d\n" % int(count / (now - last)))
                sys.stdout.flush()
                count = 0
                last = now


level(DEPTH)
