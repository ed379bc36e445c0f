"""Shared by the benchmark scripts: the interpreter matrix (tests/interpreters.txt)."""
import os

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def interpreters():
    """(label, path) for every line of tests/interpreters.txt, $PYENV_ROOT expanded."""
    pyenv = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    with open(os.path.join(ROOT, "tests", "interpreters.txt")) as f:
        for line in f:
            if line.strip() and not line.startswith("#"):
                label, path = line.split(None, 1)
                yield label, path.strip().replace("$PYENV_ROOT", pyenv)
