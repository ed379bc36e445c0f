# Integration test target for `pyspy-cpp dump --locals` (tests/integration/test_locals.py).
# Valid under Python 2.7 and 3.6-3.14 (3.14t too). The main thread goes through `holder`, whose
# arguments and locals hold one value of each type dump --locals shows, then
# `cell_holder`, whose variables `captured` and `counter` (an argument, rebound) are
# cell variables of the closure `reader` it calls, which parks with them as free
# variables, and writes
#   READY {"pid": ..., "function": "holder", "locals": {name: {"repr": ..., "short": ...,
#          "long": ...}}, "frames": [{"function": ..., "locals": {...}}, ...]}
# where "locals" are holder's and "frames" has holder, cell_holder and reader (as
# dump names them: co_qualname on 3.11+), "repr" is Python's own repr() of the value
# and "short"/"long" are what `-l` and `-ll` must print for it, built from repr() of
# the value and its elements by the documented rules (docs/dump-json.md: bounded
# values). It exits by itself after LIFETIME seconds (argv[1], default 60).
import json
import os
import sys
import time
import types

LIFETIME = float(sys.argv[1]) if len(sys.argv) > 1 else 60.0

SHORT = {"chars": 80, "items": 4}   # ReprLimits::forLevel(1)
LONG = {"chars": 1000, "items": 32}  # ReprLimits::forLevel(2)
PY2 = sys.version_info[0] == 2


class Thing(object):
    pass


def cut(text, chars):
    return text if len(text) <= chars else text[:chars] + "..."


def expected(value, limits):
    """What dump must print for `value` (elements are simple values here)."""
    chars, items = limits["chars"], limits["items"]
    if isinstance(value, (set, frozenset)):
        assert len(value) <= items, "only small sets: their element order is the table's"
        return cut(repr(value), chars)
    if isinstance(value, (tuple, list)):
        if len(value) <= items:
            return cut(repr(value), chars)
        shown = ", ".join(repr(e) for e in value[:items])
        text = ("(%s, ...)" if isinstance(value, tuple) else "[%s, ...]") % shown
        return cut(text + " (len %d)" % len(value), chars)
    if isinstance(value, dict):
        pairs = list(value.items())
        if len(pairs) <= items:
            return cut(repr(value), chars)
        shown = ", ".join("%r: %r" % kv for kv in pairs[:items])
        return cut("{%s, ...} (len %d)" % (shown, len(pairs)), chars)
    if isinstance(value, Thing):
        return "<Thing object at 0x%x>" % id(value)
    if isinstance(value, types.FunctionType):
        return "<function object at 0x%x>" % id(value)
    return cut(repr(value), chars)


def holder(number, text, flag=True, *rest, **options):
    nothing = None
    no = False
    small = -7
    zero = 0
    wide = 2 ** 62
    lowest = -(2 ** 63)
    big = 2 ** 100
    negative_big = -(3 ** 70)
    half = 3.25
    tenth = 0.1
    whole = 2.0
    huge = 1e300
    quote = "it's"
    escapes = "tab\there\nnew"
    data = b"\x00ab\xff"
    long_text = "x" * 200
    empty_tuple = ()
    one_tuple = (1,)
    pair = (1, "a")
    numbers = list(range(10))
    mixed = [None, 2.5, "s"]
    mapping = {"key": 1}
    many = dict(("k%d" % i, i) for i in range(6))
    members = set([3])
    empty_set = set()
    frozen = frozenset([7])
    thing = Thing()
    collect(locals())
    cell_holder(41, "kept")


def cell_holder(counter, kept):
    captured = ["shared", 2]
    counter += 1  # a captured argument, rebound: its cell holds 42 (2.7 keeps 41 in the argument's slot)
    plain = "not captured"

    def reader(step):
        own = step * 2
        if LIFETIME < 0:
            return later  # makes `later` a cell variable of cell_holder, still empty at READY
        collect(locals())  # step, own and the free variables captured and counter
        announce()
        time.sleep(LIFETIME)
        return captured, counter

    collect(locals())  # counter, kept, captured, plain, reader: not `later`, still unbound
    reader(5)
    later = None


FRAMES = []  # [(function as dump names it, its locals)], outermost first


def collect(names):
    code = sys._getframe(1).f_code
    FRAMES.append((getattr(code, "co_qualname", code.co_name), dict(names)))


def report(names):
    out = {}
    for name, value in names.items():
        out[name] = {"repr": repr(value), "short": expected(value, SHORT), "long": expected(value, LONG)}
    return out


def announce():
    frames = [{"function": function, "locals": report(names)} for function, names in FRAMES]
    document = {"pid": os.getpid(), "function": frames[0]["function"], "locals": frames[0]["locals"],
                "frames": frames}
    sys.stdout.write("READY " + json.dumps(document) + "\n")
    sys.stdout.flush()


holder(42, "hello", False, "extra", option=1)
