# -*- coding: utf-8 -*-
# A target for test_objects.cpp: creates objects, prints their addresses (id) and the
# values the object reader must find there, then blocks until killed.
# Python 2.7-compatible syntax. Output lines (all text values in UTF-8 hex):
#   VERSION <major> <minor> <1 if free-threaded (Py_GIL_DISABLED) else 0>
#   TYPES <str> <unicode or 0> <bytes> <int> <long or 0> <dict> <module>
#   STR <id> <utf8 hex>            INT <id> <value>           BYTES <id> <hex>
#   DICT <id> <count>  followed by  ITEM <key id> <value id> <key utf8 hex or ->
#   ATTR <object id> <name utf8 hex> <value id or 0>
#   MODULES <id of sys.modules>    THREAD <ident> <name utf8 hex> <attribute>
#   READY
from __future__ import print_function

import binascii
import sys
import threading

PY2 = sys.version_info[0] == 2
if PY2:
    text_type = unicode  # noqa: F821
    unichr_ = unichr  # noqa: F821
else:
    text_type = str
    unichr_ = chr

keep = []  # everything printed stays alive


def hexed(data):
    return binascii.hexlify(data).decode("ascii") if data else "-"


def utf8_hex(value):
    if isinstance(value, bytes) and PY2:
        return hexed(value)
    # Lone surrogates come out as U+FFFD.
    clean = u"".join(u"\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in value)
    return hexed(clean.encode("utf-8"))


def out(*parts):
    print(*parts)


def emit_str(value, expected=None):
    keep.append(value)
    out("STR", id(value), utf8_hex(expected if expected is not None else value))


def emit_int(value):
    keep.append(value)
    out("INT", id(value), value)


def emit_dict(d):
    keep.append(d)
    out("DICT", id(d), len(d))
    for k, v in d.items():
        name = utf8_hex(k) if isinstance(k, (str, text_type)) else "-"
        out("ITEM", id(k), id(v), name)


def emit_attrs(obj, names):
    keep.append(obj)
    for name in names:
        value = getattr(obj, name, None)
        out("ATTR", id(obj), utf8_hex(name), id(value) if hasattr(obj, name) else 0)


out("VERSION", sys.version_info[0], sys.version_info[1],
    1 if __import__("sysconfig").get_config_var("Py_GIL_DISABLED") else 0)
out("TYPES", id(str), id(text_type) if PY2 else 0, id(bytes), id(int), id(long) if PY2 else 0,  # noqa: F821
    id(dict), id(type(sys)))

# --- strings ---
emit_str(u"hello".encode("ascii").decode("ascii") if not PY2 else "hello")
emit_str(u"".join([u"", u""]) if not PY2 else "".join(["", ""]))
latin1 = u"caf" + unichr_(0xE9) + u" " + unichr_(0xFF)
bmp = u"\u65e5\u672c\u8a9e \u20ac"
astral = u"a" + (u"\U0001F600" if not PY2 or sys.maxunicode > 0xFFFF else u"\ud83d\ude00") + u"z"
long_ascii = (u"x" * 5000) if not PY2 else "x" * 5000
for s in (latin1, bmp, astral):
    emit_str(s)
keep.append(long_ascii)
out("STR", id(long_ascii), utf8_hex(long_ascii[:4096]) + hexed(b"..."))
if PY2:
    emit_str("worker-\xc3\xb1")  # a 2.7 str holding UTF-8
    emit_str(u"plain ascii unicode")
    emit_str("bad \xff utf-8", u"bad \ufffd utf-8")
else:
    emit_str(u"lone \ud800 surrogate")

    class StrSubclass(str):  # subclass instances are legacy (non-compact) strings
        pass

    emit_str(StrSubclass(u"subclassed"))
    emit_str(StrSubclass(bmp))

# --- bytes ---
for b in (b"\x00\xffabc", b""):
    keep.append(b)
    out("BYTES", id(b), hexed(b))

# --- ints ---
for value in (0, -1, 1, 2 ** 40, -(2 ** 62), 2 ** 63 - 1, -(2 ** 63), 12345678901234):
    emit_int(value)
if PY2:
    emit_int(long(2 ** 40))  # noqa: F821
    emit_int(long(-7))  # noqa: F821
    emit_int(long(0))  # noqa: F821
big = 2 ** 64
keep.append(big)
out("BIGINT", id(big))

# --- dicts ---
str_keys = dict(("key%d" % i, [i]) for i in range(40))
str_keys[u"n\u00f1"] = [99]
emit_dict(str_keys)
emit_dict(dict((i * 1000003, "v%d" % i) for i in range(20)))
deleted = dict(("k%d" % i, i) for i in range(10))
for i in range(0, 10, 3):
    del deleted["k%d" % i]
emit_dict(deleted)
emit_dict({})


# --- instances ---
class Plain(object):
    def __init__(self):
        self.alpha = "a-value"
        self.beta = 42


plain = Plain()
emit_attrs(plain, ["alpha", "beta", "missing"])

materialized = Plain()
materialized.__dict__["gamma"] = "g-value"  # the instance dict is made real
emit_attrs(materialized, ["alpha", "beta", "gamma", "missing"])

grown = Plain()
for i in range(40):  # many attributes: the shared keys give up
    setattr(grown, "attr%d" % i, "value%d" % i)
emit_attrs(grown, ["alpha", "beta", "attr0", "attr39", "missing"])

if PY2:
    class OldStyle:
        pass

    old = OldStyle()
    old.name = "old-style"
    emit_attrs(old, ["name", "missing"])

# --- a named, blocked thread ---
stop = threading.Event()
worker_name = "worker-\xc3\xb1" if PY2 else u"worker-\u00f1"
worker = threading.Thread(target=stop.wait, name=worker_name)
worker.daemon = True
worker.start()
attribute = "_Thread__name" if PY2 else "_name"
out("MODULES", id(sys.modules))
out("THREAD", worker.ident, utf8_hex(worker_name), attribute)
out("THREAD", threading.current_thread().ident, utf8_hex("MainThread"), attribute)
out("READY")
sys.stdout.flush()
stop.wait()
