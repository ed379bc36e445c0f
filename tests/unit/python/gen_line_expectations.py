# Prints, for every code object of a varied source (and of a few stdlib modules),
# its first line, its raw line table and the line the interpreter itself gives
# every bytecode offset. Read by test_line_table.cpp. Python 2.7-compatible syntax.
#
# Output:
#   V <major> <minor>
#   C <firstlineno> <table hex or ->
#   O <offset>=<line or -> ...        (one line per code object, after its C line)
import binascii
import dis
import os
import sys
import types


def varied_source():
    parts = []
    parts.append("import os\n\n\n")
    parts.append("def decorator(f):\n    return f\n\n")
    # Decorators: the code starts at the decorator line, the def comes later.
    parts.append("@decorator\n@decorator\ndef decorated(a,\n              b=1):\n    return a + b\n\n")
    # A long function with big forward line jumps (> 127 and > 255 lines of nothing).
    body = ["def long_function(x):\n", "    total = 0\n"]
    for i in range(60):
        body.append("    total += x * %d\n" % i)
        if i % 7 == 0:
            body.append("    # a comment\n\n")
    body.append("    y = (x +\n")
    body.append("\n" * 130)
    body.append("         1)\n")
    body.append("    z = [y,\n" + "\n" * 300 + "         y]\n")
    body.append("\n" * 600)
    body.append("    for i in range(3):\n")
    body.append("        total += i\n")
    body.append("        while total > 100:\n")
    body.append("            total -= 1\n")
    body.append("    return total, z\n\n")
    parts.append("".join(body))
    # A single line with a lot of bytecode (address increments > 255 without a new line).
    parts.append("def wide_line(a):\n    return [" + ", ".join("a + %d" % i for i in range(200)) + "]\n\n")
    # Multi-line expressions whose bytecode goes back to earlier lines.
    parts.append(
        "def backwards(a, b):\n"
        "    result = call_something(\n"
        "        a,\n"
        "        b,\n"
        "        key=a\n"
        "    ) if a else (\n"
        "        b)\n"
        "    return result\n\n"
    )
    parts.append("def call_something(*args, **kwargs):\n    return args\n\n")
    parts.append(
        "def generator(n):\n"
        "    i = 0\n"
        "    while i < n:\n"
        "        yield i\n"
        "\n"
        "        i += 1\n"
        "    squares = [v * v for v in range(n)\n"
        "               if v % 2]\n"
        "    mapping = dict((k, v) for k, v in zip(range(n),\n"
        "                                          range(n)))\n"
        "    f = lambda q: (q +\n"
        "                   1)\n"
        "    yield f(len(squares) + len(mapping))\n\n"
    )
    parts.append(
        "class Klass(object):\n"
        "    attribute = 1\n"
        "\n"
        "    def method(self):\n"
        "        try:\n"
        "            return self.attribute\n"
        "        except AttributeError:\n"
        "            return None\n"
        "        finally:\n"
        "            pass\n"
        "\n"
        "    @staticmethod\n"
        "    def static(\n"
        "            a):\n"
        "        with open(os.devnull) as f:\n"
        "            for line in f:\n"
        "                if line:\n"
        "                    continue\n"
        "                else:\n"
        "                    break\n"
        "        return a\n\n"
    )
    # A function far down the file, with a negative jump of many lines in one step.
    parts.append("\n" * 400)
    parts.append(
        "def far(a):\n"
        "    x = [a,\n" + "\n" * 200 + "         a]\n"
        "    return (x\n" + "\n" * 170 + "            )\n\n"
    )
    return "".join(parts)


def walk(code, out):
    yield_list = [code]
    while yield_list:
        c = yield_list.pop(0)
        out.append(c)
        for const in c.co_consts:
            if isinstance(const, types.CodeType):
                yield_list.append(const)


def lines_by_offset(code):
    """The interpreter's own line for every offset that starts an instruction unit."""
    size = len(code.co_code)
    result = []
    if hasattr(code, "co_lines"):  # 3.10+: PEP 626 ranges
        ranges = list(code.co_lines())
        positions = list(code.co_positions()) if hasattr(code, "co_positions") else None
        for offset in range(0, size, 2):
            line = None
            for start, end, ln in ranges:
                if start <= offset < end:
                    line = ln
                    break
            if positions is not None and positions[offset // 2][0] != line:
                raise SystemExit("co_positions and co_lines disagree at %d in %r" % (offset, code))
            result.append((offset, line))
    else:  # 2.7 - 3.9: the line starts from the lnotab, as the interpreter applies them
        starts = list(dis.findlinestarts(code))
        for offset in range(size):
            line = code.co_firstlineno
            for start, ln in starts:
                if start <= offset:
                    line = ln
                else:
                    break
            result.append((offset, line))
    return result


def table_of(code):
    if sys.version_info >= (3, 10):
        return code.co_linetable
    return code.co_lnotab


def main():
    sources = [("<varied>", varied_source())]
    for module_name in ("os", "inspect", "argparse"):
        module = __import__(module_name)
        path = module.__file__
        if path.endswith((".pyc", ".pyo")):
            path = path[:-1]
        with open(path) as f:
            sources.append((path, f.read()))
    out = sys.stdout
    out.write("V %d %d\n" % sys.version_info[:2])
    for name, source in sources:
        codes = []
        walk(compile(source, name, "exec"), codes)
        for code in codes:
            table = table_of(code)
            hexed = binascii.hexlify(table).decode("ascii") if table else "-"
            out.write("C %d %s\n" % (code.co_firstlineno, hexed))
            pairs = lines_by_offset(code)
            out.write("O " + " ".join("%d=%s" % (o, "-" if ln is None else ln) for o, ln in pairs) + "\n")
    out.write("END\n")


main()
