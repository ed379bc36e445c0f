# Fault-injection target (tests/integration/test_faults.py, case "churn" and "exits").
# Valid under Python 2.7 and 3.6-3.14 (3.14t too).
#
#   fault_churn_target.py LOGFILE [LIFETIME] [DISTINCT]
#
# Churns the two things a sampler caches or walks while they change under it:
#   - threads: a spawner keeps starting short-lived worker threads (each lives a few
#     milliseconds in churn_worker -> churn_spin) and joining them;
#   - code objects: the main thread builds a new function with `exec` in a loop, calls
#     it for ~2 ms and drops it, so code objects, their names and line tables are freed
#     and their addresses reused. Function number N is named gen_N, lives in the pseudo
#     file "<churn-N>", and has N % 7 statements before its loop, so its lines differ
#     from its neighbours'. Before a function is built its name is written (and flushed)
#     to LOGFILE as one JSON line {"name": "gen_N", "file": "<churn-N>", "lines": [...]}:
#     every generated name a profiler can see is in the log.
# With DISTINCT (bench/soak.py), function N is named and filed after N % DISTINCT: code
# objects are still built and freed without end, but the set of distinct stacks is
# bounded, so a profiler's memory must level off (anything else is a leak).
# Prints "READY {json}" once both loops run, then churns until LIFETIME seconds pass.
import json
import os
import sys
import threading
import time

LOGFILE = sys.argv[1]
LIFETIME = float(sys.argv[2]) if len(sys.argv) > 2 else 60.0
DISTINCT = int(sys.argv[3]) if len(sys.argv) > 3 else 0
PADDING = 7
clock = time.time

stop = threading.Event()


def churn_spin(seconds):
    end = clock() + seconds
    x = 0
    while clock() < end:
        x += 1
    return x


def churn_worker(seconds):
    churn_spin(seconds)


def churn_spawner():
    started = 0
    alive = []
    while not stop.is_set():
        # Keep about four workers alive, each for 1-5 ms: a thread starts or exits
        # every millisecond or so.
        while len(alive) < 4:
            t = threading.Thread(target=churn_worker, args=(0.001 * (1 + started % 5),),
                                 name="churn-%d" % started)
            t.daemon = True
            t.start()
            alive.append(t)
            started += 1
        alive[0].join()
        alive.pop(0)
    return started


def generated_source(n):
    lines = ["def gen_%d(end, clock):" % n]
    for i in range(n % PADDING):
        lines.append("    pad_%d = %d" % (i, i))
    lines.append("    x = 0")
    loop = len(lines) + 1
    lines.append("    while clock() < end:")
    lines.append("        x += 1")
    lines.append("    return x")
    # Every line a sample of gen_n may show: the def line (not started yet) to return.
    return "\n".join(lines) + "\n", list(range(1, len(lines) + 1)), loop


def churn_code(log):
    n = 0
    while not stop.is_set():
        k = n % DISTINCT if DISTINCT else n
        name = "gen_%d" % k
        filename = "<churn-%d>" % k
        source, lines, _ = generated_source(k)
        log.write(json.dumps({"name": name, "file": filename, "lines": lines}) + "\n")
        log.flush()
        namespace = {}
        exec(compile(source, filename, "exec"), namespace)
        namespace[name](clock() + 0.002, clock)
        del namespace
        n += 1
    return n


def main():
    log = open(LOGFILE, "w")
    spawner = threading.Thread(target=churn_spawner, name="spawner")
    spawner.daemon = True
    spawner.start()
    timer = threading.Timer(LIFETIME, stop.set)
    timer.daemon = True
    timer.start()
    sys.stdout.write("READY " + json.dumps({"pid": os.getpid(), "script": os.path.abspath(__file__)}) + "\n")
    sys.stdout.flush()
    churn_code(log)
    log.close()
    os._exit(0)


if __name__ == "__main__":
    main()
