# Wait-state target (issue 22) for tests/integration/test_wait.py. Valid under Python
# 2.7 and 3.6-3.14 (3.14t too). Named threads, each in one state for as long as it lives:
#   cpu      big-integer powers (7 ** 3000000, ~1 s each, C code that never releases the
#            GIL): running and holding the GIL ~98-99% of the time (measured with /proc)
#   gilwait  a pure-Python busy loop: with a GIL it waits for it behind `cpu`, asleep on
#            the GIL's futex ~91-97% of the time (3.x: it gets the GIL for one 20 ms
#            switch interval per power, and each of its timed wakes to ask for it leaves
#            it runnable for a moment; 2.7: it only runs when it wins the race at one of
#            cpu's check intervals, ~100% asleep); free-threaded, it simply runs
#   lock     blocked on a threading.Lock the main thread holds (futex)
#   queue    in Queue.get() with no timeout (a Condition: futex)
#   recv     recv(1) on a blocking TCP socket to a server of this process on 127.0.0.1
#            that never answers (recvfrom)
#   poll     the same with a socket timeout of an hour: Python waits in poll(2) on it
#   pipe     os.read of a pipe no one writes (read)
#   sleep    time.sleep(3600) (clock_nanosleep; before 3.11 select() with no descriptor,
#            which glibc makes a pselect6 system call)
#   child    subprocess.Popen(["cat"]).wait() with no timeout (wait4). cat reads a pipe
#            only this process holds, so it ends as soon as this process does, even killed
# The main thread waits on an Event with no timeout (futex: lock). Once every thread but
# cpu/gilwait is seen (/proc/self/task/TID/syscall) in its system call 5 reads in a row,
# the main thread starts gilwait and cpu and waits; cpu, once the main thread is seen in
# its futex wait 20 reads in a row (so that from then on no other thread wants the GIL),
# writes one line
#   READY {"pid": ..., "python": "3.12.1", "free_threaded": false, "server": "127.0.0.1:PORT",
#          "main": TID, "child_pid": ..., "threads": {"cpu": TID, "gilwait": TID, ...},
#          "fds": {"recv": FD, "poll": FD, "pipe": FD}}
# It ends by itself after LIFETIME seconds (argv[1], default 120): SIGALRM, whose default
# action ends the process (a timed Event.wait would poll in sleeps on 2.7).
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import sysconfig
import threading
import time

try:
    import queue
except ImportError:  # 2.7
    import Queue as queue

LIFETIME = int(float(sys.argv[1])) if len(sys.argv) > 1 else 120
signal.alarm(max(1, LIFETIME))

# x86-64 system call numbers (aarch64 has other numbers and no select/poll/wait4: the
# checks below are skipped there).
FUTEX, RECVFROM, POLL, PPOLL, READ, WAIT4 = 202, 45, 7, 271, 0, 61
CLOCK_NANOSLEEP, NANOSLEEP, SELECT, PSELECT6 = 230, 35, 23, 270
X86_64 = platform.machine().lower() in ("x86_64", "amd64")

tids = {}
MAIN = []
EXPONENT = 3000000  # 7 ** EXPONENT: ~1 s (0.8-1.4 s on 2.7-3.14)
if hasattr(sys, "setswitchinterval"):
    # The new GIL's waiter wakes every switch interval (5 ms by default) to ask for it:
    # each wake leaves it runnable ("running") until a CPU takes it, 6% of the time on a
    # loaded 2-core machine. At 20 ms it wakes a quarter as often, and holds the GIL for
    # 20 ms per ~1 s power: gilwait asleep on the GIL ~95%, cpu running ~99%.
    sys.setswitchinterval(0.02)
tids_lock = threading.Lock()


def current_native_id():
    if hasattr(threading, "get_native_id"):
        return threading.get_native_id()
    import ctypes  # before 3.8: gettid through ctypes
    numbers = {"x86_64": 186, "amd64": 186, "aarch64": 178}
    return int(ctypes.CDLL(None, use_errno=True).syscall(numbers[platform.machine().lower()]))


def register(name):
    with tids_lock:
        tids[name] = current_native_id()


def syscall_of(tid):
    """The /proc/self/task/TID/syscall fields ("running" or a number and arguments)."""
    try:
        with open("/proc/self/task/%d/syscall" % tid) as f:
            return f.read().split()
    except (IOError, OSError):
        return []


def cpu():
    register("cpu")
    while "gilwait" not in tids:
        time.sleep(0.001)
    # The main thread asleep in Event.wait: from READY on, no thread but these two wants
    # the GIL (on 2.7 the main thread would get it back only when it wins a race at one
    # of this thread's check intervals, seconds apart).
    streak = 0
    while X86_64 and streak < 20:  # in a futex wait 20 reads in a row, 5 ms apart
        streak = streak + 1 if syscall_of(MAIN[0])[:1] == [str(FUTEX)] else 0
        time.sleep(0.005)
    ready()
    base = 7  # a name, not a constant: 2.7 folds 7 ** N at compile time
    while True:
        x = base ** EXPONENT  # ~1 s in C with the GIL held
    return x


def gilwait():
    register("gilwait")
    n = 0
    while True:
        n += 1


held = threading.Lock()
held.acquire()  # the main thread holds it for ever


def lock():
    register("lock")
    held.acquire()


jobs = queue.Queue()


def queue_get():
    register("queue")
    jobs.get()


server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
server.bind(("127.0.0.1", 0))
server.listen(8)
server_address = "127.0.0.1:%d" % server.getsockname()[1]
accepted = []  # the server side of each connection: kept open, never written


def recv(timeout):
    def body():
        register("poll" if timeout else "recv")
        conn = socket.create_connection(server.getsockname())
        if timeout:
            conn.settimeout(timeout)  # recv then waits in poll(2) with the timeout
        fds["poll" if timeout else "recv"] = conn.fileno()
        conn.recv(1)
    return body


read_end, write_end = os.pipe()
fds = {"pipe": read_end}  # the descriptor each io thread waits on


def pipe():
    register("pipe")
    os.read(read_end, 1)


def sleep():
    register("sleep")
    time.sleep(3600)


children = []


def child():
    register("child")
    # stdin: a pipe whose write end only this process holds (close_fds), so cat ends
    # when this process does; its output goes nowhere.
    devnull = open(os.devnull, "wb")
    proc = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=devnull, close_fds=True)
    children.append(proc.pid)
    proc.wait()


EXPECTED = {  # x86-64 numbers each waiting thread is in
    "lock": (FUTEX,), "queue": (FUTEX,), "recv": (RECVFROM,), "poll": (POLL, PPOLL), "pipe": (READ,),
    "sleep": (CLOCK_NANOSLEEP, NANOSLEEP, SELECT, PSELECT6), "child": (WAIT4,),
}


def in_place(name):
    fields = syscall_of(tids[name])
    if not fields or fields[0] == "running":
        return False
    number = int(fields[0])
    if number not in EXPECTED[name]:
        return False
    if number in (SELECT, PSELECT6):  # time.sleep before 3.11: select() with no descriptor
        return int(fields[1], 16) == 0
    return True


def start(name, body):
    t = threading.Thread(target=body, name=name)
    t.daemon = True
    t.start()


def main():
    MAIN.append(current_native_id())
    for name, body in (("lock", lock), ("queue", queue_get), ("recv", recv(None)), ("poll", recv(3600.0)),
                       ("pipe", pipe), ("sleep", sleep), ("child", child)):
        start(name, body)
    server.settimeout(30)
    for _ in range(2):  # recv and poll connect
        accepted.append(server.accept()[0])
    deadline = time.time() + 30
    streak = 0
    while streak < 5:  # every thread in its call 5 reads in a row, 10 ms apart
        if time.time() > deadline:
            sys.stderr.write("wait_states_target: threads not in place: %s\n"
                             % dict((n, syscall_of(tids[n])[:2] if n in tids else None) for n in EXPECTED))
            os._exit(1)
        with tids_lock:
            ok = len(children) == 1 and all(n in tids for n in EXPECTED)
        ok = ok and (not X86_64 or all(in_place(n) for n in EXPECTED))
        streak = streak + 1 if ok else 0
        time.sleep(0.01)
    start("gilwait", gilwait)
    start("cpu", cpu)  # writes READY once the main thread waits
    threading.Event().wait()  # no timeout: a futex wait (lock) until SIGALRM or a kill


def ready():
    sys.stdout.write("READY " + json.dumps({
        "pid": os.getpid(), "python": sys.version.split()[0],
        "free_threaded": bool(sysconfig.get_config_var("Py_GIL_DISABLED")), "server": server_address,
        "main": MAIN[0], "child_pid": children[0], "threads": tids, "fds": fds}) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
