#!/usr/bin/env python3
"""Integration test of the per-thread status of `pyspy-cpp dump`: the "gc" and "gilwait" marks.

Run by ctest (tests/integration/CMakeLists.txt) with the system python3:

  test_status.py --binary BUILD/pyspy-cpp gc PYTHON
  test_status.py --binary BUILD/pyspy-cpp gilwait PYTHON

gilwait: tests/targets/gil_target.py runs three spinning threads; some dump must mark
a spinner `waiting_for_gil` ("+gilwait" in text), never one holding the GIL or the
blocker thread asleep in read(2) (the main thread may rightly be marked: it contends).

gc:
Starts tests/targets/gc_target.py under PYTHON (a thread running gc.collect() in a
loop over 400,000 live containers, the main thread asleep) and dumps it (JSON and
text) until a dump shows the collector collecting: `collecting_garbage` true on the
collector thread (its native id from the READY line), which also holds the GIL and is
in `collect_loop`, and "+gc" in its text state. No dump may mark the sleeping main
thread, or a thread without the GIL. Exit code 0 = passed, 1 = failed, 77 = skipped
(the interpreter is not installed, or the version keeps the GC state where it cannot
be read: 2.7 and 3.6).
"""

import argparse
import json
import os
import re
import subprocess
import sys

from test_locals import Failure, check, dump, start_target

SKIP = 77
HERE = os.path.dirname(os.path.abspath(__file__))
TARGET = os.path.normpath(os.path.join(HERE, "..", "targets", "gc_target.py"))
GIL_TARGET = os.path.normpath(os.path.join(HERE, "..", "targets", "gil_target.py"))
ATTEMPTS = 40  # dumps; the collector is inside a collection most of the time


def version_of(python):
    out = subprocess.check_output([python, "-c", "import sys; print('%d %d' % sys.version_info[:2])"])
    return tuple(int(x) for x in out.split())


def test_gc(binary, python):
    if version_of(python) < (3, 7):
        print("SKIP: the GC's collecting flag is a static of gcmodule.c before 3.7; not read")
        return SKIP
    proc, ready = start_target(python, TARGET)
    try:
        pid, collector, main = ready["pid"], ready["collector_native_id"], ready["main_native_id"]
        seen_json = seen_text = False
        for _ in range(ATTEMPTS):
            doc = json.loads(dump(binary, pid, "--json"))
            for thread in doc["threads"]:
                if not thread["collecting_garbage"]:
                    continue
                check(thread["native_id"] != main, "the sleeping main thread is marked collecting")
                check(thread["holds_gil"], "a thread without the GIL is marked collecting")
                check(thread["native_id"] == collector, "thread %s marked collecting, the collector is %s"
                      % (thread["native_id"], collector))
                check(thread["frames"] and thread["frames"][0]["function"] == "collect_loop",
                      "the collecting thread is not in collect_loop: %s" % thread["frames"][:1])
                seen_json = True
            text = dump(binary, pid)
            for m in re.finditer(r"^Thread (\d+) \(([a-z+]+)\)", text, re.M):
                if "+gc" in m.group(2):
                    check(int(m.group(1)) == collector, "text: thread %s marked gc" % m.group(1))
                    check("+gil" in m.group(2), "text: gc without gil: %s" % m.group(0))
                    seen_text = True
            if seen_json and seen_text:
                break
        check(seen_json, "no JSON dump in %d showed the collector collecting" % ATTEMPTS)
        check(seen_text, "no text dump in %d showed +gc" % ATTEMPTS)
        check(proc.poll() is None, "the target died during the dumps")
    finally:
        proc.kill()
        proc.wait()
    return 0


def test_gilwait(binary, python):
    if version_of(python) < (3, 7):
        print("SKIP: the GIL is a static of ceval_gil.h before 3.7; waiting for it is not detected")
        return SKIP
    proc, ready = start_target(python, GIL_TARGET)
    try:
        pid, spinners, main = ready["pid"], set(ready["spinner_native_ids"]), ready["main_native_id"]
        blocker = ready["blocker_native_id"]
        seen_json = seen_text = False
        for _ in range(ATTEMPTS):
            doc = json.loads(dump(binary, pid, "--json"))
            for thread in doc["threads"]:
                if not thread["waiting_for_gil"]:
                    continue
                check(not thread["holds_gil"], "a thread holding the GIL is marked waiting for it")
                check(thread["native_id"] != blocker, "the blocker, asleep in read(2), is marked waiting")
                check(thread["native_id"] in spinners | {main}, "thread %s (unknown) marked waiting"
                      % thread["native_id"])
                seen_json = seen_json or thread["native_id"] in spinners
            text = dump(binary, pid)
            for m in re.finditer(r"^Thread (\d+) \(([a-z+]+)\)", text, re.M):
                if "+gilwait" in m.group(2):
                    check(int(m.group(1)) in spinners | {main}, "text: thread %s marked gilwait" % m.group(1))
                    check("+gil+" not in m.group(2) + "+", "text: gilwait with gil: %s" % m.group(0))
                    seen_text = True
            if seen_json and seen_text:
                break
        check(seen_json, "no JSON dump in %d showed a spinner waiting for the GIL" % ATTEMPTS)
        check(seen_text, "no text dump in %d showed +gilwait" % ATTEMPTS)
        check(proc.poll() is None, "the target died during the dumps")
    finally:
        proc.kill()
        proc.wait()
    return 0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", required=True)
    parser.add_argument("case", choices=["gc", "gilwait"])
    parser.add_argument("python")
    args = parser.parse_args()
    if not os.access(args.python, os.X_OK):
        print("SKIP: interpreter %s is not installed" % args.python)
        return SKIP
    try:
        rc = (test_gc if args.case == "gc" else test_gilwait)(args.binary, args.python)
    except Failure as failure:
        print("FAIL: %s" % failure)
        return 1
    if rc == 0:
        print("PASS: %s with %s" % (args.case, args.python))
    return rc


if __name__ == "__main__":
    sys.exit(main())
