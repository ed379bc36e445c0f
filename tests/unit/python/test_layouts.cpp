#include <catch2/catch.hpp>

#include <unistd.h>

#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "pyspy/process/live_memory.h"
#include "pyspy/python/layout.h"
#include "support/child_process.h"

using namespace pyspy;

namespace {

struct Supported {
    int major, minor;
    bool freeThreaded;
};
// In generatedLayouts() order: the probed tables, then the derived ones (3.15, 3.15t).
const std::vector<Supported> kSupported = {
    {2, 7, false},  {3, 6, false},  {3, 7, false},  {3, 8, false}, {3, 9, false},  {3, 10, false}, {3, 11, false},
    {3, 12, false}, {3, 13, false}, {3, 14, false}, {3, 14, true}, {3, 15, false}, {3, 15, true}};

bool has(std::int64_t offset) {
    return offset != kAbsent;
}

// Runs `script` under the interpreter under test and collects its "KEY value..." lines
// up to READY (or the end of its output).
struct ChildFacts {
    std::map<std::string, std::vector<std::string>> facts;

    std::int64_t num(const std::string& key, std::size_t index = 0) const {
        auto it = facts.find(key);
        if (it == facts.end() || it->second.size() <= index) FAIL("the child printed no " << key);
        return std::stoll(it->second.at(index));
    }
    std::uint64_t address(const std::string& key, std::size_t index = 0) const {
        auto it = facts.find(key);
        if (it == facts.end() || it->second.size() <= index) FAIL("the child printed no " << key);
        return std::stoull(it->second.at(index));
    }
};

ChildFacts collect(test::ChildProcess& child) {
    ChildFacts out;
    for (;;) {
        auto line = child.readLine();
        if (!line || *line == "READY") break;
        std::istringstream words(*line);
        std::string key;
        words >> key;
        std::vector<std::string> values;
        for (std::string w; words >> w;) values.push_back(w);
        out.facts[key] = values;
    }
    return out;
}

// Skips (exit 77, as the runner does) when the interpreter under test is not installed.
std::string pythonUnderTest() {
    const std::string python = test::testPython();
    if (python.find('/') != std::string::npos && ::access(python.c_str(), X_OK) != 0) std::exit(77);
    return python;
}

// Facts the interpreter can tell about its own structs; works on 2.7 and 3.x.
const char* kFactsScript = R"PY(
import sys, sysconfig
def out(key, *values):
    sys.stdout.write(key + " " + " ".join(str(v) for v in values) + "\n")
out("VERSION", sys.version_info[0], sys.version_info[1], sys.hexversion,
    1 if sysconfig.get_config_var("Py_GIL_DISABLED") else 0)
info = getattr(sys, "int_info", None) or sys.long_info
out("DIGIT", info.bits_per_digit, info.sizeof_digit)
out("CODE", type((lambda: 0).__code__).__basicsize__)
out("FRAME", type(sys._getframe()).__basicsize__)
out("BYTES", bytes.__basicsize__)
if sys.version_info[0] >= 3:
    out("STR", str.__basicsize__)
    out("EMPTY_STR", sys.getsizeof(str()))
    out("LATIN1_STR", sys.getsizeof(chr(0xe9) + chr(0xe8)))  # a new object: no cached UTF-8
    out("LONG", int.__basicsize__, int.__itemsize__)
else:
    out("INT", int.__basicsize__)
    out("LONG", long.__basicsize__, long.__itemsize__)
out("MAXUNICODE", sys.maxunicode)
out("FLOAT", float.__basicsize__)
out("TUPLE", tuple.__basicsize__)
out("LIST", list.__basicsize__)
out("DICT", dict.__basicsize__)
out("MODULE_DICTOFFSET", type(sys).__dictoffset__)
out("HEAPTYPE", type.__basicsize__)
def gen():
    yield 1
out("GEN", type(gen()).__basicsize__)
class C(object):
    pass
out("CLASS_FLAGS", C.__flags__)
out("READY")
sys.stdout.flush()
)PY";

// The runtime, interpreter and thread states and the GIL, through the C API (ctypes),
// with a second thread spinning so that the GIL is held.
const char* kRuntimeScript = R"PY(
import ctypes, os, sys, sysconfig, threading, time
api = ctypes.pythonapi
api.PyInterpreterState_Head.restype = ctypes.c_void_p
api.PyThreadState_Get.restype = ctypes.c_void_p
try:
    runtime = ctypes.addressof(ctypes.c_char.in_dll(api, "_PyRuntime"))
except Exception:
    runtime = 0
get_ident = getattr(threading, "get_ident", None) or __import__("thread").get_ident
def spin():
    while True:
        pass
spinner = threading.Thread(target=spin)
spinner.daemon = True
spinner.start()
sys.stdout.write("VERSION %d %d %d\n" % (sys.version_info[0], sys.version_info[1],
                                           1 if sysconfig.get_config_var("Py_GIL_DISABLED") else 0))
sys.stdout.write("RUNTIME %d\n" % runtime)
sys.stdout.write("INTERP %d\n" % api.PyInterpreterState_Head())
sys.stdout.write("MAIN %d %d %d\n" % (api.PyThreadState_Get(), get_ident(), os.getpid()))
sys.stdout.write("SPINNER %d\n" % spinner.ident)
sys.stdout.write("READY\n")
sys.stdout.flush()
while True:
    time.sleep(1000)
)PY";

}  // namespace

TEST_CASE("layouts: a table for every supported version, with the key fields", "[layouts]") {
    auto layouts = generatedLayouts();
    REQUIRE(layouts.size() == kSupported.size());
    for (std::size_t i = 0; i < kSupported.size(); ++i) {
        const auto [major, minor, freeThreaded] = kSupported[i];
        const PyLayout& l = layouts[i];
        INFO("Python " << major << "." << minor << (freeThreaded ? "t" : ""));
        CHECK(l.major == major);
        CHECK(l.minor == minor);
        CHECK(l.free_threaded == (freeThreaded ? 1 : 0));
        CHECK(findGeneratedLayout(major, minor, freeThreaded) == &l);
        CHECK(static_cast<int>(l.version_hex >> 24) == major);
        CHECK(static_cast<int>((l.version_hex >> 16) & 0xff) == minor);

        for (auto offset :
             {l.tstate_next,      l.tstate_interp,  l.tstate_thread_id, l.interp_next,   l.interp_tstate_head,
              l.interp_modules,   l.frame_back,     l.frame_code,       l.code_filename, l.code_name,
              l.code_firstlineno, l.code_linetable, l.object_type,      l.type_name,     l.type_flags,
              l.bytes_size,       l.bytes_sval,     l.long_digit,       l.dict_used,     l.module_dict}) {
            CHECK(has(offset));
            CHECK(offset >= 0);
            CHECK(offset < 65536);
        }
        // 64-bit: after ob_refcnt; free-threaded: after ob_tid, the flags word and ob_ref_shared.
        CHECK(l.object_type == (freeThreaded ? 24 : 8));
        CHECK((l.long_digit_bits == 30 || l.long_digit_bits == 15));
        CHECK(l.long_digit_size * 8 >= l.long_digit_bits);

        // Exactly one way to the current frame; exactly one int size encoding.
        const int frameWays = has(l.tstate_frame) + has(l.tstate_cframe) + has(l.tstate_current_frame);
        CHECK(frameWays == 1);
        CHECK(has(l.long_size) != has(l.long_lv_tag));

        if (major == 2) {
            CHECK(has(l.unicode2_length));
            CHECK(has(l.unicode2_str));
            CHECK((l.unicode2_char_size == 2 || l.unicode2_char_size == 4));
            CHECK(has(l.int2_ival));
            CHECK(has(l.dict2_mask));
            CHECK(has(l.dict2_table));
            CHECK(l.dict2_entry_size == 24);
            CHECK_FALSE(has(l.unicode_state));
        } else {
            for (auto offset : {l.unicode_length, l.unicode_state, l.unicode_ascii_size, l.unicode_compact_size,
                                l.unicode_data, l.dict_keys, l.dict_values, l.dictkeys_nentries, l.dictkeys_indices,
                                l.dictkeyentry_size, l.heaptype_cached_keys}) {
                CHECK(has(offset));
            }
            CHECK(l.unicode_kind_shift >= 0);
            CHECK(l.unicode_compact_bit >= 0);
            CHECK(l.unicode_ascii_bit >= 0);
            const std::set<int> bits = {l.unicode_kind_shift, l.unicode_kind_shift + 1, l.unicode_kind_shift + 2,
                                        l.unicode_compact_bit, l.unicode_ascii_bit};
            CHECK(bits.size() == 5);  // kind's 3 bits, compact and ascii do not overlap
            CHECK(l.unicode_ascii_size < l.unicode_compact_size);
            CHECK_FALSE(has(l.int2_ival));
        }

        const bool runtime = major == 3 && minor >= 7;
        CHECK(has(l.runtime_interpreters_head) == runtime);
        CHECK(has(l.gil_locked) == runtime);
        CHECK(has(l.gil_last_holder) == runtime);
        const bool inlineGil = runtime && minor <= 11;
        CHECK(has(l.runtime_ceval_gil) == inlineGil);
        CHECK(has(l.runtime_gilstate_tstate_current) == inlineGil);
        CHECK(has(l.interp_ceval_gil) == (major == 3 && minor >= 12));

        const bool interpreterFrames = major == 3 && minor >= 11;
        CHECK(has(l.frame_lasti) == !interpreterFrames);
        CHECK(has(l.code_varnames) == !interpreterFrames);
        CHECK(has(l.code_cellvars) == !interpreterFrames);
        CHECK(has(l.code_freevars) == !interpreterFrames);
        CHECK(has(l.code_localsplusnames) == interpreterFrames);
        CHECK(has(l.code_code_adaptive) == interpreterFrames);
        CHECK(has(l.code_qualname) == interpreterFrames);
        CHECK(has(l.tstate_datastack_chunk) == interpreterFrames);
        CHECK(has(l.tstate_native_thread_id) == interpreterFrames);
        CHECK(has(l.frame_owner) == interpreterFrames);
        CHECK(has(l.gen_iframe) == interpreterFrames);
        CHECK(has(l.gen_frame) == !interpreterFrames);
        CHECK((l.tpflags_managed_dict != 0) == interpreterFrames);
        CHECK(has(l.managed_dict_offset) == interpreterFrames);
        CHECK(has(l.managed_values_offset) == (major == 3 && minor == 11));
        if (interpreterFrames) {
            CHECK(l.owner_thread != l.owner_generator);
            CHECK(has(l.dictkeys_kind_general));
            CHECK(has(l.dictvalues_values));
            CHECK(l.managed_dict_offset < 0);
            CHECK(has(l.frame_prev_instr) != has(l.frame_instr_ptr));
        }

        const bool debugOffsets = major == 3 && minor >= 13;
        CHECK(has(l.runtime_debug_offsets) == debugOffsets);
        CHECK(has(l.dbg_size) == debugOffsets);
        CHECK(has(l.dbg_thread_state_current_frame) == debugOffsets);
        CHECK((l.tpflags_inline_values != 0) == debugOffsets);
        CHECK(has(l.dictvalues_valid) == debugOffsets);

        // 3.14+: tagged stack references, the interpreter-owned entry frame, and (free-threaded
        // only) per-thread bytecode; 3.15 has no C-stack owner any more.
        const bool since314 = major == 3 && minor >= 14;
        CHECK(has(l.stackref_tag_bits) == since314);
        CHECK(has(l.owner_interpreter) == since314);
        CHECK(has(l.owner_cstack) == (major == 3 && minor >= 12 && minor <= 14));
        CHECK(has(l.frame_tlbc_index) == (since314 && freeThreaded));
        CHECK(has(l.code_tlbc) == (since314 && freeThreaded));
        CHECK(has(l.gil_enabled) == (since314 && freeThreaded));
        CHECK(has(l.dbg_gc_collecting) == since314);
        CHECK(has(l.dbg_type_object_tp_basicsize) == (major == 3 && minor >= 15));
        if (since314) {
            CHECK(l.dbg_interpreter_frame_tlbc_index > 0);  // placed in both build kinds' format
            CHECK(l.dbg_size > findGeneratedLayout(3, 13)->dbg_size);
        }
    }
    CHECK(newestGeneratedLayout(false) == findGeneratedLayout(3, 15, false));
    CHECK(newestGeneratedLayout(true) == findGeneratedLayout(3, 15, true));
    CHECK(findGeneratedLayout(3, 13, true) == nullptr);  // 3.13t: not supported
    CHECK(findGeneratedLayout(3, 99) == nullptr);
    CHECK(findGeneratedLayout(2, 6) == nullptr);
}

TEST_CASE("layouts: debug offset positions lie inside _Py_DebugOffsets", "[layouts]") {
    for (const auto& [major, minor, freeThreaded] :
         {Supported{3, 13, false}, Supported{3, 14, false}, Supported{3, 14, true}, Supported{3, 15, false},
          Supported{3, 15, true}}) {
        const PyLayout* l = findGeneratedLayout(major, minor, freeThreaded);
        INFO("Python " << major << "." << minor << (freeThreaded ? "t" : ""));
        REQUIRE(l != nullptr);
        CHECK(l->runtime_debug_offsets == 0);
        CHECK(l->dbg_cookie == 0);
        for (auto position :
             {l->dbg_version, l->dbg_free_threaded, l->dbg_runtime_state_interpreters_head,
              l->dbg_interpreter_state_threads_head, l->dbg_thread_state_next, l->dbg_interpreter_frame_executable,
              l->dbg_code_object_co_code_adaptive, l->dbg_unicode_object_asciiobject_size}) {
            CHECK(position > 0);
            CHECK(position % 8 == 0);
            CHECK(position + 8 <= l->dbg_size);
        }
    }
}

TEST_CASE("layouts: the table agrees with what the interpreter says about itself", "[interp]") {
    const std::string python = pythonUnderTest();
    test::ChildProcess child({python, "-c", kFactsScript});
    const ChildFacts f = collect(child);
    const int major = static_cast<int>(f.num("VERSION", 0));
    const int minor = static_cast<int>(f.num("VERSION", 1));
    const auto hexversion = static_cast<std::uint32_t>(f.num("VERSION", 2));
    const bool freeThreaded = f.num("VERSION", 3) != 0;
    INFO("Python " << major << "." << minor << (freeThreaded ? "t" : "") << " (" << python << ")");
    const PyLayout* layout = findGeneratedLayout(major, minor, freeThreaded);
    REQUIRE(layout != nullptr);
    const PyLayout& l = *layout;

    CHECK((l.version_hex >> 16) == (hexversion >> 16));  // the patch release may differ
    CHECK(l.long_digit_bits == f.num("DIGIT", 0));
    CHECK(l.long_digit_size == f.num("DIGIT", 1));
    CHECK(l.long_digit == f.num("LONG", 0));  // tp_basicsize = offsetof(ob_digit)
    CHECK(l.long_digit_size == f.num("LONG", 1));
    CHECK(l.bytes_sval + 1 == f.num("BYTES"));  // the terminating NUL is counted
    CHECK(l.float_fval + 8 == f.num("FLOAT"));
    CHECK(l.tuple_item == f.num("TUPLE"));     // sizeof - the one item slot
    CHECK(l.list_item + 16 == f.num("LIST"));  // ob_item, allocated
    CHECK(l.module_dict == f.num("MODULE_DICTOFFSET"));
    CHECK(l.type_name < f.num("HEAPTYPE"));
    if (major == 3) CHECK(l.heaptype_cached_keys < f.num("HEAPTYPE"));

    if (major == 3 && minor >= 11) {
        CHECK(l.code_code_adaptive == f.num("CODE"));  // tp_basicsize stops at the bytecode
        CHECK(l.gen_iframe + l.frame_localsplus == f.num("GEN"));
    } else {
        CHECK(l.code_size == f.num("CODE"));
        CHECK(l.frame_size == f.num("FRAME"));
        CHECK(l.gen_frame < f.num("GEN"));
    }

    if (major == 3) {
        CHECK(l.unicode_data + 8 == f.num("STR"));  // sizeof(PyUnicodeObject)
        CHECK(l.unicode_ascii_size + 1 == f.num("EMPTY_STR"));
        CHECK(l.unicode_compact_size + 3 == f.num("LATIN1_STR"));  // two Latin-1 chars and the NUL
        CHECK(f.num("MAXUNICODE") == 0x10ffff);
    } else {
        CHECK(l.int2_ival + 8 == f.num("INT"));
        CHECK(l.unicode2_char_size == (f.num("MAXUNICODE") > 0xffff ? 4 : 2));
    }

    const auto classFlags = static_cast<std::uint64_t>(f.num("CLASS_FLAGS"));
    if (l.tpflags_managed_dict != 0) CHECK((classFlags & l.tpflags_managed_dict) != 0);
    if (l.tpflags_inline_values != 0) CHECK((classFlags & l.tpflags_inline_values) != 0);
}

TEST_CASE("layouts: runtime, interpreter, thread states and the GIL of a live interpreter", "[interp]") {
    const std::string python = pythonUnderTest();
    test::ChildProcess child({python, "-c", kRuntimeScript});
    const ChildFacts f = collect(child);
    const int major = static_cast<int>(f.num("VERSION", 0));
    const int minor = static_cast<int>(f.num("VERSION", 1));
    const bool freeThreaded = f.num("VERSION", 2) != 0;
    INFO("Python " << major << "." << minor << (freeThreaded ? "t" : "") << " (" << python << ")");
    const PyLayout* layout = findGeneratedLayout(major, minor, freeThreaded);
    REQUIRE(layout != nullptr);
    const PyLayout& l = *layout;
    const std::uint64_t runtime = f.address("RUNTIME");
    const std::uint64_t interp = f.address("INTERP");
    const std::uint64_t mainTstate = f.address("MAIN");
    const std::uint64_t mainIdent = f.address("MAIN", 1);
    const auto pid = static_cast<std::int64_t>(f.num("MAIN", 2));
    const std::uint64_t spinnerIdent = f.address("SPINNER");
    REQUIRE(interp != 0);
    REQUIRE(mainTstate != 0);

    LiveProcessMemory memory(child.pid());
    auto at = [](std::uint64_t base, std::int64_t offset) { return base + static_cast<std::uint64_t>(offset); };
    auto pointer = [&](std::uint64_t address) {
        auto value = readPointer(memory, address);
        REQUIRE(value.ok());
        return value.value();
    };

    // _PyRuntime (3.7+) leads to the same interpreter as PyInterpreterState_Head().
    CHECK((runtime != 0) == has(l.runtime_interpreters_head));
    if (runtime != 0) CHECK(pointer(at(runtime, l.runtime_interpreters_head)) == interp);
    CHECK(pointer(at(interp, l.interp_next)) == 0);
    CHECK(pointer(at(interp, l.interp_modules)) != 0);

    // The thread list: the main thread and the spinner, each pointing back at the interpreter.
    std::map<std::uint64_t, std::uint64_t> tstates;  // thread id -> tstate
    for (std::uint64_t t = pointer(at(interp, l.interp_tstate_head)); t != 0 && tstates.size() < 16;
         t = pointer(at(t, l.tstate_next))) {
        CHECK(pointer(at(t, l.tstate_interp)) == interp);
        tstates[pointer(at(t, l.tstate_thread_id))] = t;
    }
    REQUIRE(tstates.size() == 2);
    CHECK(tstates[mainIdent] == mainTstate);
    REQUIRE(tstates.count(spinnerIdent) == 1);
    if (has(l.tstate_native_thread_id)) {
        auto tid = readValue<std::int64_t>(memory, at(mainTstate, l.tstate_native_thread_id));
        REQUIRE(tid.ok());
        CHECK(tid.value() == pid);  // the main thread's OS id is the process id
    }

    // The GIL: the spinner holds it nearly all the time.
    if (!has(l.gil_locked)) return;  // 2.7, 3.6: a GIL without a _gil_runtime_state
    if (freeThreaded) return;        // no GIL to hold
    std::uint64_t gil = 0;
    if (has(l.runtime_ceval_gil)) {
        gil = at(runtime, l.runtime_ceval_gil);
    } else {
        REQUIRE(has(l.interp_ceval_gil));
        gil = pointer(at(interp, l.interp_ceval_gil));
        CHECK(gil == at(interp, l.interp_gil));  // the main interpreter uses its own _gil
    }
    int lockedSeen = 0;
    int holderSeen = 0;
    int currentSeen = 0;
    for (int i = 0; i < 200; ++i) {
        auto locked = readValue<std::int32_t>(memory, at(gil, l.gil_locked));
        REQUIRE(locked.ok());
        CHECK((locked.value() == 0 || locked.value() == 1));
        lockedSeen += locked.value() == 1;
        const std::uint64_t holder = pointer(at(gil, l.gil_last_holder));
        holderSeen += holder == tstates[spinnerIdent];
        if (has(l.runtime_gilstate_tstate_current)) {
            const std::uint64_t current = pointer(at(runtime, l.runtime_gilstate_tstate_current));
            CHECK((current == 0 || current == tstates[spinnerIdent] || current == mainTstate));
            currentSeen += current == tstates[spinnerIdent];
        }
        ::usleep(500);
    }
    CHECK(lockedSeen > 100);
    CHECK(holderSeen > 100);
    if (has(l.runtime_gilstate_tstate_current)) CHECK(currentSeen > 100);
}
