# Benchmark target: one thread, a 31-deep CPU-bound Python stack (30 nested calls of
# level() under <module>), forever. With an argument "throughput", it instead prints
# the number of innermost iterations done each second ("RATE n m": n per second of wall
# time, m per second of its own CPU time), for overhead runs. The per-CPU-second rate is
# blind to time the process spends stopped or waiting for a CPU, so it isolates what a
# profiler costs a running target (caches, memory bus) from scheduling noise.
import resource
import sys
import time

DEPTH = 30
MODE = sys.argv[1] if len(sys.argv) > 1 else "spin"


def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)  # microsecond resolution (os.times: 10 ms)
    return r.ru_utime + r.ru_stime


def level(n):
    if n > 1:
        return level(n - 1)
    count = 0
    last = time.time()
    last_cpu = cpu()
    sys.stdout.write("READY\n")
    sys.stdout.flush()
    while True:
        for _ in range(1000):
            count += 1
        if MODE == "throughput":
            now = time.time()
            if now - last >= 1.0:
                now_cpu = cpu()
                sys.stdout.write("RATE %d %d\n" % (int(count / (now - last)), int(count / max(now_cpu - last_cpu, 1e-6))))
                sys.stdout.flush()
                count = 0
                last = now
                last_cpu = now_cpu


level(DEPTH)
