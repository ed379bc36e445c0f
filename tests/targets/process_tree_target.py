# Target for `-s/--subprocesses` tests: a process tree whose members report their pids.
# Valid under Python 2.7 and 3.6+. Every mode prints "READY <json>" once the tree it
# starts with is up, and ends by itself after a bound.
#
#   pool METHOD SECONDS   multiprocessing.Pool(3) (start method fork or spawn; 2.7: fork
#                         only) running pool_task() (CPU-bound) while the parent spins
#                         in parent_work(); READY {"pid", "workers": [3 pids]}; at the
#                         end prints "DONE <json>" with the pids that ran tasks.
#   delayed DELAY SECONDS parent_work() for SECONDS; after DELAY starts a Python child
#                         running child_work(); READY {"pid"}; DONE {"child", "started":
#                         the time.time() just before the child was started}.
#   orphan SECONDS FACTS  starts a child running child_work() for SECONDS, then exits
#                         after 1.5 s; the child, orphaned, starts a grandchild running
#                         grandchild_work() and writes {"child", "grandchild"} to FACTS.
#   sleep SECONDS         starts `sleep SECONDS` and spins in parent_work(); READY {"pid",
#                         "sleep"}.
#   tree SECONDS          two Python children (child_work) and a `sleep`; READY {"pid",
#                         "children": [2 pids], "sleep"}.
import json
import os
import subprocess
import sys
import time


def spin(seconds):
    deadline = time.time() + seconds
    i = 0
    while time.time() < deadline:
        i += 1
    return i


def pool_task(seconds):
    spin(seconds)
    return os.getpid()


def parent_work(seconds):
    spin(seconds)


def child_work(seconds):
    spin(seconds)


def grandchild_work(seconds):
    spin(seconds)


def ready(facts):
    sys.stdout.write("READY " + json.dumps(facts) + "\n")
    sys.stdout.flush()


def start_self(*args):
    return subprocess.Popen([sys.executable, os.path.abspath(__file__)] + [str(a) for a in args])


def run_pool(method, seconds):
    import multiprocessing
    if method == "fork" and not hasattr(multiprocessing, "get_context"):
        pool = multiprocessing.Pool(3)
    else:
        pool = multiprocessing.get_context(method).Pool(3)
    # Wait until every worker has taken a task: then they are up and running Python.
    seen = set()
    deadline = time.time() + 30
    while len(seen) < 3 and time.time() < deadline:
        seen.update(pool.map(pool_task, [0.05] * 6, 1))
    ready({"pid": os.getpid(), "workers": sorted(p.pid for p in pool._pool)})
    ran = set()
    end = time.time() + seconds
    while time.time() < end:
        result = pool.map_async(pool_task, [0.2] * 6, 1)
        while not result.ready():
            parent_work(0.05)
        ran.update(result.get())
    sys.stdout.write("DONE " + json.dumps({"ran": sorted(ran)}) + "\n")
    sys.stdout.flush()
    pool.terminate()
    pool.join()


def run_delayed(delay, seconds):
    ready({"pid": os.getpid()})
    parent_work(delay)
    started = time.time()
    child = start_self("child", seconds)
    sys.stdout.write("DONE " + json.dumps({"child": child.pid, "started": started}) + "\n")
    sys.stdout.flush()
    parent_work(seconds)
    child.wait()


def run_orphan(seconds, facts):
    child = start_self("orphan-child", seconds, facts)
    ready({"pid": os.getpid(), "child": child.pid})
    parent_work(1.5)
    os._exit(0)  # leave the child running, re-parented


def run_orphan_child(seconds, facts):
    parent = os.getppid()
    deadline = time.time() + 10
    while os.getppid() == parent and time.time() < deadline:  # until the parent has exited
        child_work(0.05)
    grandchild = start_self("grandchild", seconds)
    with open(facts + ".tmp", "w") as f:
        json.dump({"child": os.getpid(), "grandchild": grandchild.pid}, f)
    os.rename(facts + ".tmp", facts)
    child_work(seconds)
    grandchild.wait()


def main():
    mode = sys.argv[1]
    if mode == "pool":
        run_pool(sys.argv[2], float(sys.argv[3]))
    elif mode == "delayed":
        run_delayed(float(sys.argv[2]), float(sys.argv[3]))
    elif mode == "orphan":
        run_orphan(float(sys.argv[2]), sys.argv[3])
    elif mode == "orphan-child":
        run_orphan_child(float(sys.argv[2]), sys.argv[3])
    elif mode == "child":
        child_work(float(sys.argv[2]))
    elif mode == "grandchild":
        grandchild_work(float(sys.argv[2]))
    elif mode == "sleep":
        seconds = float(sys.argv[2])
        sleeper = subprocess.Popen(["sleep", str(seconds)])
        ready({"pid": os.getpid(), "sleep": sleeper.pid})
        parent_work(seconds)
        sleeper.wait()
    elif mode == "tree":
        seconds = float(sys.argv[2])
        children = [start_self("child", seconds) for _ in range(2)]
        sleeper = subprocess.Popen(["sleep", str(seconds)])
        time.sleep(0.5)  # let the children's interpreters start
        ready({"pid": os.getpid(), "children": [c.pid for c in children], "sleep": sleeper.pid})
        parent_work(seconds)
        for c in children + [sleeper]:
            c.wait()
    else:
        sys.exit("unknown mode " + mode)


if __name__ == "__main__":
    main()
