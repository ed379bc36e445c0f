"""Target of the --native tests (tests/integration/test_native.py). Runs on 2.7 and 3.6+.

    native_target.py ext DIR [SECONDS]   import native_ext (built in DIR from native_ext.c):
        a thread "spinner" runs spinner_py -> native_ext.spin (C, prints "spin-ready"),
        the main thread outer_py -> native_ext.call_back (C) -> inner_py, which prints
        "ready" and waits in Python
    native_target.py qsort [SECONDS]     sort_them -> libc qsort (ctypes) -> compare, a
        Python callback that prints "ready" and waits in Python

Exits by itself after SECONDS (default 60)."""

import os
import sys
import threading
import time

MODE = sys.argv[1]
SECONDS = float(sys.argv[3] if MODE == "ext" and len(sys.argv) > 3 else
                sys.argv[2] if MODE == "qsort" and len(sys.argv) > 2 else 60)
DEADLINE = time.time() + SECONDS


def say(line):
    # One write(2): the C extension writes its own line to the same pipe.
    os.write(1, (line + "\n").encode("ascii"))


def wait_in_python():
    n = 0
    while time.time() < DEADLINE:
        n += 1
        if n % 1000 == 0:
            time.sleep(0.001)
    return n


def inner_py():
    say("ready")
    return wait_in_python()


def outer_py(native_ext):
    return native_ext.call_back(inner_py)


def spinner_py(native_ext):
    native_ext.spin(SECONDS)


def run_ext():
    sys.path.insert(0, sys.argv[2])
    import native_ext
    spinner = threading.Thread(target=spinner_py, args=(native_ext,), name="spinner")
    spinner.daemon = True
    spinner.start()
    outer_py(native_ext)


READY = []


def compare(a, b):
    if not READY:
        READY.append(True)
        say("ready")
        wait_in_python()
    return a[0] - b[0]


def sort_them():
    import ctypes
    import ctypes.util
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    comparator = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int))
    values = (ctypes.c_int * 5)(5, 1, 4, 2, 3)
    libc.qsort(values, len(values), ctypes.sizeof(ctypes.c_int), comparator(compare))
    return list(values)


if __name__ == "__main__":
    if MODE == "ext":
        run_ext()
    else:
        sort_them()
