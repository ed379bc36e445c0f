# Benchmark target: four threads (two busy in nested functions, two sleeping) and a
# ready line. Valid on Python 2.7 and 3.x. Exits by itself after 120 s.
import sys
import threading
import time


def spin(depth):
    if depth > 0:
        return spin(depth - 1)
    x = 0
    while True:
        x += 1


def nap(depth):
    if depth > 0:
        return nap(depth - 1)
    while True:
        time.sleep(0.1)


def main():
    for i, fn in enumerate((spin, spin, nap, nap)):
        t = threading.Thread(target=fn, args=(20,), name="%s-%d" % (fn.__name__, i))
        t.daemon = True
        t.start()
    time.sleep(0.5)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    time.sleep(120)


main()
