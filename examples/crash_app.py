"""A small service that crashes in C code, for `pyspy-cpp dump --core` (README, "Core
dumps"). Two workers take requests from a queue and parse each request's buffer with a
C function (through ctypes); request 7 carries a NULL pointer, and the worker that takes
it dies of SIGSEGV inside libc. Run it with core dumps enabled:

    ulimit -c unlimited
    python3 examples/crash_app.py        # "Segmentation fault (core dumped)"
    pyspy-cpp dump --core core           # or core.PID, by /proc/sys/kernel/core_pattern
"""
import ctypes
import threading
import time

try:
    import queue
except ImportError:  # Python 2
    import Queue as queue

BUFFER = ctypes.create_string_buffer(b"GET /health HTTP/1.1")


def parse_header(address):
    return ctypes.string_at(address)  # a C read of whatever `address` points at


def handle(request):
    header = parse_header(request["buffer"])
    return len(header)


def worker(requests):
    while True:
        request = requests.get()
        handle(request)
        requests.task_done()


def report_metrics():
    while True:
        time.sleep(10)


def main():
    requests = queue.Queue()
    for name in ("worker-1", "worker-2"):
        threading.Thread(target=worker, args=(requests,), name=name).start()
    threading.Thread(target=report_metrics, name="metrics").start()
    for number in range(20):
        time.sleep(0.05)
        address = 0 if number == 7 else ctypes.addressof(BUFFER)
        requests.put({"id": number, "buffer": address})
    requests.join()


if __name__ == "__main__":
    main()
