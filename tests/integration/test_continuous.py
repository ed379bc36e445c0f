#!/usr/bin/env python3
"""Integration tests of profiling that stays on (issue 17): `record --period`, SIGUSR1
flushes, --keep, and the thread filters of record and top, against live interpreters.

Run by ctest (tests/integration/CMakeLists.txt) with the system python3:

  test_continuous.py --binary BUILD/pyspy-cpp period PYTHON  # --period 2 over 7 s, hot function switching
  test_continuous.py --binary BUILD/pyspy-cpp flush PYTHON   # SIGUSR1 three times, then Ctrl-C; with --period
  test_continuous.py --binary BUILD/pyspy-cpp filter PYTHON  # --thread-name, --tid, --keep; top too

Exit code 0 = passed, 1 = failed, 77 = skipped (interpreter not installed).
"""

import glob
import os
import re
import signal
import subprocess
import sys
import time

from driver_common import Failure, ReadyTarget, check, driver_main, log, wait_sampling

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
PHASE_TARGET = os.path.join(ROOT, "tests", "targets", "phase_target.py")
THREADS_TARGET = os.path.join(ROOT, "tests", "targets", "threads_target.py")
COLLAPSED_LINE = re.compile(r"^(.+) (\d+)$")
# <stem>-<start>-<end>.<ext>, local times as %Y-%m-%dT%H-%M-%S.
STAMP = r"(\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d)"
PERIOD_NAME = re.compile(r"^p-%s-%s\.txt$" % (STAMP, STAMP))
SUMMARY = re.compile(r": (?:done|stopped|the target exited) after [\d.]+ s: (\d+) samples, (\d+) errors")


Target = ReadyTarget


class Record(object):
    """`pyspy-cpp record ARGS` in the background; stop() sends SIGINT and returns (exit
    code, stderr); leaving the block kills it if it still runs."""

    def __init__(self, binary, args):
        self.proc = subprocess.Popen([binary, "record"] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL)

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        _, err = self.proc.communicate(timeout=30)
        return self.proc.returncode, err.decode(errors="replace")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def parse_collapsed(path):
    """{stack (a tuple of frames): count} of a raw (collapsed) profile."""
    stacks = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            m = COLLAPSED_LINE.match(line.rstrip("\n"))
            check(m is not None, "%s:%d does not match the collapsed grammar: %r" % (path, number, line))
            key = tuple(m.group(1).split(";"))
            stacks[key] = stacks.get(key, 0) + int(m.group(2))
    return stacks


def samples_in(stacks, function):
    """Samples whose stack contains a frame of `function`."""
    return sum(count for frames, count in stacks.items() if any(f.startswith(function + " (") for f in frames))


def summary_samples(err):
    m = SUMMARY.search(err)
    check(m is not None, "no summary line in stderr:\n%s" % err)
    return int(m.group(1)), int(m.group(2))


def epoch(stamp):
    """A file name's local time stamp as Unix time (its second, floored)."""
    return time.mktime(time.strptime(stamp, "%Y-%m-%dT%H-%M-%S"))


def run(argv, timeout=60):
    try:
        p = subprocess.run(argv, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise Failure("%s did not finish within %d s" % (" ".join(argv), timeout))
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


# --- the cases -------------------------------------------------------------------------

def test_period(binary, python, tmp):
    """--period 2 over 7 s: three complete periods and the partial fourth, named by their
    windows, each parsed back; their samples add up to the summary's total; the target
    turns from first_phase to second_phase 3.5 s after its READY line, and the files
    wholly before that hold only first_phase, those wholly after only second_phase."""
    with Target([python, PHASE_TARGET, "3.5", "60"]) as t:
        out = os.path.join(tmp, "p.txt")
        rc, _, err = run([binary, "record", "--pid", str(t.pid), "--period", "2", "-d", "7", "--idle", "-f", "raw",
                          "-o", out])
        check(rc == 0, "record --period exited %d: %s" % (rc, err))
        line = t.line(10) or ""
        check(line.startswith("SWITCH "), "the target did not say when it switched: %r" % line)
        switch = float(line.split()[1])
    check(not os.path.exists(out), "--period also wrote the plain output name %s" % out)
    names = sorted(os.path.basename(p) for p in glob.glob(os.path.join(tmp, "p-*")))
    check(len(names) == 4, "expected 4 files (3 periods of 2 s and the partial fourth), got %s; stderr: %s"
          % (names, err))
    check(re.search(r"wrote 4 raw profiles, one per 2 s", err), "the summary does not count 4 files:\n%s" % err)
    windows = []
    for name in names:
        m = PERIOD_NAME.match(name)
        check(m is not None, "file name %r is not p-<start>-<end>.txt" % name)
        windows.append((epoch(m.group(1)), epoch(m.group(2))))
    for (start, end), name in zip(windows, names):
        check(start <= end, "%s: its window ends before it starts" % name)
    for (_, end), (start, _), name in zip(windows, windows[1:], names[1:]):
        check(start == end, "%s does not start where the previous period ended" % name)
    lengths = [end - start for start, end in windows]
    check(all(1 <= length <= 3 for length in lengths[:3]), "the three complete periods are not ~2 s: %s" % lengths)
    check(lengths[3] <= 2, "the last, partial period is longer than 1 s: %s" % lengths)

    total, errors = summary_samples(err)
    counted, before, after = 0, 0, 0
    for (start, end), name in zip(windows, names):
        stacks = parse_collapsed(os.path.join(tmp, name))
        count = sum(stacks.values())
        check(count > 0, "%s holds no samples" % name)
        counted += count
        first, second = samples_in(stacks, "first_phase"), samples_in(stacks, "second_phase")
        # A name's stamps are floored to the second: [start, end + 1) holds the window.
        if end + 1 <= switch:
            before += 1
            check(first >= 0.9 * count and second == 0,
                  "%s (before the switch): first_phase %d, second_phase %d of %d" % (name, first, second, count))
        elif start >= switch:
            after += 1
            check(second >= 0.9 * count and first == 0,
                  "%s (after the switch): first_phase %d, second_phase %d of %d" % (name, first, second, count))
        log("%s: %d samples, first_phase %d, second_phase %d" % (name, count, first, second))
    # One thread, --idle: every tick is one sample of it.
    check(counted == total, "the files hold %d samples, the summary says %d" % (counted, total))
    check(before >= 1 and after >= 1, "expected files wholly before and after the switch (at %.1f): windows %s"
          % (switch, windows))
    log("period: ok (4 files, %d samples, %d errors, %d before / %d after the switch)" % (total, errors, before, after))


def wait_replaced(path, old_inode, timeout=15):
    """Waits until `path` exists as a file other than `old_inode` (an atomic rename)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            inode = os.stat(path).st_ino
            if inode != old_inode:
                return inode
        except OSError:
            pass
        time.sleep(0.01)
    raise Failure("%s was not written within %d s of SIGUSR1" % (path, timeout))


def is_superset(new, old):
    return all(new.get(stack, 0) >= count for stack, count in old.items())


def test_flush(binary, python, tmp):
    """SIGUSR1 three times: three complete files, each a superset of the last; record goes
    on and, on Ctrl-C, writes a superset of the third and says it flushed three times."""
    with Target([python, PHASE_TARGET, "1000", "60"]) as t:
        out = os.path.join(tmp, "flush.txt")
        with Record(binary, ["--pid", str(t.pid), "-d", "50", "--idle", "-f", "raw", "-o", out]) as record:
            proc = record.proc
            wait_sampling(proc, t.pid, "record")
            inode, flushed = None, []
            for _ in range(3):
                before = time.time()
                proc.send_signal(signal.SIGUSR1)
                inode = wait_replaced(out, inode)
                stacks = parse_collapsed(out)
                check(sum(stacks.values()) > 0, "flush %d holds no samples" % (len(flushed) + 1))
                if flushed:
                    check(is_superset(stacks, flushed[-1]), "flush %d is not a superset of flush %d"
                          % (len(flushed) + 1, len(flushed)))
                flushed.append(stacks)
                log("flush %d: %d samples, written %.0f ms after SIGUSR1"
                    % (len(flushed), sum(stacks.values()), 1000 * (time.time() - before)))
                # Let some samples accumulate before the next one (at 100 Hz: ~30).
                time.sleep(0.3)
            check(proc.poll() is None, "record ended after SIGUSR1 (exit %s)" % proc.poll())
            rc, err = record.stop()
    check(rc == 0, "record exited %d after SIGINT: %s" % (rc, err))
    check("3 written on SIGUSR1" in err, "the summary does not count the 3 flushes:\n%s" % err)
    final = parse_collapsed(out)
    check(is_superset(final, flushed[-1]), "the final profile is not a superset of the third flush")
    check(sum(final.values()) > sum(flushed[-1].values()), "the final profile has no more samples than the last flush")
    totals = [sum(s.values()) for s in flushed] + [sum(final.values())]
    check(totals == sorted(totals), "flushed totals do not grow: %s" % totals)
    log("flush: ok (totals %s)" % totals)
    flush_period(binary, python, tmp)


def wait_files(pattern, count, proc, timeout=15):
    """Waits until `count` files match `pattern`; returns them, sorted."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        files = sorted(glob.glob(pattern))
        if len(files) >= count:
            return files
        check(proc.poll() is None, "record ended (exit %s) before writing %d files" % (proc.poll(), count))
        time.sleep(0.01)
    raise Failure("fewer than %d files matched %s within %d s" % (count, pattern, timeout))


def flush_period(binary, python, tmp):
    """With --period, SIGUSR1 ends the current period early (one more file) and Ctrl-C
    writes the last, partial one: three files whose samples add up to the total."""
    with Target([python, PHASE_TARGET, "1000", "60"]) as t:
        pattern = os.path.join(tmp, "q-*.txt")
        with Record(binary, ["--pid", str(t.pid), "--period", "1", "-d", "50", "--idle", "-f", "raw", "-o",
                             os.path.join(tmp, "q.txt")]) as record:
            wait_files(pattern, 1, record.proc)  # the first full period
            record.proc.send_signal(signal.SIGUSR1)
            wait_files(pattern, 2, record.proc)  # the second, cut short
            # The last period must hold a sample to be written (an empty one is not: it
            # would only repeat the end of the previous). At 100 Hz, 0.2 s is 20 ticks; a
            # Ctrl-C right after the cut (as this test once sent it) finds none.
            time.sleep(0.2)
            rc, err = record.stop()
    check(rc == 0, "record --period exited %d after SIGINT: %s" % (rc, err))
    files = sorted(glob.glob(pattern))
    check(len(files) == 3, "--period 1, SIGUSR1, then Ctrl-C: expected 3 files, got %s; stderr: %s" % (files, err))
    check(re.search(r"stopped after .*wrote 3 raw profiles, one per 1 s.*1 written on SIGUSR1", err),
          "the summary does not say 3 files, 1 on SIGUSR1:\n%s" % err)
    total, _ = summary_samples(err)
    counts = [sum(parse_collapsed(f).values()) for f in files]
    check(sum(counts) == total, "the files hold %s samples, the summary says %d" % (counts, total))
    log("flush --period: ok (samples per file %s)" % counts)


def thread_roots(stacks):
    """{root frame (the thread frame under -t): samples}."""
    roots = {}
    for frames, count in stacks.items():
        roots[frames[0]] = roots.get(frames[0], 0) + count
    return roots


def test_filter(binary, python, tmp):
    """On a 3-thread target (MainThread and sleeper idle, busy running): --thread-name keeps
    only the named thread (with --period 1 --keep 2, only the newest two files stay),
    --tid only the one with that OS id, top --thread-name only its frames; a bad regex is
    a usage error (exit 2) in one line."""
    with Target([python, THREADS_TARGET, "120"]) as t:
        threads = t.ready["threads"]
        sleeper_tid, busy_tid = threads["sleeper"].get("native_id"), threads["busy"].get("native_id")

        out = os.path.join(tmp, "p.txt")
        rc, _, err = run([binary, "record", "--pid", str(t.pid), "--thread-name", "^slee", "--idle", "-t", "-f", "raw",
                          "--period", "1", "--keep", "2", "-d", "2.5", "-o", out])
        check(rc == 0, "record --thread-name exited %d: %s" % (rc, err))
        files = sorted(glob.glob(os.path.join(tmp, "p-*.txt")))
        check(len(files) == 2, "--keep 2: expected 2 files left, got %s; stderr: %s" % (files, err))
        check(re.search(r"wrote 3 raw profiles, one per 1 s, .*--keep 2: deleted the 1 oldest", err),
              "the summary does not say 3 written, 1 deleted:\n%s" % err)
        for path in files:
            stacks = parse_collapsed(path)
            roots = thread_roots(stacks)
            check(roots and all('"sleeper"' in root for root in roots),
                  "--thread-name ^slee: threads other than sleeper in %s: %s" % (path, sorted(roots)))
            if sleeper_tid:
                check(all(root.startswith("Thread %d " % sleeper_tid) for root in roots),
                      "--thread-name ^slee: not sleeper's OS id %d: %s" % (sleeper_tid, sorted(roots)))
            check(samples_in(stacks, "sleeper_inner") == sum(stacks.values()),
                  "sleeper samples outside sleeper_inner in %s" % path)
        log("filter --thread-name: ok (%s)" % ", ".join(os.path.basename(f) for f in files))

        if busy_tid:
            out = os.path.join(tmp, "tid.txt")
            rc, _, err = run([binary, "record", "--pid", str(t.pid), "--tid", str(busy_tid), "--idle", "-t", "-f",
                              "raw", "-d", "1.5", "-o", out])
            check(rc == 0, "record --tid exited %d: %s" % (rc, err))
            stacks = parse_collapsed(out)
            roots = thread_roots(stacks)
            check(list(roots) and all(root.startswith("Thread %d " % busy_tid) for root in roots),
                  "--tid %d: other threads recorded: %s" % (busy_tid, sorted(roots)))
            check(samples_in(stacks, "busy_inner") > 0, "--tid %d: busy_inner never seen" % busy_tid)
            log("filter --tid: ok (%d samples of busy)" % sum(stacks.values()))
        else:
            log("filter --tid: not checked: the target could not tell busy's OS thread id")

        rc, screen, err = run([binary, "top", "--iterations", "1", "--delay", "0.5", "--idle", "--thread-name",
                               "sleeper", "--pid", str(t.pid)])
        check(rc == 0, "top --thread-name exited %d: %s" % (rc, err))
        check("sleeper_inner" in screen, "top --thread-name sleeper does not show sleeper_inner:\n%s" % screen)
        for other in ("busy_inner", "wait_forever"):
            check(other not in screen, "top --thread-name sleeper shows %s:\n%s" % (other, screen))
        log("filter top: ok")

        rc, _, err = run([binary, "record", "--pid", str(t.pid), "--thread-name", "(", "-d", "1", "-o",
                          os.path.join(tmp, "bad.txt")])
        check(rc == 2, "a bad --thread-name regex exited %d, expected 2 (usage)" % rc)
        check(len(err.strip().split("\n")) == 1 and "--thread-name" in err, "a bad regex: not one line: %r" % err)

        # An output directory that does not exist fails at once (exit 9, I/O), not after
        # the recording (and not as one warning per period).
        start = time.time()
        rc, _, err = run([binary, "record", "--pid", str(t.pid), "--period", "1", "-d", "30", "-o",
                          os.path.join(tmp, "no-such-dir", "x.txt")])
        check(rc == 9, "record into a missing directory exited %d, expected 9: %s" % (rc, err))
        check(len(err.strip().split("\n")) == 1 and "no-such-dir" in err, "a missing directory: not one line: %r" % err)
        check(time.time() - start < 10, "record into a missing directory took %.1f s to fail" % (time.time() - start))
    log("filter: ok")


if __name__ == "__main__":
    sys.exit(driver_main({"period": test_period, "flush": test_flush, "filter": test_filter}, "pyspy-continuous-"))
