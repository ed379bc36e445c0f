# Fault-injection target (tests/integration/test_faults.py, case "threads").
# Valid under Python 2.7 and 3.6-3.14 (3.14t too).
#
#   fault_threads_target.py COUNT [LIFETIME]
#
# Starts COUNT threads, each parked in parked_thread (waiting on an Event that is never
# set), prints "READY {json}" once every one of them has entered it, then sleeps until
# LIFETIME seconds pass. On SIGUSR1 the main thread instead spins in spinning_on_signal
# (on CPU, holding the GIL) until then: a phase a test can start at a moment it chooses.
# On SIGUSR2 it prints "SIGNALED" (the handler ran: CPython runs handlers in the main
# thread only) and sleeps on.
import json
import os
import signal
import sys
import threading
import time

COUNT = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
LIFETIME = float(sys.argv[2]) if len(sys.argv) > 2 else 120.0

never = threading.Event()
entered = threading.Semaphore(0)


def parked_thread():
    entered.release(); never.wait(LIFETIME + 60)  # noqa: E702


def spinning_on_signal(signum, frame):
    while time.time() < DEADLINE:
        pass
    os._exit(0)


def signaled(signum, frame):
    sys.stdout.write("SIGNALED\n")
    sys.stdout.flush()


DEADLINE = time.time() + LIFETIME


def main():
    signal.signal(signal.SIGUSR1, spinning_on_signal)
    signal.signal(signal.SIGUSR2, signaled)
    try:
        threading.stack_size(256 * 1024)  # 1000 threads need no 8 MB stacks each
    except (ValueError, AttributeError):
        pass
    threads = []
    for i in range(COUNT):
        t = threading.Thread(target=parked_thread, name="parked-%d" % i)
        t.daemon = True
        t.start()
        threads.append(t)
    for _ in range(COUNT):
        entered.acquire()
    time.sleep(0.2)  # from release() into the wait itself
    sys.stdout.write("READY " + json.dumps({"pid": os.getpid(), "threads": COUNT}) + "\n")
    sys.stdout.flush()
    while time.time() < DEADLINE:  # 2.7's sleep ends early when a handler has run
        time.sleep(max(0.0, DEADLINE - time.time()))
    os._exit(0)


if __name__ == "__main__":
    main()
