#!/usr/bin/env python3
"""Integration tests of `pyspy-cpp diff` on profiles recorded from live interpreters.

Run by ctest (tests/integration/CMakeLists.txt) with the system python3:

  test_diff.py --binary BUILD/pyspy-cpp split PYTHON    # 75/25 then 25/75: shrank 50 +- 5 points, every format
  test_diff.py --binary BUILD/pyspy-cpp hostile PYTHON  # hostile names: the diff SVG is XML, nothing injected
  test_diff.py --binary BUILD/pyspy-cpp errors          # missing, unreadable, not a profile, empty: exit codes

split: tests/targets/cpu_split_target.py runs three_quarters() for 75% of its work and
one_quarter() for 25% (SPLIT 3:1), then, a second process, the other way round (1:3).
Each is recorded once it is READY (so the interpreter's start-up is not in the profile):
BASE as raw, NEW as pprof and again as speedscope. `diff BASE NEW` must mark
three_quarters shrunk by 50 +- 5 points and one_quarter grown, the SVG must parse as
XML, `-f raw` must add up to both inputs, `diff A A` must mark nothing, and the
default output name is diff-<NEW>.svg.

Exit code 0 = passed, 1 = failed, 77 = skipped (interpreter not installed).
"""

import gzip
import json
import os
import re
import subprocess
import sys
import xml.dom.minidom

from driver_common import ReadyTarget, check, driver_main, log

HERE = os.path.dirname(os.path.abspath(__file__))
TARGETS = os.path.join(HERE, "..", "targets")
RAW_DIFF_LINE = re.compile(r"^(.+) (\d+) (\d+)$")
COLLAPSED_LINE = re.compile(r"^(.+) (\d+)$")
# 1000 Hz for 3 s: ~2500 samples a profile, so sampling noise alone moves the difference
# of two shares by ~1.2 points (1 sigma); samples outside the two functions (the loop,
# time.time()) shrink it by a point or two, so -50 +- 5 points is 3-4 sigma wide.
RATE, SECONDS = "1000", "3"


def start(python, script, args):
    """A target started and READY (it prints "READY {json}" once it runs what is measured)."""
    return ReadyTarget([python, os.path.join(TARGETS, script)] + list(args))


def run(binary, args, cwd=None):
    p = subprocess.run([binary] + args, capture_output=True, timeout=120, stdin=subprocess.DEVNULL, cwd=cwd)
    return p.returncode, p.stderr.decode(errors="replace")


def record(binary, pid, fmt, out, seconds=SECONDS, rate=RATE, extra=()):
    code, err = run(binary, ["record", "--pid", str(pid), "-d", seconds, "-r", rate, "-f", fmt, "-o", out] +
                    list(extra))
    check(code == 0 and os.path.exists(out), "record -f %s: exit %d: %s" % (fmt, code, err))


def diff(binary, base, new, out, fmt="flamegraph"):
    code, err = run(binary, ["diff", base, new, "-o", out, "-f", fmt])
    check(code == 0, "diff %s %s -f %s: exit %d: %s" % (base, new, fmt, code, err))
    check(len(err.strip().split("\n")) == 1 and "wrote diff" in err, "diff: expected one summary line: %r" % err)
    return err.strip()


# --- what the inputs hold, read independently of pyspy-cpp ---------------------------

def raw_total(path):
    total = 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = COLLAPSED_LINE.match(line.rstrip("\n"))
            check(m is not None, "%s: not a collapsed line: %r" % (path, line))
            total += int(m.group(2))
    return total


def varint(data, pos):
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, pos


def fields(data):
    """(field number, varint or bytes) of one protobuf message (wire types 0 and 2)."""
    pos = 0
    while pos < len(data):
        tag, pos = varint(data, pos)
        if tag & 7 == 0:
            value, pos = varint(data, pos)
        else:
            check(tag & 7 == 2, "pprof: unexpected wire type %d" % (tag & 7))
            length, pos = varint(data, pos)
            value, pos = data[pos:pos + length], pos + length
        yield tag >> 3, value


def pprof_total(path):
    """The sum of the first value (samples/count, as record writes it) of every sample."""
    with gzip.open(path) as f:
        data = f.read()
    total = 0
    for number, sample in fields(data):
        if number == 2:  # Profile.sample
            values = [v for n, v in fields(sample) if n == 2]  # Sample.value, packed
            total += values[0] if isinstance(values[0], int) else varint(values[0], 0)[0]
    return total


def speedscope_total(path):
    with open(path) as f:
        return sum(sum(p["weights"]) for p in json.load(f)["profiles"])


# --- the diff's outputs ---------------------------------------------------------------

def svg_frames(path):
    """Parses the SVG (fails on malformed XML); returns its frames: label, n, base, delta, change."""
    doc = xml.dom.minidom.parse(path)
    frames = []
    for g in doc.getElementsByTagName("g"):
        if not g.hasAttribute("data-s"):
            continue
        title = "".join(n.data for n in g.getElementsByTagName("title")[0].childNodes)
        frames.append({"label": title.split("\n")[0], "title": title, "n": int(g.getAttribute("data-n")),
                       "base": int(g.getAttribute("data-base")), "delta": float(g.getAttribute("data-delta")),
                       "change": g.getAttribute("data-change")})
    check(frames and frames[0]["label"] == "all", "%s: no frames, or the first is not 'all'" % path)
    return doc, frames


def function_change(frames, name):
    """A function's share in BASE and NEW (all its frames: call and def lines), in percent,
    and the verdict on its largest frame."""
    total_new, total_base = frames[0]["n"], frames[0]["base"]
    mine = [f for f in frames if f["label"].startswith(name + " (")]
    check(mine, "no frame of %s in the diff" % name)
    base = 100.0 * sum(f["base"] for f in mine) / total_base
    new = 100.0 * sum(f["n"] for f in mine) / total_new
    return base, new, max(mine, key=lambda f: f["n"] + f["base"])["change"]


def raw_diff(path):
    lines = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = RAW_DIFF_LINE.match(line.rstrip("\n"))
            check(m is not None, "%s: not 'stack BASE NEW': %r" % (path, line))
            check(all(m.group(1).split(";")), "%s: an empty frame in %r" % (path, line))
            lines.append((m.group(1), int(m.group(2)), int(m.group(3))))
    return lines


def test_split(binary, python, tmp):
    a, b, c = (os.path.join(tmp, n) for n in ("A.txt", "B.pb.gz", "C.speedscope.json"))
    base = start(python, "cpu_split_target.py", [60, 0, "3:1"])
    try:
        record(binary, base.pid, "raw", a)
    finally:
        base.close()
    new = start(python, "cpu_split_target.py", [60, 0, "1:3"])
    try:
        record(binary, new.pid, "pprof", b)
        record(binary, new.pid, "speedscope", c, seconds="1")
    finally:
        new.close()
    totals = {a: raw_total(a), b: pprof_total(b), c: speedscope_total(c)}
    log("recorded: BASE %d samples (raw), NEW %d (pprof) and %d (speedscope)" % (totals[a], totals[b], totals[c]))
    check(min(totals.values()) >= 300, "too few samples: %r" % totals)

    svg = os.path.join(tmp, "diff.svg")
    log(diff(binary, a, b, svg))
    _, frames = svg_frames(svg)
    tq_base, tq_new, tq_change = function_change(frames, "three_quarters")
    oq_base, oq_new, oq_change = function_change(frames, "one_quarter")
    tq, oq = tq_new - tq_base, oq_new - oq_base
    log("three_quarters %.1f%% -> %.1f%%: %+.1f points (%s); one_quarter %.1f%% -> %.1f%%: %+.1f points (%s)" %
        (tq_base, tq_new, tq, tq_change, oq_base, oq_new, oq, oq_change))
    check(abs(tq + 50) <= 5, "three_quarters changed by %+.1f points, expected -50 +- 5" % tq)
    check(tq_change == "shrank", "three_quarters is marked %r, expected shrank" % tq_change)
    check(oq_change == "grew" and oq > 40, "one_quarter is marked %r (%+.1f points), expected grew" % (oq_change, oq))
    hot = max((f for f in frames if f["label"].startswith("three_quarters (")), key=lambda f: f["base"])
    check("shrank beyond sampling noise (3 sigma = " in hot["title"], "hover: %r" % hot["title"])

    out = os.path.join(tmp, "diff.txt")
    diff(binary, a, b, out, "raw")
    lines = raw_diff(out)
    sums = (sum(l[1] for l in lines), sum(l[2] for l in lines))
    check(sums == (totals[a], totals[b]), "raw diff sums %r, inputs %r" % (sums, (totals[a], totals[b])))

    # The same file on both sides: nothing changed, whatever the format.
    for path in (a, b, c):
        diff(binary, path, path, svg)
        _, frames = svg_frames(svg)
        marked = [(f["label"], f["change"]) for f in frames if f["change"] != "noise"]
        check(not marked, "diff of %s with itself marks %r" % (os.path.basename(path), marked[:5]))
        check(all("within sampling noise" in f["title"] for f in frames), "diff A A: a hover without the noise note")
        diff(binary, path, path, out, "raw")
        check(all(l[1] == l[2] for l in raw_diff(out)), "diff -f raw of %s with itself: counts differ" % path)
    log("ok   diff A A marks nothing (raw, pprof, speedscope)")

    # speedscope as NEW, and the default output name (in the current directory).
    code, err = run(binary, ["diff", a, c], cwd=tmp)
    check(code == 0, "diff without -o: exit %d: %s" % (code, err))
    default = os.path.join(tmp, "diff-C.svg")
    check(os.path.exists(default), "diff without -o wrote %r, expected diff-C.svg" % os.listdir(tmp))
    _, frames = svg_frames(default)
    check(function_change(frames, "three_quarters")[2] == "shrank", "A -> C (speedscope): three_quarters not shrunk")
    check(function_change(frames, "one_quarter")[2] == "grew", "A -> C (speedscope): one_quarter not grown")
    check(not [f for f in os.listdir(tmp) if ".tmp." in f], "temporary files left: %r" % os.listdir(tmp))


HOSTILE_MARK = "data-pwned"


def test_hostile(binary, python, tmp):
    """fault_hostile_target.py's names (markup, ]]>, controls, invalid UTF-8, 100 KB) in
    both profiles: the diff SVG is well-formed XML with its own script only."""
    a, b = os.path.join(tmp, "A.txt"), os.path.join(tmp, "B.pb.gz")
    target = start(python, "fault_hostile_target.py", [60])
    try:
        record(binary, target.pid, "raw", a, seconds="1", rate="100", extra=["--idle"])
        record(binary, target.pid, "pprof", b, seconds="1", rate="100", extra=["--idle"])
    finally:
        target.close()
    for base, new in ((a, b), (b, a)):
        svg = os.path.join(tmp, "diff.svg")
        diff(binary, base, new, svg)
        doc, frames = svg_frames(svg)
        scripts = doc.getElementsByTagName("script")
        check(len(scripts) == 1, "%d <script> elements in the diff" % len(scripts))
        check(HOSTILE_MARK not in "".join(n.data for n in scripts[0].childNodes), "target text in the script")
        check(not doc.getElementsByTagName("img"), "an <img> element in the diff")
        check(any(HOSTILE_MARK in f["label"] for f in frames), "the hostile names are not in the diff")
        diff(binary, base, new, os.path.join(tmp, "diff.txt"), "raw")
        check(any(HOSTILE_MARK in l[0] for l in raw_diff(os.path.join(tmp, "diff.txt"))), "raw: no hostile name")
    log("ok   hostile names: %d frames, valid XML, one script, no injected element" % len(frames))


def test_errors(binary, python, tmp):
    good = os.path.join(tmp, "good.txt")
    with open(good, "w") as f:
        f.write("main (a.py:1);f (a.py:2) 10\n")
    garbage, empty = os.path.join(tmp, "garbage.svg"), os.path.join(tmp, "empty.txt")
    with open(garbage, "wb") as f:
        f.write(b"<svg>not a profile</svg>\n")
    with open(empty, "w") as f:
        f.write("\n")
    cases = [
        ([os.path.join(tmp, "missing.txt"), good], 9, "cannot read BASE profile"),
        ([good, tmp], 9, "not a regular file"),
        ([good, garbage], 2, "NEW profile"),
        ([empty, good], 2, "holds no samples"),
        ([good, good, "-f", "svg"], 2, ""),
        ([good, good, "-o", os.path.join(tmp, "no", "such", "dir.svg")], 9, "cannot create"),
    ]
    for args, expected, words in cases:
        code, err = run(binary, ["diff"] + args)
        check(code == expected, "diff %r: exit %d, expected %d: %s" % (args, code, expected, err))
        check(words in err, "diff %r: %r does not say %r" % (args, err, words))
        if words:
            check(len(err.strip().split("\n")) == 1, "diff %r: not one line: %r" % (args, err))
    log("ok   %d error cases" % len(cases))

    # -o -: the diff on standard output (to a pipe), nothing written to disk.
    before = set(os.listdir(tmp))
    p = subprocess.run([binary, "diff", "-f", "raw", "-o", "-", good, good], capture_output=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    check(p.returncode == 0, "diff -o -: exit %d: %s" % (p.returncode, p.stderr))
    check(p.stdout.decode() == "main (a.py:1);f (a.py:2) 10 10\n", "diff -o - wrote %r to stdout" % p.stdout)
    check(set(os.listdir(tmp)) == before, "diff -o - wrote a file: %s" % sorted(set(os.listdir(tmp)) - before))
    check("standard output" in p.stderr.decode(), "diff -o -: the summary does not say standard output")
    log("ok   -o - writes to standard output")


if __name__ == "__main__":
    sys.exit(driver_main({"split": test_split, "hostile": test_hostile, "errors": test_errors}, "pyspy-diff-",
                         needs_python={"split", "hostile"}))
