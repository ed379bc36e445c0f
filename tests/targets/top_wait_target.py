# Wait-state target for `pyspy-cpp top` (tests/integration/test_top.py, case waits).
# Valid under Python 2.7 and 3.6-3.14 (3.14t too). Five threads, each blocked in one
# known state for its whole life:
#   MainThread  main -> time.sleep                   sleep (it holds `lock`)
#   "sleeper"   sleep_forever -> time.sleep          sleep
#   "locked"    wait_for_lock -> Lock.acquire        lock (the main thread holds it)
#   "reader"    recv_forever -> socket.recv          io (a socketpair nobody writes to)
#   "waiter"    wait_child -> os.waitpid             child (a forked child that waits for
#               the end of a pipe: it exits when this process does)
# When every thread but the main one is asleep in the kernel (state S in
# /proc/self/task/TID/stat) it writes `READY {"pid": ..., "python": ...}` and lives until
# killed or LIFETIME seconds (argv[1], default 120) have passed.
import json
import os
import socket
import sys
import threading
import time

LIFETIME = float(sys.argv[1]) if len(sys.argv) > 1 else 120.0
lock = threading.Lock()
started = []
started_lock = threading.Lock()


def entered():
    with started_lock:
        started.append(1)


def sleep_forever():
    entered()
    time.sleep(LIFETIME + 60)


def wait_for_lock():
    entered()
    lock.acquire()


def recv_forever(sock):
    entered()
    sock.recv(1)


def wait_child(pid):
    entered()
    os.waitpid(pid, 0)


def others_asleep():
    """Whether every thread but the main one is asleep (S) in the kernel."""
    me = os.getpid()
    tids = [int(t) for t in os.listdir("/proc/self/task") if int(t) != me]
    if len(tids) < 4:
        return False
    for tid in tids:
        try:
            with open("/proc/self/task/%d/stat" % tid) as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except (IOError, OSError):
            return False
        if state != "S":
            return False
    return True


def main():
    # The child first, before any thread: it blocks reading a pipe whose write end only
    # this process holds, so it ends when this process does, however that happens.
    r, w = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(w)
        os.read(r, 1)
        os._exit(0)
    os.close(r)
    lock.acquire()
    a, b = socket.socketpair()
    threads = [threading.Thread(target=sleep_forever, name="sleeper"),
               threading.Thread(target=wait_for_lock, name="locked"),
               threading.Thread(target=recv_forever, name="reader", args=(a,)),
               threading.Thread(target=wait_child, name="waiter", args=(child,))]
    for t in threads:
        t.daemon = True
        t.start()
    deadline = time.time() + 30
    while not (len(started) == len(threads) and others_asleep()) and time.time() < deadline:
        time.sleep(0.01)
    if time.time() >= deadline:
        sys.stderr.write("top_wait_target: the threads did not block\n")
        os._exit(1)
    sys.stdout.write("READY " + json.dumps({"pid": os.getpid(), "python": sys.version.split()[0]}) + "\n")
    sys.stdout.flush()
    time.sleep(LIFETIME)
    os._exit(0)


if __name__ == "__main__":
    main()
