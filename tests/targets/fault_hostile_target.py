# Fault-injection target (tests/integration/test_faults.py, case "hostile").
# Valid under Python 2.7 and 3.6-3.14 (3.14t too).
#
#   fault_hostile_target.py [LIFETIME] [ANY MORE ARGUMENTS, e.g. hostile text for the command line]
#
# Function names, file names and thread names made of hostile text: markup that would
# run script if a profile pasted it into SVG/HTML unescaped, quotes and '&', ';' and
# trailing numbers (the collapsed format's separators), terminal escape sequences and
# other control characters (C0, DEL, NUL, C1), lone surrogates (invalid UTF-8 once read
# raw; on 2.7 the bytes themselves are invalid UTF-8), and 100 KB strings.
#
# The functions are copies of hostile_link / hostile_sleep / hostile_spin whose code
# objects carry the hostile co_name (and co_qualname) and co_filename (code.replace on
# 3.8+, the CodeType constructor before). One thread per hostile name, named with it,
# runs the whole chain of hostile functions and sleeps at its end; one more thread
# ("hostile-busy") runs the chain and spins, so it shows up without --idle.
# Prints "READY {json}" (the names, as ASCII-escaped JSON) once every thread has
# entered its leaf, then waits until LIFETIME seconds pass.
import json
import os
import sys
import threading
import time
import types

LIFETIME = float(sys.argv[1]) if len(sys.argv) > 1 else 120.0
PY2 = sys.version_info[0] == 2


def text(s):
    """A native str: on 2.7 a byte string (code names must be str there), UTF-8 encoded."""
    return s.encode("utf-8") if PY2 else s


if PY2:
    SURROGATES = "bad utf8 \xff\xfe\xed\xa0\x80 \xc0\xaf end"  # invalid UTF-8 bytes
else:
    SURROGATES = "bad utf8 \udcff\ud800 x\udfff end"  # lone surrogates: no UTF-8 form

NAMES = [
    text(u"</text><script>document.documentElement.setAttribute('data-pwned','script')</script>"),
    text(u"<img src=x onerror=\"document.documentElement.setAttribute('data-pwned','img')\">"),
    text(u"]]><script>document.documentElement.setAttribute('data-pwned','cdata')</script><![CDATA["),
    text(u"q\"uote's & amp &amp; <lt> semi;colon 123"),
    text(u"ctl \x1b[31mRED\x1b[0m \x1b]0;TITLE\x07 cr\r lf\n tab\t bs\x08 del\x7f nul\x00 c1\u009b31m end"),
    SURROGATES,
    text(u"L") * 100000,
    text(u"\u00e9") * 50000,  # 100 KB of UTF-8
]

FILES = [
    text(u"/tmp/</text><script>document.documentElement.setAttribute('data-pwned','file')</script>.py"),
    text(u"/tmp/ctl\x1b[31m\x07\r\n.py"),
    SURROGATES + text(u".py"),
    text(u"/tmp/") + text(u"F") * 100000 + text(u".py"),
]

leaves_entered = threading.Semaphore(0)


def hostile_link(rest):
    return rest[0](rest[1:])


def hostile_sleep(rest):
    leaves_entered.release()
    time.sleep(LIFETIME + 60)


def hostile_spin(rest):
    leaves_entered.release()
    end = time.time() + LIFETIME + 60
    x = 0
    while time.time() < end:
        x += 1


def renamed(func, name, filename):
    code = func.__code__
    if hasattr(code, "replace"):  # 3.8+
        changes = {"co_name": name, "co_filename": filename}
        if hasattr(code, "co_qualname"):  # 3.11+
            changes["co_qualname"] = name
        new = code.replace(**changes)
    elif PY2:
        new = types.CodeType(code.co_argcount, code.co_nlocals, code.co_stacksize, code.co_flags, code.co_code,
                             code.co_consts, code.co_names, code.co_varnames, filename, name, code.co_firstlineno,
                             code.co_lnotab, code.co_freevars, code.co_cellvars)
    else:  # 3.6, 3.7
        new = types.CodeType(code.co_argcount, code.co_kwonlyargcount, code.co_nlocals, code.co_stacksize,
                             code.co_flags, code.co_code, code.co_consts, code.co_names, code.co_varnames, filename,
                             name, code.co_firstlineno, code.co_lnotab, code.co_freevars, code.co_cellvars)
    return types.FunctionType(new, func.__globals__, "renamed")


def chain(leaf):
    links = [renamed(hostile_link, name, FILES[i % len(FILES)]) for i, name in enumerate(NAMES)]
    return links + [renamed(leaf, NAMES[0], FILES[0])]


def run_chain(functions):
    functions[0](functions[1:])


def main():
    threads = []
    for name in NAMES:
        threads.append(threading.Thread(target=run_chain, args=(chain(hostile_sleep),), name=name))
    threads.append(threading.Thread(target=run_chain, args=(chain(hostile_spin),), name="hostile-busy"))
    for t in threads:
        t.daemon = True
        t.start()
    for _ in threads:
        leaves_entered.acquire()
    time.sleep(0.2)  # from release() into the sleep itself

    def show(s):
        return s.decode("utf-8", "replace") if PY2 else s.encode("utf-8", "surrogatepass").decode("utf-8", "replace")

    report = {"pid": os.getpid(), "names": [show(n)[:200] for n in NAMES], "files": [show(f)[:200] for f in FILES]}
    sys.stdout.write("READY " + json.dumps(report) + "\n")
    sys.stdout.flush()
    time.sleep(LIFETIME)
    os._exit(0)


if __name__ == "__main__":
    main()
