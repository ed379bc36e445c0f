#!/usr/bin/env python3
"""Makes the seed corpora of the fuzz targets (tests/fuzz/corpus/<target>/).

  frame_walker  memory images of tests/targets/threads_target.py, one per interpreter:
                make_corpus (built in build-fuzz) pauses the target, walks every
                thread's stack and saves every byte the walk read, plus the frames.
  objects       memory images of tests/unit/python/object_target.py: str, int, bytes,
                dict and instance objects read by every ObjectReader call.
  line_table    real line tables (co_lnotab / co_linetable) of each interpreter.
  elf           small ELF files (an executable with and without .symtab, a shared
                library) compiled with cc.

Usage: tests/fuzz/snapshot_memory.py [--make-corpus PATH] [--only KIND] [LABEL...]
LABELs are from the interpreter matrix (build/tests/interpreters.txt, written when build/
is configured, else tests/interpreters.txt; default: 2.7 3.8 3.10 3.11 3.12 3.13); an
interpreter that is not installed is skipped. Run as root (ptrace).
"""
import argparse
import binascii
import os
import struct
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORPUS = os.path.join(ROOT, "tests", "fuzz", "corpus")
DEFAULT_LABELS = ["2.7", "3.8", "3.10", "3.11", "3.12", "3.13"]


def interpreters():
    pyenv = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    out = {}
    matrix = os.path.join(ROOT, "build", "tests", "interpreters.txt")  # with /opt/cpython, PYSPY_TEST_PYTHONS
    if not os.path.isfile(matrix):
        matrix = os.path.join(ROOT, "tests", "interpreters.txt")
    with open(matrix) as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            label, path = line.split(None, 1)
            out[label] = path.strip().replace("$PYENV_ROOT", pyenv)
    return out


def start(python, script, ready):
    proc = subprocess.Popen([python, script] + (["60"] if "threads_target" in script else []),
                            stdout=subprocess.PIPE, universal_newlines=True)
    lines = []
    for line in proc.stdout:
        lines.append(line.rstrip("\n"))
        if line.startswith(ready):
            return proc, lines
    proc.kill()
    raise RuntimeError("%s %s did not get ready" % (python, script))


def make(tool, args):
    subprocess.check_call([tool] + args)


def frames(tool, label, python):
    proc, _ = start(python, os.path.join(ROOT, "tests", "targets", "threads_target.py"), "READY")
    try:
        make(tool, ["frames", str(proc.pid), os.path.join(CORPUS, "frame_walker", "py%s.img" % label)])
    finally:
        proc.kill()
        proc.wait()


def objects(tool, label, python):
    proc, lines = start(python, os.path.join(ROOT, "tests", "unit", "python", "object_target.py"), "READY")
    groups = {"str": [], "int": [], "bytes": [], "dict": [], "attr": []}
    for line in lines:
        words = line.split()
        kind = words[0] if words else ""
        if kind == "STR" and len(words[2]) < 2000:  # not the 5000-character string: keep seeds small
            groups["str"].append(words[1])
        elif kind in ("INT", "BIGINT"):
            groups["int"].append(words[1])
        elif kind == "BYTES":
            groups["bytes"].append(words[1])
        elif kind == "DICT":
            groups["dict"].append(words[1])
        elif kind == "ATTR" and words[1] not in groups["attr"]:
            groups["attr"].append(words[1])
    try:
        for name, ids in sorted(groups.items()):
            if ids:
                make(tool, ["objects", str(proc.pid), os.path.join(CORPUS, "objects", "py%s-%s.img" % (label, name))]
                     + ids)
    finally:
        proc.kill()
        proc.wait()


LINE_TABLE_SNIPPET = r'''
import binascii, sys
def sample(a, b):
    x = a
    if x:
        y = [i
             for i in range(b)]
    else:
        y = None

    try:
        return y
    finally:
        x = 0
v = sys.version_info[:2]
fmt = 0 if v < (3, 0) else 1 if v < (3, 10) else 2 if v == (3, 10) else 3
for code in (sample.__code__, compile(open(sys.argv[1]).read(), "t", "exec")):
    table = code.co_lnotab if v < (3, 10) else code.co_linetable
    print("%d %d %s" % (fmt, code.co_firstlineno, binascii.hexlify(table).decode()))
'''


def line_tables(label, python):
    os.makedirs(os.path.join(CORPUS, "line_table"), exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".py") as f:
        f.write(LINE_TABLE_SNIPPET)
        f.flush()
        out = subprocess.check_output([python, f.name, os.path.join(ROOT, "tests", "targets", "threads_target.py")],
                                      universal_newlines=True)
    for i, line in enumerate(out.split("\n")):
        if not line.strip():
            continue
        fmt, first, table = line.split(" ") if line.count(" ") == 2 else (line.split()[0], line.split()[1], "")
        data = struct.pack("<Bhh", int(fmt), int(first), 8) + binascii.unhexlify(table)
        with open(os.path.join(CORPUS, "line_table", "py%s-%d.bin" % (label, i)), "wb") as out_file:
            out_file.write(data)


ELF_SOURCE = r'''
int _PyRuntime[64] = {1};
const char version[] = "3.11.7";
int x;
const char *Py_GetVersion(void) { return version; }
int main(void) { return _PyRuntime[0] + x; }
'''


def elf_files():
    directory = os.path.join(CORPUS, "elf")
    os.makedirs(directory, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        source = os.path.join(tmp, "t.c")
        with open(source, "w") as f:
            f.write(ELF_SOURCE)
        builds = {"exe-pie": ["-Os", "-pie", "-fPIE"], "exe-nopie-stripped": ["-Os", "-no-pie", "-s"],
                  "lib.so": ["-Os", "-shared", "-fPIC"]}
        for name, flags in sorted(builds.items()):
            subprocess.check_call(["cc"] + flags + ["-o", os.path.join(directory, name), source])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--make-corpus", default=os.path.join(ROOT, "build-fuzz", "tests", "fuzz", "make_corpus"))
    parser.add_argument("--only", choices=["frame_walker", "objects", "line_table", "elf"])
    parser.add_argument("labels", nargs="*", default=DEFAULT_LABELS)
    args = parser.parse_args()
    for kind in ("frame_walker", "objects"):
        os.makedirs(os.path.join(CORPUS, kind), exist_ok=True)
    known = interpreters()
    if args.only in (None, "elf"):
        elf_files()
    for label in args.labels:
        python = known.get(label)
        if python is None or not os.path.exists(python):
            print("snapshot_memory: python %s not installed, skipped" % label)
            continue
        if args.only in (None, "line_table"):
            line_tables(label, python)
        if args.only in (None, "frame_walker"):
            frames(args.make_corpus, label, python)
        if args.only in (None, "objects"):
            objects(args.make_corpus, label, python)
    return 0


if __name__ == "__main__":
    sys.exit(main())
