# A small program to look at with pyspy-cpp (scripts/demo): an "indexer" thread that
# does CPU-heavy work in nested functions, a "fetcher" thread that waits on a socket
# the way a network client does, and the main thread waiting for the work to finish.
# Runs on Python 2.7 and 3.6+; prints "ready <pid>" once every thread is at work, and
# exits by itself after --seconds (default 60).
import argparse
import os
import socket
import sys
import threading
import time

started = threading.Barrier(3) if hasattr(threading, "Barrier") else None


def tokenize(text):
    return [word.strip(".,;").lower() for word in text.split()]


def score(tokens):
    total = 0
    for i, token in enumerate(tokens):
        for ch in token:
            total = (total * 31 + ord(ch) + i) % 1000003
    return total


def build_index(documents, rounds):
    index = {}
    for _ in range(rounds):
        for doc_id, text in enumerate(documents):
            tokens = tokenize(text)
            index[doc_id] = score(tokens)
    return index


def indexer(stop):
    documents = ["The quick brown fox jumps over the lazy dog number %d." % i for i in range(200)]
    notify_started()
    while not stop.is_set():
        build_index(documents, rounds=5)


def wait_for_reply(sock):
    try:
        return sock.recv(1)  # nobody ever answers: the thread blocks here
    except socket.timeout:
        return b""


def fetcher(stop):
    server, client = socket.socketpair()
    client.settimeout(1.0)
    notify_started()
    try:
        while not stop.is_set():
            wait_for_reply(client)
    finally:
        client.close()
        server.close()


def notify_started():
    if started is not None:
        started.wait()


def main():
    parser = argparse.ArgumentParser(description="pyspy-cpp demo program")
    parser.add_argument("--seconds", type=float, default=60.0, help="exit after this long")
    args = parser.parse_args()

    stop = threading.Event()
    workers = [threading.Thread(target=indexer, args=(stop,), name="indexer"),
               threading.Thread(target=fetcher, args=(stop,), name="fetcher")]
    for w in workers:
        w.daemon = True
        w.start()
    notify_started()
    time.sleep(0.2)
    sys.stdout.write("ready %d\n" % os.getpid())
    sys.stdout.flush()
    stop.wait(args.seconds)
    stop.set()
    for w in workers:
        w.join(5)


if __name__ == "__main__":
    main()
