# multiprocessing.Pool target for `pyspy-cpp top -s` (tests/integration/test_top.py,
# case pool-io). Valid under Python 2.7 and 3.6-3.14 (3.14t too). The parent listens on
# a TCP socket of 127.0.0.1 and starts a Pool of WORKERS processes (argv[2], default 3;
# the fork start method, so they are the parent's children on every version); each
# worker's task, recv_reply, connects, sends its pid, and blocks in recv for a reply
# that never comes. Once the parent has accepted every worker's connection and read its
# pid, and every worker is asleep in the kernel (state S), it writes
#   READY {"pid": ..., "python": ..., "workers": [pid, ...]}
# and sleeps until killed or LIFETIME seconds (argv[1], default 120) have passed. A
# worker whose connection closes (the parent is gone) exits at once.
import json
import multiprocessing
import os
import socket
import sys
import time

LIFETIME = float(sys.argv[1]) if len(sys.argv) > 1 else 120.0
WORKERS = int(sys.argv[2]) if len(sys.argv) > 2 else 3


def recv_reply(address):
    sock = socket.create_connection(tuple(address))
    sock.sendall(("%d\n" % os.getpid()).encode())
    sock.recv(1)  # blocks until the parent goes away
    os._exit(0)


def asleep(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "S"
    except (IOError, OSError):
        return False


def read_pid(conn):
    data = b""
    while not data.endswith(b"\n"):
        chunk = conn.recv(64)
        if not chunk:
            break
        data += chunk
    return int(data.strip())


def main():
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(WORKERS)
    context = multiprocessing.get_context("fork") if hasattr(multiprocessing, "get_context") else multiprocessing
    pool = context.Pool(WORKERS)
    pool.map_async(recv_reply, [server.getsockname()] * WORKERS, chunksize=1)
    server.settimeout(30)
    connections, workers = [], []
    for _ in range(WORKERS):
        conn, _ = server.accept()
        conn.settimeout(30)
        workers.append(read_pid(conn))
        connections.append(conn)
    deadline = time.time() + 30
    while not all(asleep(pid) for pid in workers) and time.time() < deadline:
        time.sleep(0.01)
    if time.time() >= deadline:
        sys.stderr.write("pool_io_target: the workers did not block\n")
        os._exit(1)
    sys.stdout.write("READY " + json.dumps({"pid": os.getpid(), "python": sys.version.split()[0],
                                            "workers": sorted(workers)}) + "\n")
    sys.stdout.flush()
    time.sleep(LIFETIME)
    os._exit(0)


if __name__ == "__main__":
    main()
