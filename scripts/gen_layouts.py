#!/usr/bin/env python3
"""Generate src/python/layouts_generated.cpp: one PyLayout table per CPython version.

For every supported version that is installed (pyenv: $(pyenv root)/versions/X.Y.Z),
this writes a small C probe that includes that version's own headers, prints
offsetof/sizeof/enum/flag values for every PyLayout field the version has, compiles
it with gcc against the version's include directory, runs it, and emits the C++
tables. No number in the output is typed by hand. See docs/layouts.md.

Usage:
    python3 scripts/gen_layouts.py            # rewrite src/python/layouts_generated.cpp
    python3 scripts/gen_layouts.py --check    # exit 1 (with a diff) if the file is stale
    python3 scripts/gen_layouts.py --print 3.12   # show the probe's raw output for one version

A supported version that is not installed keeps the block the existing file has for
it (a note goes to stderr); a version that is neither installed nor in the file is an
error, so the output always has every table.

Two structs are not in any installed header of some versions and are declared in the
probe from CPython's source (Objects/dict-common.h, Objects/moduleobject.c): the
3.6-3.10 dict keys object and the <=3.10 module object. Their declarations are below
(MIRROR_*); the live-interpreter tests check them.
"""
from __future__ import annotations

import argparse
import difflib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "src/python/layouts_generated.cpp"
HEADER = ROOT / "include/pyspy/python/layout.h"

# The supported tables: (major, minor, free-threaded) and where the headers of that
# version are installed: a pyenv version name ($(pyenv root)/versions/NAME), or an
# absolute prefix (a build by hand under /opt/cpython; DEVELOPERS.md).
VERSIONS = [
    ((2, 7, False), "2.7.18"),
    ((3, 6, False), "3.6.15"),
    ((3, 7, False), "3.7.16"),
    ((3, 8, False), "3.8.18"),
    ((3, 9, False), "3.9.18"),
    ((3, 10, False), "3.10.13"),
    ((3, 11, False), "3.11.7"),
    ((3, 12, False), "3.12.1"),
    ((3, 13, False), "3.13.0"),
    ((3, 14, False), "/opt/cpython/3.14"),
    ((3, 14, True), "/opt/cpython/3.14t"),
]


# Versions no interpreter of which can be installed here (3.15: see docs/layouts.md): a
# table derived from the previous version's table of the same build kind. The positions
# of the version's own _Py_DebugOffsets members are computed from its
# pycore_debug_offsets.h (the struct compiles on its own), so the target's offsets can be
# read; at attach they replace every field they name, and the rest is the base table's,
# with the changes below, read from the newer version's headers.
DERIVED = [
    ((3, 15, False), (3, 14, False)),
    ((3, 15, True), (3, 14, True)),
]

# Per derived minor version: fields whose value differs from the base table's, as read
# from that version's headers. None: the version does not have the field; a key of
# another table: that table's value.
DERIVED_CHANGES = {
    (3, 15): {
        "owner_cstack": None,  # FRAME_OWNED_BY_CSTACK is gone (pycore_interpframe_structs.h)
        # Py_TAG_BITS of the GIL build is used by both builds (pycore_stackref.h)
        "stackref_tag_bits": (3, 14, False),
    },
}


def derived_headers(major: int, minor: int) -> Path:
    """Where a derived version's headers (at least internal/pycore_debug_offsets.h) are:
    $PYSPY_HEADERS_X_Y, else /opt/cpython-headers/X.Y (a copy of its Include/ directory)."""
    return Path(os.environ.get(f"PYSPY_HEADERS_{major}_{minor}", f"/opt/cpython-headers/{major}.{minor}"))


def table_name(key) -> str:
    """3.14, 3.14t: the name of a table in messages and in the generated file's markers."""
    major, minor, free_threaded = key
    return f"{major}.{minor}{'t' if free_threaded else ''}"


def version_prefix(root: Path, where: str) -> Path:
    return Path(where) if where.startswith("/") else root / "versions" / where


# Other header sets probed only to check they agree with the table (e.g. Debian's 3.11,
# the build /usr/bin/python3.11 comes from). A difference is an error.
CROSS_CHECKS = {(3, 11, False): [Path("/usr/include/python3.11")]}

# Fields whose values legitimately differ between patch releases / builds of one minor
# version and so are left out of cross-checks.
PATCH_DEPENDENT = {"version_hex", "runtime_size", "interp_size", "tstate_size"}


def pyenv_root() -> Path:
    env = os.environ.get("PYENV_ROOT")
    if env:
        return Path(env)
    exe = shutil.which("pyenv")
    if exe:
        try:
            out = subprocess.run([exe, "root"], capture_output=True, text=True, check=True).stdout.strip()
            if out:
                return Path(out)
        except (OSError, subprocess.CalledProcessError):
            pass
    return Path.home() / ".pyenv"


def include_dir(prefix: Path, major: int, minor: int) -> Path | None:
    for suffix in ("", "m", "dm", "d", "t"):
        candidate = prefix / "include" / f"python{major}.{minor}{suffix}"
        if (candidate / "Python.h").exists():
            return candidate
    return None


# ---------------------------------------------------------------------------------
# What the probe prints, per version. Each entry: (PyLayout field, C expression).
# The expressions are plain offsetof/sizeof/enum/macro uses; a few need helpers
# defined in PROBE_HELPERS.

# Objects/dict-common.h of 3.6-3.10 (not installed): struct _dictkeysobject and
# PyDictKeyEntry. 3.6 has a union for dk_indices; 3.7-3.10 a char array. Only the
# member offsets matter, and the union starts where the array does.
MIRROR_DICTKEYS = """
typedef struct {
    Py_hash_t me_hash;
    PyObject *me_key;
    PyObject *me_value;
} probe_dict_key_entry;
typedef struct {
    Py_ssize_t dk_refcnt;
    Py_ssize_t dk_size;
    void *dk_lookup;
    Py_ssize_t dk_usable;
    Py_ssize_t dk_nentries;
    char dk_indices[8];
} probe_dict_keys;
"""

# Objects/moduleobject.c of <=3.10 (not installed): md_dict follows the object header.
MIRROR_MODULE = """
typedef struct {
    PyObject_HEAD
    PyObject *md_dict;
} probe_module;
"""

PROBE_HELPERS = r"""
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* The lowest set bit of a zeroed object's bytes after `stmt` ran on it, counted
   from `offset` (little-endian word). -1 if no bit or more than one changed when
   `single` is set. */
static int probe_bit(const unsigned char *bytes, size_t offset, size_t size, int single) {
    uint64_t word = 0;
    memcpy(&word, bytes + offset, size < sizeof word ? size : sizeof word);
    if (word == 0) return -1;
    if (single && (word & (word - 1)) != 0) return -1;
    return __builtin_ctzll(word);
}
static int probe_popcount(const unsigned char *bytes, size_t offset, size_t size) {
    uint64_t word = 0;
    memcpy(&word, bytes + offset, size < sizeof word ? size : sizeof word);
    return __builtin_popcountll(word);
}
#define PROBE(name, expr) printf("%s %lld\n", name, (long long)(expr))
#ifdef Py_GIL_DISABLED
#define PROBE_FREE_THREADED 1
#else
#define PROBE_FREE_THREADED 0
#endif
"""


@dataclass
class Probe:
    includes: list[str]
    decls: str
    fields: list[tuple[str, str]]
    body: str  # extra statements (bit probes) that call PROBE themselves


def probe_for(major: int, minor: int, free_threaded: bool = False) -> Probe:
    v = (major, minor)
    inc = ["Python.h"]
    decls = ""
    f: list[tuple[str, str]] = []
    body = ""

    def add(name: str, expr: str) -> None:
        f.append((name, expr))

    # --- headers -----------------------------------------------------------------
    if v <= (3, 10):
        inc += ["frameobject.h", "code.h"]
    if v == (2, 7):
        inc += ["longintrepr.h", "classobject.h"]
    elif v <= (3, 10):
        inc += ["longintrepr.h"]
    if v == (3, 7):
        inc += ["internal/pystate.h"]
    elif v == (3, 8):
        inc += ["internal/pycore_pystate.h"]
    elif v >= (3, 9):
        inc += ["internal/pycore_interp.h", "internal/pycore_runtime.h"]
    if v >= (3, 11):
        inc += ["internal/pycore_frame.h", "internal/pycore_dict.h", "internal/pycore_object.h",
                "internal/pycore_moduleobject.h", "internal/pycore_code.h"]
    if v >= (3, 12):
        inc += ["internal/pycore_gil.h"]
    if v >= (3, 14):
        inc += ["internal/pycore_interpframe.h", "internal/pycore_stackref.h"]
    if (3, 6) <= v <= (3, 10):
        decls += MIRROR_DICTKEYS
    if v <= (3, 10):
        decls += MIRROR_MODULE

    # --- _PyRuntimeState, GIL ----------------------------------------------------------
    if v >= (3, 7):
        add("runtime_size", "sizeof(_PyRuntimeState)")
        add("runtime_interpreters_head", "offsetof(_PyRuntimeState, interpreters.head)")
        add("gil_locked", "offsetof(struct _gil_runtime_state, locked)")
        add("gil_last_holder", "offsetof(struct _gil_runtime_state, last_holder)")
        add("gil_cond", "offsetof(struct _gil_runtime_state, cond)")
        add("gil_cond_size", "sizeof(((struct _gil_runtime_state *)0)->cond)")
        add("gil_mutex", "offsetof(struct _gil_runtime_state, mutex)")
        add("gil_mutex_size", "sizeof(((struct _gil_runtime_state *)0)->mutex)")
    if (3, 7) <= v <= (3, 11):
        add("runtime_gilstate_tstate_current", "offsetof(_PyRuntimeState, gilstate.tstate_current)")
        add("runtime_ceval_gil", "offsetof(_PyRuntimeState, ceval.gil)")
    if v >= (3, 13):
        add("runtime_debug_offsets", "offsetof(_PyRuntimeState, debug_offsets)")
    if (3, 7) <= v <= (3, 8):
        add("runtime_gc_collecting", "offsetof(_PyRuntimeState, gc.collecting)")
    if v >= (3, 9):
        add("interp_gc_collecting", "offsetof(PyInterpreterState, gc.collecting)")

    # --- PyInterpreterState ---------------------------------------------------------------
    add("interp_size", "sizeof(PyInterpreterState)")
    add("interp_next", "offsetof(PyInterpreterState, next)")
    if v <= (3, 10):
        add("interp_tstate_head", "offsetof(PyInterpreterState, tstate_head)")
    else:
        add("interp_tstate_head", "offsetof(PyInterpreterState, threads.head)")
    if v <= (3, 11):
        add("interp_modules", "offsetof(PyInterpreterState, modules)")
    else:
        add("interp_modules", "offsetof(PyInterpreterState, imports.modules)")
        add("interp_ceval_gil", "offsetof(PyInterpreterState, ceval.gil)")
        add("interp_gil", "offsetof(PyInterpreterState, _gil)")

    # --- PyThreadState ---------------------------------------------------------------------
    add("tstate_size", "sizeof(PyThreadState)")
    add("tstate_next", "offsetof(PyThreadState, next)")
    add("tstate_interp", "offsetof(PyThreadState, interp)")
    if v <= (3, 10):
        add("tstate_frame", "offsetof(PyThreadState, frame)")
    elif v <= (3, 12):
        add("tstate_cframe", "offsetof(PyThreadState, cframe)")
        add("cframe_current_frame", "offsetof(_PyCFrame, current_frame)")
    else:
        add("tstate_current_frame", "offsetof(PyThreadState, current_frame)")
    add("tstate_thread_id", "offsetof(PyThreadState, thread_id)")
    if v >= (3, 11):
        add("tstate_native_thread_id", "offsetof(PyThreadState, native_thread_id)")
        add("tstate_datastack_chunk", "offsetof(PyThreadState, datastack_chunk)")
        add("tstate_datastack_top", "offsetof(PyThreadState, datastack_top)")
        add("stackchunk_previous", "offsetof(_PyStackChunk, previous)")
        add("stackchunk_size", "offsetof(_PyStackChunk, size)")
        add("stackchunk_top", "offsetof(_PyStackChunk, top)")
        add("stackchunk_data", "offsetof(_PyStackChunk, data)")

    # --- frames ------------------------------------------------------------------------------
    if v <= (3, 10):
        add("frame_size", "sizeof(PyFrameObject)")
        add("frame_back", "offsetof(PyFrameObject, f_back)")
        add("frame_code", "offsetof(PyFrameObject, f_code)")
        add("frame_lasti", "offsetof(PyFrameObject, f_lasti)")
        add("frame_localsplus", "offsetof(PyFrameObject, f_localsplus)")
        add("frame_locals", "offsetof(PyFrameObject, f_locals)")
        add("gen_frame", "offsetof(PyGenObject, gi_frame)")
    else:
        add("frame_size", "sizeof(_PyInterpreterFrame)")
        add("frame_back", "offsetof(_PyInterpreterFrame, previous)")
        if v <= (3, 12):
            add("frame_code", "offsetof(_PyInterpreterFrame, f_code)")
            add("frame_prev_instr", "offsetof(_PyInterpreterFrame, prev_instr)")
        else:
            add("frame_code", "offsetof(_PyInterpreterFrame, f_executable)")
            add("frame_instr_ptr", "offsetof(_PyInterpreterFrame, instr_ptr)")
        add("frame_owner", "offsetof(_PyInterpreterFrame, owner)")
        if v == (3, 11):
            add("frame_is_entry", "offsetof(_PyInterpreterFrame, is_entry)")
        add("frame_localsplus", "offsetof(_PyInterpreterFrame, localsplus)")
        add("frame_locals", "offsetof(_PyInterpreterFrame, f_locals)")
        add("owner_thread", "FRAME_OWNED_BY_THREAD")
        add("owner_generator", "FRAME_OWNED_BY_GENERATOR")
        add("owner_frame_object", "FRAME_OWNED_BY_FRAME_OBJECT")
        if v >= (3, 12):
            add("owner_cstack", "FRAME_OWNED_BY_CSTACK")
        if v >= (3, 14):
            add("owner_interpreter", "FRAME_OWNED_BY_INTERPRETER")
            add("stackref_tag_bits", "Py_TAG_BITS")
        if v >= (3, 14) and free_threaded:
            add("gil_enabled", "offsetof(struct _gil_runtime_state, enabled)")
            add("frame_tlbc_index", "offsetof(_PyInterpreterFrame, tlbc_index)")
            add("code_tlbc", "offsetof(PyCodeObject, co_tlbc)")
            add("codearray_size", "offsetof(_PyCodeArray, size)")
            add("codearray_entries", "offsetof(_PyCodeArray, entries)")
        add("gen_iframe", "offsetof(PyGenObject, gi_iframe)")

    # --- PyCodeObject --------------------------------------------------------------------------
    add("code_size", "sizeof(PyCodeObject)")
    for name in ("argcount", "nlocals", "flags", "firstlineno", "filename", "name"):
        add(f"code_{name}", f"offsetof(PyCodeObject, co_{name})")
    if v >= (3, 11):
        add("code_qualname", "offsetof(PyCodeObject, co_qualname)")
    if v <= (3, 9):
        add("code_linetable", "offsetof(PyCodeObject, co_lnotab)")
    else:
        add("code_linetable", "offsetof(PyCodeObject, co_linetable)")
    if v <= (3, 10):
        add("code_varnames", "offsetof(PyCodeObject, co_varnames)")
        add("code_cellvars", "offsetof(PyCodeObject, co_cellvars)")
        add("code_freevars", "offsetof(PyCodeObject, co_freevars)")
    else:
        add("code_localsplusnames", "offsetof(PyCodeObject, co_localsplusnames)")
        add("code_localspluskinds", "offsetof(PyCodeObject, co_localspluskinds)")
        add("code_code_adaptive", "offsetof(PyCodeObject, co_code_adaptive)")
        add("code_firsttraceable", "offsetof(PyCodeObject, _co_firsttraceable)")
        add("co_fast_local", "CO_FAST_LOCAL")
        add("co_fast_cell", "CO_FAST_CELL")
        add("co_fast_free", "CO_FAST_FREE")

    # --- objects and types -------------------------------------------------------------------------
    add("object_type", "offsetof(PyObject, ob_type)")
    add("varobject_size", "offsetof(PyVarObject, ob_size)")
    add("type_name", "offsetof(PyTypeObject, tp_name)")
    add("type_basicsize", "offsetof(PyTypeObject, tp_basicsize)")
    add("type_dictoffset", "offsetof(PyTypeObject, tp_dictoffset)")
    add("type_flags", "offsetof(PyTypeObject, tp_flags)")
    add("tpflags_heaptype", "Py_TPFLAGS_HEAPTYPE")
    if v >= (3, 6):
        add("heaptype_cached_keys", "offsetof(PyHeapTypeObject, ht_cached_keys)")
    if v >= (3, 11):
        add("tpflags_managed_dict", "Py_TPFLAGS_MANAGED_DICT")
        # Where the helpers CPython itself uses put the pointers, relative to the object.
        if v == (3, 11):
            add("managed_dict_offset", "probe_delta(_PyObject_ManagedDictPointer(probe_obj))")
            add("managed_values_offset", "probe_delta(_PyObject_ValuesPointer(probe_obj))")
        elif v == (3, 12):
            add("managed_dict_offset", "probe_delta(_PyObject_DictOrValuesPointer(probe_obj))")
        else:
            add("managed_dict_offset", "probe_delta(_PyObject_ManagedDictPointer(probe_obj))")
    if v >= (3, 13):
        add("tpflags_inline_values", "Py_TPFLAGS_INLINE_VALUES")
    if v == (2, 7):
        add("instance_dict", "offsetof(PyInstanceObject, in_dict)")

    # --- bytes / str -------------------------------------------------------------------------------
    if v == (2, 7):
        add("bytes_size", "offsetof(PyStringObject, ob_size)")
        add("bytes_sval", "offsetof(PyStringObject, ob_sval)")
        add("unicode2_length", "offsetof(PyUnicodeObject, length)")
        add("unicode2_str", "offsetof(PyUnicodeObject, str)")
        add("unicode2_char_size", "sizeof(Py_UNICODE)")
    else:
        add("bytes_size", "offsetof(PyBytesObject, ob_base.ob_size)")
        add("bytes_sval", "offsetof(PyBytesObject, ob_sval)")
        add("unicode_length", "offsetof(PyASCIIObject, length)")
        add("unicode_state", "offsetof(PyASCIIObject, state)")
        add("unicode_ascii_size", "sizeof(PyASCIIObject)")
        add("unicode_compact_size", "sizeof(PyCompactUnicodeObject)")
        add("unicode_data", "offsetof(PyUnicodeObject, data)")
        # Bit positions in the state bitfield: set one field of a zeroed object and see
        # which bit of the word at `state` changed.
        body += r"""
    {
        const size_t at = offsetof(PyASCIIObject, state), size = sizeof(((PyASCIIObject *)0)->state);
        PyASCIIObject o;
        memset(&o, 0, sizeof o); o.state.kind = 1;
        int kind_shift = probe_bit((const unsigned char *)&o, at, size, 1);
        memset(&o, 0, sizeof o); o.state.kind = 7;
        if (probe_popcount((const unsigned char *)&o, at, size) != 3
            || probe_bit((const unsigned char *)&o, at, size, 0) != kind_shift) kind_shift = -1;
        memset(&o, 0, sizeof o); o.state.compact = 1;
        int compact_bit = probe_bit((const unsigned char *)&o, at, size, 1);
        memset(&o, 0, sizeof o); o.state.ascii = 1;
        int ascii_bit = probe_bit((const unsigned char *)&o, at, size, 1);
        if (size < 4 || kind_shift < 0 || kind_shift + 3 > 32 || compact_bit < 0 || compact_bit >= 32
            || ascii_bit < 0 || ascii_bit >= 32) {
            fprintf(stderr, "probe: cannot locate the str state bits\n");
            return 1;
        }
        PROBE("unicode_kind_shift", kind_shift);
        PROBE("unicode_compact_bit", compact_bit);
        PROBE("unicode_ascii_bit", ascii_bit);
    }
"""

    # --- int / float / tuple / list ---------------------------------------------------------------------
    if v <= (3, 11):
        add("long_size", "offsetof(PyVarObject, ob_size)")  # PyLongObject starts with PyObject_VAR_HEAD
        add("long_digit", "offsetof(PyLongObject, ob_digit)")
    else:
        add("long_lv_tag", "offsetof(PyLongObject, long_value.lv_tag)")
        add("long_digit", "offsetof(PyLongObject, long_value.ob_digit)")
    add("long_digit_bits", "PyLong_SHIFT")
    add("long_digit_size", "sizeof(digit)")
    if v == (2, 7):
        add("int2_ival", "offsetof(PyIntObject, ob_ival)")
    add("float_fval", "offsetof(PyFloatObject, ob_fval)")
    add("tuple_item", "offsetof(PyTupleObject, ob_item)")
    add("list_item", "offsetof(PyListObject, ob_item)")
    add("set_used", "offsetof(PySetObject, used)")
    add("set_mask", "offsetof(PySetObject, mask)")
    add("set_table", "offsetof(PySetObject, table)")
    add("setentry_size", "sizeof(setentry)")
    add("setentry_key", "offsetof(setentry, key)")
    add("setentry_hash", "offsetof(setentry, hash)")
    add("cell_ref", "offsetof(PyCellObject, ob_ref)")

    # --- dict -----------------------------------------------------------------------------------------------
    add("dict_used", "offsetof(PyDictObject, ma_used)")
    if v == (2, 7):
        add("dict2_mask", "offsetof(PyDictObject, ma_mask)")
        add("dict2_table", "offsetof(PyDictObject, ma_table)")
        add("dict2_entry_size", "sizeof(PyDictEntry)")
    else:
        add("dict_keys", "offsetof(PyDictObject, ma_keys)")
        add("dict_values", "offsetof(PyDictObject, ma_values)")
    if (3, 6) <= v <= (3, 10):
        add("dictkeys_size", "offsetof(probe_dict_keys, dk_size)")
        add("dictkeys_nentries", "offsetof(probe_dict_keys, dk_nentries)")
        add("dictkeys_indices", "offsetof(probe_dict_keys, dk_indices)")
        add("dictkeyentry_size", "sizeof(probe_dict_key_entry)")
    elif v >= (3, 11):
        add("dictkeys_log2_size", "offsetof(PyDictKeysObject, dk_log2_size)")
        add("dictkeys_log2_index_bytes", "offsetof(PyDictKeysObject, dk_log2_index_bytes)")
        add("dictkeys_kind", "offsetof(PyDictKeysObject, dk_kind)")
        add("dictkeys_nentries", "offsetof(PyDictKeysObject, dk_nentries)")
        add("dictkeys_indices", "offsetof(PyDictKeysObject, dk_indices)")
        add("dictkeyentry_size", "sizeof(PyDictKeyEntry)")
        add("dictunicodeentry_size", "sizeof(PyDictUnicodeEntry)")
        add("dictkeys_kind_general", "DICT_KEYS_GENERAL")
        add("dictvalues_values", "offsetof(PyDictValues, values)")
    if v >= (3, 13):
        add("dictvalues_valid", "offsetof(PyDictValues, valid)")

    # --- module -------------------------------------------------------------------------------------------------
    if v <= (3, 10):
        add("module_dict", "offsetof(probe_module, md_dict)")
    else:
        add("module_dict", "offsetof(PyModuleObject, md_dict)")

    add("version_hex", "PY_VERSION_HEX")
    add("free_threaded", "PROBE_FREE_THREADED")

    # --- _Py_DebugOffsets (3.13+): where each value sits inside the struct -------------------------------------
    if v >= (3, 13):
        for field, member in DEBUG_OFFSET_MEMBERS:
            add(field, f"offsetof(_Py_DebugOffsets, {member})")
        if v >= (3, 14):
            for field, member in DEBUG_OFFSET_MEMBERS_314:
                add(field, f"offsetof(_Py_DebugOffsets, {member})")
        add("dbg_size", "sizeof(_Py_DebugOffsets)")

    return Probe(inc, decls, f, body)


# PyLayout dbg_* field -> member of 3.13's _Py_DebugOffsets (pycore_runtime.h).
DEBUG_OFFSET_MEMBERS = [
    ("dbg_cookie", "cookie"),
    ("dbg_version", "version"),
    ("dbg_free_threaded", "free_threaded"),
    ("dbg_runtime_state_size", "runtime_state.size"),
    ("dbg_runtime_state_interpreters_head", "runtime_state.interpreters_head"),
    ("dbg_interpreter_state_size", "interpreter_state.size"),
    ("dbg_interpreter_state_next", "interpreter_state.next"),
    ("dbg_interpreter_state_threads_head", "interpreter_state.threads_head"),
    ("dbg_interpreter_state_imports_modules", "interpreter_state.imports_modules"),
    ("dbg_interpreter_state_ceval_gil", "interpreter_state.ceval_gil"),
    ("dbg_interpreter_state_gil_runtime_state", "interpreter_state.gil_runtime_state"),
    ("dbg_interpreter_state_gil_runtime_state_locked", "interpreter_state.gil_runtime_state_locked"),
    ("dbg_interpreter_state_gil_runtime_state_holder", "interpreter_state.gil_runtime_state_holder"),
    ("dbg_thread_state_size", "thread_state.size"),
    ("dbg_thread_state_next", "thread_state.next"),
    ("dbg_thread_state_interp", "thread_state.interp"),
    ("dbg_thread_state_current_frame", "thread_state.current_frame"),
    ("dbg_thread_state_thread_id", "thread_state.thread_id"),
    ("dbg_thread_state_native_thread_id", "thread_state.native_thread_id"),
    ("dbg_thread_state_datastack_chunk", "thread_state.datastack_chunk"),
    ("dbg_interpreter_frame_size", "interpreter_frame.size"),
    ("dbg_interpreter_frame_previous", "interpreter_frame.previous"),
    ("dbg_interpreter_frame_executable", "interpreter_frame.executable"),
    ("dbg_interpreter_frame_instr_ptr", "interpreter_frame.instr_ptr"),
    ("dbg_interpreter_frame_localsplus", "interpreter_frame.localsplus"),
    ("dbg_interpreter_frame_owner", "interpreter_frame.owner"),
    ("dbg_code_object_size", "code_object.size"),
    ("dbg_code_object_filename", "code_object.filename"),
    ("dbg_code_object_name", "code_object.name"),
    ("dbg_code_object_qualname", "code_object.qualname"),
    ("dbg_code_object_linetable", "code_object.linetable"),
    ("dbg_code_object_firstlineno", "code_object.firstlineno"),
    ("dbg_code_object_argcount", "code_object.argcount"),
    ("dbg_code_object_localsplusnames", "code_object.localsplusnames"),
    ("dbg_code_object_localspluskinds", "code_object.localspluskinds"),
    ("dbg_code_object_co_code_adaptive", "code_object.co_code_adaptive"),
    ("dbg_pyobject_ob_type", "pyobject.ob_type"),
    ("dbg_type_object_tp_name", "type_object.tp_name"),
    ("dbg_type_object_tp_flags", "type_object.tp_flags"),
    ("dbg_tuple_object_ob_item", "tuple_object.ob_item"),
    ("dbg_list_object_ob_item", "list_object.ob_item"),
    ("dbg_dict_object_ma_keys", "dict_object.ma_keys"),
    ("dbg_dict_object_ma_values", "dict_object.ma_values"),
    ("dbg_float_object_ob_fval", "float_object.ob_fval"),
    ("dbg_long_object_lv_tag", "long_object.lv_tag"),
    ("dbg_long_object_ob_digit", "long_object.ob_digit"),
    ("dbg_bytes_object_ob_size", "bytes_object.ob_size"),
    ("dbg_bytes_object_ob_sval", "bytes_object.ob_sval"),
    ("dbg_unicode_object_state", "unicode_object.state"),
    ("dbg_unicode_object_length", "unicode_object.length"),
    ("dbg_unicode_object_asciiobject_size", "unicode_object.asciiobject_size"),
]


# Members added in 3.14.
DEBUG_OFFSET_MEMBERS_314 = [
    ("dbg_interpreter_state_gc", "interpreter_state.gc"),
    ("dbg_gc_size", "gc.size"),
    ("dbg_gc_collecting", "gc.collecting"),
    ("dbg_interpreter_frame_tlbc_index", "interpreter_frame.tlbc_index"),
    ("dbg_code_object_co_tlbc", "code_object.co_tlbc"),
    ("dbg_set_object_used", "set_object.used"),
    ("dbg_set_object_table", "set_object.table"),
    ("dbg_set_object_mask", "set_object.mask"),
    ("dbg_gen_object_gi_iframe", "gen_object.gi_iframe"),
]

# Members added in 3.15.
DEBUG_OFFSET_MEMBERS_315 = [
    ("dbg_type_object_tp_basicsize", "type_object.tp_basicsize"),
    ("dbg_type_object_tp_dictoffset", "type_object.tp_dictoffset"),
    ("dbg_heap_type_object_ht_cached_keys", "heap_type_object.ht_cached_keys"),
    ("dbg_unicode_object_compactunicodeobject_size", "unicode_object.compactunicodeobject_size"),
]


def probe_source(major: int, minor: int, free_threaded: bool = False) -> tuple[str, list[str]]:
    p = probe_for(major, minor, free_threaded)
    lines = ["/* generated by scripts/gen_layouts.py: a layout probe */",
             "#define Py_BUILD_CORE 1", "#define NDEBUG 1", "#include <stddef.h>"]
    lines += [f'#include "{h}"' for h in p.includes]
    lines.append(PROBE_HELPERS)
    lines.append(p.decls)
    lines.append(r"""
static char probe_buffer[1024] __attribute__((aligned(16)));
static PyObject *const probe_obj = (PyObject *)(probe_buffer + 512);
#define probe_delta(p) ((long long)((char *)(p) - (char *)probe_obj))
""")
    lines.append("int main(void) {")
    for name, expr in p.fields:
        lines.append(f'    PROBE("{name}", {expr});')
    lines.append(p.body)
    lines.append("    return 0;\n}")
    return "\n".join(lines) + "\n", [name for name, _ in p.fields]


def run_probe(major: int, minor: int, inc: Path, free_threaded: bool = False) -> dict[str, int]:
    source, names = probe_source(major, minor, free_threaded)
    cc = os.environ.get("CC", "gcc")
    with tempfile.TemporaryDirectory(prefix="pyspy-layout-") as tmp:
        src = Path(tmp) / "probe.c"
        exe = Path(tmp) / "probe"
        src.write_text(source)
        # C, not C++: 3.12+ internal headers use C11 atomics and designated initializers.
        cmd = [cc, "-std=gnu11", "-w", f"-I{inc}", f"-I{inc / 'internal'}", str(src), "-o", str(exe)]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            raise SystemExit(f"probe for {major}.{minor} ({inc}) does not compile:\n{res.stderr}")
        res = subprocess.run([str(exe)], capture_output=True, text=True)
        if res.returncode != 0:
            raise SystemExit(f"probe for {major}.{minor} failed:\n{res.stderr}")
    values: dict[str, int] = {}
    for line in res.stdout.splitlines():
        name, value = line.split()
        values[name] = int(value)
    missing = [n for n in names if n not in values]
    if missing:
        raise SystemExit(f"probe for {major}.{minor} printed no value for {missing}")
    if values.get("version_hex", 0) >> 16 != (major << 8 | minor):
        raise SystemExit(f"{inc} has PY_VERSION_HEX {values.get('version_hex', 0):#x}, not {major}.{minor}")
    if values.get("free_threaded") != int(free_threaded):
        raise SystemExit(f"{inc}: Py_GIL_DISABLED is {'not ' if free_threaded else ''}set, "
                         f"but the table is for a {'free-threaded' if free_threaded else 'GIL'} build")
    return values


def debug_offsets_positions(header: Path, minor: int) -> dict[str, int]:
    """Positions of the _Py_DebugOffsets members in the struct declared in `header`,
    compiled on its own (it is all uint64_t and one char[8])."""
    text = header.read_text()
    start = text.find("typedef struct _Py_DebugOffsets {")
    end = text.find("} _Py_DebugOffsets;", start)
    if start < 0 or end < 0:
        raise SystemExit(f"{header}: no typedef struct _Py_DebugOffsets")
    members = DEBUG_OFFSET_MEMBERS + DEBUG_OFFSET_MEMBERS_314 + (DEBUG_OFFSET_MEMBERS_315 if minor >= 15 else [])
    lines = ["#include <stddef.h>", "#include <stdint.h>", "#include <stdio.h>", "#define _Py_NONSTRING",
             text[start:end + len("} _Py_DebugOffsets;")], "int main(void) {"]
    for field, member in members:
        lines.append(f'    printf("{field} %zu\\n", offsetof(_Py_DebugOffsets, {member}));')
    lines += ['    printf("dbg_size %zu\\n", sizeof(_Py_DebugOffsets));', "    return 0;", "}"]
    cc = os.environ.get("CC", "gcc")
    with tempfile.TemporaryDirectory(prefix="pyspy-layout-") as tmp:
        src, exe = Path(tmp) / "offsets.c", Path(tmp) / "offsets"
        src.write_text("\n".join(lines) + "\n")
        res = subprocess.run([cc, "-std=gnu11", "-w", str(src), "-o", str(exe)], capture_output=True, text=True)
        if res.returncode != 0:
            raise SystemExit(f"{header}: the _Py_DebugOffsets struct does not compile:\n{res.stderr}")
        out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    return {name: int(value) for name, value in (line.split() for line in out.splitlines())}


def block_values(block: str) -> dict[str, int]:
    """The field values of a generated block (the inverse of render_block)."""
    values = {}
    for m in re.finditer(r"^    layout\.(\w+) = (-?(?:0x)?[0-9a-fA-F]+);$", block, re.M):
        if m.group(1) not in ("major", "minor"):
            values[m.group(1)] = int(m.group(2), 0)
    return values


def derive(key, base_values: dict[str, int], tables: dict, header: Path) -> dict[str, int]:
    major, minor, free_threaded = key
    values = dict(base_values)
    values.update(debug_offsets_positions(header, minor))
    values["version_hex"] = (major << 24) | (minor << 16)
    for field, change in DERIVED_CHANGES.get((major, minor), {}).items():
        if change is None:
            values.pop(field, None)
        else:
            values[field] = tables[change][field]
    return values


# ---------------------------------------------------------------------------------
# PyLayout fields, in declaration order, from the header.

FIELD_RE = re.compile(r"^\s*(std::int64_t|std::uint64_t|std::uint32_t|int)\s+(\w+)\s*=\s*([^;]+);", re.M)


def header_fields() -> list[tuple[str, str]]:
    text = HEADER.read_text()
    body = text[text.index("struct PyLayout {"):]
    body = body[:body.index("\n};")]
    return [(m.group(2), m.group(1)) for m in FIELD_RE.finditer(body)]


def render_value(name: str, ctype: str, value: int) -> str:
    if name == "version_hex":
        return f"{value:#010x}"
    if ctype in ("std::uint64_t", "std::uint32_t") and name.startswith("tpflags_"):
        return f"{value:#x}"
    return str(value)


def function_name(key) -> str:
    return "layout_" + table_name(key).replace(".", "_")


def render_block(key, values: dict[str, int], source: str, fields: list[tuple[str, str]]) -> str:
    major, minor, _ = key
    known = {n for n, _ in fields}
    unknown = sorted(set(values) - known)
    if unknown:
        raise SystemExit(f"probe fields missing from PyLayout in {HEADER}: {unknown}")
    out = [f"// --- begin {table_name(key)} ---",
           f"// generated by scripts/gen_layouts.py from {source}; do not edit",
           f"PyLayout {function_name(key)}() {{",
           "    PyLayout layout;",
           f"    layout.major = {major};",
           f"    layout.minor = {minor};"]
    for name, ctype in fields:
        if name in values and name not in ("major", "minor"):
            out.append(f"    layout.{name} = {render_value(name, ctype, values[name])};")
    out += ["    return layout;", "}", f"// --- end {table_name(key)} ---"]
    return "\n".join(out)


FILE_HEAD = """\
// generated by scripts/gen_layouts.py; do not edit. Regenerate with
// `python3 scripts/gen_layouts.py`, check with `--check` (docs/layouts.md).
// clang-format off
#include "pyspy/python/layout.h"

namespace pyspy {

namespace {
"""


def render_file(blocks: list[tuple[tuple[int, int, bool], str]]) -> str:
    parts = [FILE_HEAD]
    for _, block in blocks:
        parts.append("\n" + block + "\n")
    parts.append("\n}  // namespace\n\nstd::span<const PyLayout> generatedLayouts() {\n"
                 "    static const PyLayout layouts[] = {\n")
    for key, _ in blocks:
        parts.append(f"        {function_name(key)}(),\n")
    parts.append("    };\n    return layouts;\n}\n\n}  // namespace pyspy\n// clang-format on\n")
    return "".join(parts)


def existing_blocks(text: str) -> dict[tuple[int, int, bool], str]:
    blocks = {}
    for m in re.finditer(r"^// --- begin (\d+)\.(\d+)(t?) ---\n.*?^// --- end \1\.\2\3 ---$", text, re.M | re.S):
        blocks[(int(m.group(1)), int(m.group(2)), m.group(3) == "t")] = m.group(0)
    return blocks


def display_path(path: Path, root: Path) -> str:
    try:
        return "$PYENV_ROOT/" + str(path.relative_to(root))
    except ValueError:
        return str(path)


def generate(verbose: bool) -> str:
    root = pyenv_root()
    fields = header_fields()
    old = existing_blocks(OUTPUT.read_text()) if OUTPUT.exists() else {}
    blocks = []
    for key, where in VERSIONS:
        major, minor, free_threaded = key
        name = table_name(key)
        prefix = version_prefix(root, where)
        inc = include_dir(prefix, major, minor)
        if inc is None:
            if key not in old:
                raise SystemExit(f"{name}: {prefix} is not installed and {OUTPUT.name} has no table for it")
            print(f"{name}: {prefix} not installed; keeping the existing table (not re-verified)", file=sys.stderr)
            blocks.append((key, old[key]))
            continue
        values = run_probe(major, minor, inc, free_threaded)
        for other in CROSS_CHECKS.get(key, []):
            if (other / "Python.h").exists():
                theirs = run_probe(major, minor, other, free_threaded)
                diff = {k: (values.get(k), theirs.get(k)) for k in set(values) | set(theirs)
                        if k not in PATCH_DEPENDENT and values.get(k) != theirs.get(k)}
                if diff:
                    raise SystemExit(f"{name}: {other} disagrees with {inc}: {diff}")
                if verbose:
                    print(f"{name}: {other} agrees", file=sys.stderr)
        blocks.append((key, render_block(key, values, display_path(inc, root), fields)))
        if verbose:
            print(f"{name}: {len(values)} values from {inc}", file=sys.stderr)
    tables = {key: block_values(block) for key, block in blocks}
    for key, base in DERIVED:
        major, minor, _ = key
        name = table_name(key)
        header = derived_headers(major, minor) / "internal" / "pycore_debug_offsets.h"
        if not header.exists():
            if key not in old:
                raise SystemExit(f"{name}: {header} is not there and {OUTPUT.name} has no table for it")
            print(f"{name}: {header} not there; keeping the existing table (not re-verified)", file=sys.stderr)
            blocks.append((key, old[key]))
            continue
        values = derive(key, tables[base], tables, header)
        source = f"table {table_name(base)} + the _Py_DebugOffsets of {major}.{minor}'s internal/pycore_debug_offsets.h"
        blocks.append((key, render_block(key, values, source, fields)))
        if verbose:
            print(f"{name}: derived from {table_name(base)} and {header}", file=sys.stderr)
    return render_file(blocks)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 with a diff if the committed file is stale")
    parser.add_argument("--print", metavar="X.Y[t]", help="print one table's probe source and raw output")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()

    if args.print:
        key = next((k for k, _ in VERSIONS if table_name(k) == args.print), None)
        if key is None:
            raise SystemExit(f"{args.print}: no such table (known: {', '.join(table_name(k) for k, _ in VERSIONS)})")
        major, minor, free_threaded = key
        inc = include_dir(version_prefix(pyenv_root(), dict(VERSIONS)[key]), major, minor)
        if inc is None:
            raise SystemExit(f"{args.print} is not installed")
        print(probe_source(major, minor, free_threaded)[0])
        for name, value in run_probe(major, minor, inc, free_threaded).items():
            print(name, value)
        return 0

    text = generate(args.verbose)
    if args.check:
        current = OUTPUT.read_text() if OUTPUT.exists() else ""
        if current == text:
            print(f"{OUTPUT.relative_to(ROOT)} is up to date")
            return 0
        sys.stdout.writelines(difflib.unified_diff(current.splitlines(True), text.splitlines(True),
                                                   "committed", "regenerated"))
        print(f"{OUTPUT.relative_to(ROOT)} is stale: run python3 scripts/gen_layouts.py", file=sys.stderr)
        return 1
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
