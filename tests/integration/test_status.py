#!/usr/bin/env python3
"""Integration test of the per-thread status of `pyspy-cpp dump`: the "gc" and "gilwait" marks.

Run by ctest (tests/integration/CMakeLists.txt) with the system python3:

  test_status.py --binary BUILD/pyspy-cpp gc PYTHON
  test_status.py --binary BUILD/pyspy-cpp gilwait PYTHON

gilwait: tests/targets/gil_target.py runs three spinning threads; some dump must mark
a spinner `waiting_for_gil` (state "gil" in text and JSON), never one holding the GIL or the
blocker thread asleep in read(2) (the main thread may rightly be marked: it contends).

gc:
Starts tests/targets/gc_target.py under PYTHON (a thread running gc.collect() in a
loop over 400,000 live containers, the main thread asleep) and dumps it (JSON and
text) until a dump shows the collector collecting: `collecting_garbage` true on the
collector thread (its native id from the READY line), which also holds the GIL and is
in `collect_loop`, and "+gc" in its text state. No dump may mark the sleeping main
thread, or a thread without the GIL. Exit code 0 = passed, 1 = failed, 77 = skipped
(the interpreter is not installed). On 2.7 and 3.6 the GC flag and the GIL are statics,
found through the interpreter's symbol table (every interpreter of the matrix has one).

On a free-threaded build (3.14t) there is no GIL, and the collecting mark goes with the
GIL holder (docs/dump-json.md): both cases become the opposite check, no thread ever
marked holding or waiting for a GIL, or collecting (gc: the collector still seen in
collect_loop; gilwait: the three spinners shown active at once, as threads run in
parallel, active or idle by the OS alone).
"""

import json
import os
import re
import sys

from driver_common import check, driver_main, is_free_threaded, log
from test_locals import dump, start_target

HERE = os.path.dirname(os.path.abspath(__file__))
TARGET = os.path.normpath(os.path.join(HERE, "..", "targets", "gc_target.py"))
GIL_TARGET = os.path.normpath(os.path.join(HERE, "..", "targets", "gil_target.py"))
ATTEMPTS = 40  # dumps; the collector is inside a collection most of the time


def dump_until_marked(binary, pid, what, json_check, text_check):
    """Dumps `pid` (JSON, then text) up to ATTEMPTS times, until both forms have shown
    the mark. json_check(thread) -> whether this JSON thread counts as a sighting (it
    raises Failure on a wrong mark); text_check(native_id, state) likewise for a text
    "Thread N (state)" line."""
    seen_json = seen_text = False
    for _ in range(ATTEMPTS):
        doc = json.loads(dump(binary, pid, "--json"))
        for thread in doc["threads"]:
            seen_json = json_check(thread) or seen_json
        for m in re.finditer(r"^Thread (\d+) \(([^)]+)\)", dump(binary, pid), re.M):
            seen_text = text_check(int(m.group(1)), m.group(2)) or seen_text
        if seen_json and seen_text:
            return
    check(seen_json, "no JSON dump in %d showed %s" % (ATTEMPTS, what))
    check(seen_text, "no text dump in %d showed %s" % (ATTEMPTS, what))


def test_gc(binary, python, tmp):
    """The collector is marked collecting (+gc), in collect_loop; the sleeping main thread
    never is. With a GIL the collector holds it (+gil). Free-threaded: no thread holds or
    waits for a GIL, and the collector is marked as the one thread running while a
    collection stops the others."""
    free_threaded = is_free_threaded(python)
    proc, ready = start_target(python, TARGET)
    try:
        pid, collector, main = ready["pid"], ready["collector_native_id"], ready["main_native_id"]

        def json_check(thread):
            if free_threaded:
                check(not thread["holds_gil"] and not thread["waiting_for_gil"],
                      "free-threaded: thread %s marked holding or waiting for a GIL" % thread["native_id"])
            if not thread["collecting_garbage"]:
                return False
            check(thread["native_id"] != main, "the sleeping main thread is marked collecting")
            check(free_threaded or thread["holds_gil"], "a thread without the GIL is marked collecting")
            check(thread["native_id"] == collector, "thread %s marked collecting, the collector is %s"
                  % (thread["native_id"], collector))
            check(thread["frames"] and thread["frames"][0]["function"] == "collect_loop",
                  "the collecting thread is not in collect_loop: %s" % thread["frames"][:1])
            return True

        def text_check(native_id, state):
            check(not free_threaded or "+gil" not in state, "text: a GIL mark on a free-threaded build: %s" % state)
            if "+gc" not in state:
                return False
            check(native_id == collector, "text: thread %s marked gc" % native_id)
            check(free_threaded or "+gil" in state, "text: gc without gil: %s" % state)
            return True

        if free_threaded:
            doc = json.loads(dump(binary, pid, "--json"))
            check(doc.get("free_threaded") is True, "free_threaded is %r in the JSON dump" % doc.get("free_threaded"))
        dump_until_marked(binary, pid, "the collector collecting (+gc)", json_check, text_check)
        check(proc.poll() is None, "the target died during the dumps")
    finally:
        proc.kill()
        proc.wait()


def test_gilwait(binary, python, tmp):
    if is_free_threaded(python):
        return no_gil(binary, python)
    proc, ready = start_target(python, GIL_TARGET)
    try:
        pid, spinners, main = ready["pid"], set(ready["spinner_native_ids"]), ready["main_native_id"]
        blocker = ready["blocker_native_id"]

        def json_check(thread):
            check(thread["waiting_for_gil"] == (thread["state"] == "gil"), "waiting_for_gil without state gil: %s"
                  % thread)
            if not thread["waiting_for_gil"]:
                return False
            check(not thread["holds_gil"], "a thread holding the GIL is marked waiting for it")
            check(thread["native_id"] != blocker, "the blocker, asleep in read(2), is marked waiting")
            check(thread["native_id"] in spinners | {main}, "thread %s (unknown) marked waiting"
                  % thread["native_id"])
            return thread["native_id"] in spinners

        def text_check(native_id, state):
            if state.split("+")[0] != "gil":
                return False
            check(native_id in spinners | {main}, "text: thread %s marked gilwait" % native_id)
            check("+gil" not in state, "text: waiting for the GIL and holding it: %s" % state)
            return True

        dump_until_marked(binary, pid, "a spinner waiting for the GIL (state gil)", json_check, text_check)
        check(proc.poll() is None, "the target died during the dumps")
    finally:
        proc.kill()
        proc.wait()


def no_gil(binary, python):
    """Free-threaded: in no dump does a thread hold or wait for a GIL, the blocker is
    idle, and some dump shows the three spinners active at once."""
    proc, ready = start_target(python, GIL_TARGET)
    try:
        pid, spinners, blocker = ready["pid"], set(ready["spinner_native_ids"]), ready["blocker_native_id"]
        most = 0
        for _ in range(10):
            doc = json.loads(dump(binary, pid, "--json"))
            for thread in doc["threads"]:
                check(not thread["holds_gil"] and not thread["waiting_for_gil"],
                      "free-threaded: thread %s shown holding or waiting for a GIL" % thread["native_id"])
                if thread["native_id"] == blocker:
                    check(not thread["active"], "the blocker, asleep in read(2), is shown active")
            most = max(most, len([t for t in doc["threads"] if t["native_id"] in spinners and t["active"]]))
            states = re.findall(r"^Thread \d+ \(([a-z+]+)\)", dump(binary, pid), re.M)
            check(states and not [s for s in states if "+gil" in s], "text: a GIL mark on a free-threaded build: %s"
                  % states)
        check(most == len(spinners), "free-threaded: at most %d of the %d spinners shown active at once"
              % (most, len(spinners)))
        log("free-threaded: no GIL marks in 10 dumps; all %d spinners active at once" % len(spinners))
        check(proc.poll() is None, "the target died during the dumps")
    finally:
        proc.kill()
        proc.wait()
    gil_turned_on(binary, python)


def gil_turned_on(binary, python):
    """Free-threaded, with its GIL turned on (PYTHON_GIL=1; importing a module not marked
    safe without the GIL does the same at run time): the dump says so, and the spinner
    holding the GIL is marked +gil, one at a time."""
    os.environ["PYTHON_GIL"] = "1"
    try:
        proc, ready = start_target(python, GIL_TARGET)
    finally:
        del os.environ["PYTHON_GIL"]
    try:
        pid, spinners, main = ready["pid"], set(ready["spinner_native_ids"]), ready["main_native_id"]
        text = dump(binary, pid)
        check("free-threaded (GIL turned on)" in text.split("\n")[1], "no 'GIL turned on' in the header: %r"
              % text.split("\n")[:2])

        def json_check(thread):
            if not thread["holds_gil"]:
                return False
            # The main thread rightly holds it at times: after READY it runs Python code
            # (Event().wait) until it blocks, contending with the spinners for the GIL.
            check(thread["native_id"] in spinners | {main}, "thread %s, neither a spinner nor the main thread, "
                  "holds the GIL" % thread["native_id"])
            return thread["native_id"] in spinners

        def text_check(native_id, state):
            return "+gil" in state and native_id in spinners

        dump_until_marked(binary, pid, "a spinner holding the turned-on GIL (+gil)", json_check, text_check)
        holders = [t for t in json.loads(dump(binary, pid, "--json"))["threads"] if t["holds_gil"]]
        check(len(holders) <= 1, "%d threads hold one GIL" % len(holders))
        log("free-threaded with PYTHON_GIL=1: the GIL holder is marked")
    finally:
        proc.kill()
        proc.wait()


if __name__ == "__main__":
    sys.exit(driver_main({"gc": test_gc, "gilwait": test_gilwait}, "pyspy-status-"))
