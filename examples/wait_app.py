"""A small service that spends its time waiting, for `pyspy-cpp record --wait`.

Four request handlers each fetch from a slow "database" (a local TCP server that takes
50 ms to answer) and then update a shared cache under one lock, held 20 ms by whoever
has it; a reporter thread sleeps. Runs for --seconds (default 60); prints READY <pid>.
Works on Python 2.7 and 3.x.
"""
import argparse
import os
import socket
import sys
import threading
import time


def database(server):
    """Answers each 1-byte query after 50 ms."""
    while True:
        conn, _ = server.accept()
        threading.Thread(target=answer, args=(conn,), name="db-conn").start()


def answer(conn):
    while conn.recv(1):
        time.sleep(0.05)
        conn.sendall(b"x")


def query(conn):
    conn.sendall(b"q")
    return conn.recv(1)


cache_lock = threading.Lock()
cache = {}


def update_cache(key):
    with cache_lock:
        time.sleep(0.02)  # the work done under the lock
        cache[key] = cache.get(key, 0) + 1


def handle_requests(address, name):
    conn = socket.create_connection(address)
    while True:
        query(conn)
        update_cache(name)


def report():
    while True:
        time.sleep(1)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60)
    args = parser.parse_args()
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    threading.Thread(target=database, args=(server,), name="database").start()
    for i in range(4):
        threading.Thread(target=handle_requests, args=(server.getsockname(), "handler-%d" % i),
                         name="handler-%d" % i).start()
    threading.Thread(target=report, name="reporter").start()
    sys.stdout.write("READY %d\n" % os.getpid())
    sys.stdout.flush()
    time.sleep(args.seconds)
    os._exit(0)


if __name__ == "__main__":
    main()
