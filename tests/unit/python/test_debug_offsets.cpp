#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstring>
#include <sstream>
#include <string>
#include <vector>

#include "debug_offsets_image.h"
#include "pyspy/process/live_memory.h"
#include "pyspy/python/debug_offsets.h"
#include "support/child_process.h"

using namespace pyspy;
using pyspy::test::goodImage;
using pyspy::test::put64;

namespace {

const PyLayout& table313() {
    const PyLayout* l = findGeneratedLayout(3, 13);
    REQUIRE(l != nullptr);
    return *l;
}

// The fields applyDebugOffsets replaces must come out as the table has them.
void checkSameAsTable(const PyLayout& applied, const PyLayout& l) {
    CHECK(applied.runtime_interpreters_head == l.runtime_interpreters_head);
    CHECK(applied.interp_next == l.interp_next);
    CHECK(applied.interp_tstate_head == l.interp_tstate_head);
    CHECK(applied.interp_modules == l.interp_modules);
    CHECK(applied.interp_ceval_gil == l.interp_ceval_gil);
    CHECK(applied.interp_gil == l.interp_gil);
    CHECK(applied.gil_locked == l.gil_locked);
    CHECK(applied.gil_last_holder == l.gil_last_holder);
    CHECK(applied.tstate_next == l.tstate_next);
    CHECK(applied.tstate_interp == l.tstate_interp);
    CHECK(applied.tstate_current_frame == l.tstate_current_frame);
    CHECK(applied.tstate_thread_id == l.tstate_thread_id);
    CHECK(applied.tstate_native_thread_id == l.tstate_native_thread_id);
    CHECK(applied.tstate_datastack_chunk == l.tstate_datastack_chunk);
    CHECK(applied.frame_size == l.frame_size);
    CHECK(applied.frame_back == l.frame_back);
    CHECK(applied.frame_code == l.frame_code);
    CHECK(applied.frame_instr_ptr == l.frame_instr_ptr);
    CHECK(applied.frame_localsplus == l.frame_localsplus);
    CHECK(applied.frame_owner == l.frame_owner);
    CHECK(applied.code_size == l.code_size);
    CHECK(applied.code_filename == l.code_filename);
    CHECK(applied.code_name == l.code_name);
    CHECK(applied.code_qualname == l.code_qualname);
    CHECK(applied.code_linetable == l.code_linetable);
    CHECK(applied.code_firstlineno == l.code_firstlineno);
    CHECK(applied.code_code_adaptive == l.code_code_adaptive);
    CHECK(applied.object_type == l.object_type);
    CHECK(applied.type_name == l.type_name);
    CHECK(applied.type_flags == l.type_flags);
    CHECK(applied.dict_keys == l.dict_keys);
    CHECK(applied.dict_values == l.dict_values);
    CHECK(applied.long_lv_tag == l.long_lv_tag);
    CHECK(applied.long_digit == l.long_digit);
    CHECK(applied.bytes_size == l.bytes_size);
    CHECK(applied.bytes_sval == l.bytes_sval);
    CHECK(applied.unicode_state == l.unicode_state);
    CHECK(applied.unicode_length == l.unicode_length);
    CHECK(applied.unicode_ascii_size == l.unicode_ascii_size);
    CHECK(applied.major == l.major);
    CHECK(applied.minor == l.minor);
}

constexpr std::uint64_t kRuntime = 0x7f0000100000;

}  // namespace

TEST_CASE("debug offsets: a well-formed table is read and applied", "[debug_offsets]") {
    const PyLayout& l = table313();
    BufferMemory memory;
    memory.map(kRuntime + static_cast<std::uint64_t>(l.runtime_debug_offsets), goodImage(l));
    auto offsets = readDebugOffsets(memory, kRuntime, l);
    INFO((offsets.ok() ? std::string() : offsets.error().describe()));
    REQUIRE(offsets.ok());
    CHECK(memory.readCount() == 1);  // one read for the whole struct
    CHECK(offsets->version == l.version_hex);
    CHECK_FALSE(offsets->freeThreaded);
    CHECK(offsets->tstateCurrentFrame == static_cast<std::uint64_t>(l.tstate_current_frame));
    CHECK(offsets->interpGilLocked == static_cast<std::uint64_t>(l.interp_gil + l.gil_locked));
    checkSameAsTable(applyDebugOffsets(l, offsets.value()), l);

    // A 3.13.x whose structs moved: the target's values win.
    auto moved = goodImage(l);
    put64(moved, l.dbg_version, l.version_hex + 0x100);  // a later micro release
    put64(moved, l.dbg_thread_state_current_frame, static_cast<std::uint64_t>(l.tstate_current_frame + 8));
    put64(moved, l.dbg_code_object_co_code_adaptive, static_cast<std::uint64_t>(l.code_code_adaptive - 8));
    put64(moved, l.dbg_interpreter_state_gil_runtime_state_holder,
          static_cast<std::uint64_t>(l.interp_gil + l.gil_last_holder + 16));
    BufferMemory movedMemory;
    movedMemory.map(kRuntime, moved);
    auto movedOffsets = readDebugOffsets(movedMemory, kRuntime, l);
    REQUIRE(movedOffsets.ok());
    const PyLayout applied = applyDebugOffsets(l, movedOffsets.value());
    CHECK(applied.tstate_current_frame == l.tstate_current_frame + 8);
    CHECK(applied.code_code_adaptive == l.code_code_adaptive - 8);
    CHECK(applied.gil_last_holder == l.gil_last_holder + 16);
    CHECK(applied.gil_locked == l.gil_locked);
    CHECK(applied.version_hex == l.version_hex + 0x100);
    CHECK(applied.tstate_next == l.tstate_next);

    // A newer minor version is accepted when its values pass the checks.
    auto newer = goodImage(l);
    put64(newer, l.dbg_version, 0x030e00f0);
    BufferMemory newerMemory;
    newerMemory.map(kRuntime, newer);
    auto newerOffsets = readDebugOffsets(newerMemory, kRuntime, l);
    REQUIRE(newerOffsets.ok());
    CHECK(newerOffsets->version == 0x030e00f0);

    // A free-threaded build is reported, not refused: the caller decides.
    auto freeThreaded = goodImage(l);
    put64(freeThreaded, l.dbg_free_threaded, 1);
    BufferMemory ftMemory;
    ftMemory.map(kRuntime, freeThreaded);
    auto ftOffsets = readDebugOffsets(ftMemory, kRuntime, l);
    REQUIRE(ftOffsets.ok());
    CHECK(ftOffsets->freeThreaded);
}

TEST_CASE("debug offsets: bad images are refused", "[debug_offsets]") {
    const PyLayout& l = table313();
    auto refused = [&](std::vector<std::uint8_t> image, ReadErrorKind kind) {
        BufferMemory memory;
        memory.map(kRuntime, std::move(image));
        auto offsets = readDebugOffsets(memory, kRuntime, l);
        REQUIRE_FALSE(offsets.ok());
        CHECK(offsets.error().kind == kind);
        return offsets.error().what;
    };
    auto with = [&](std::int64_t position, std::uint64_t value) {
        auto image = goodImage(l);
        put64(image, position, value);
        return image;
    };

    auto badCookie = goodImage(l);
    badCookie[3] = 'X';
    CHECK(refused(badCookie, ReadErrorKind::Invalid).find("cookie") != std::string::npos);
    CHECK_FALSE(
        refused(std::vector<std::uint8_t>(static_cast<std::size_t>(l.dbg_size), 0), ReadErrorKind::Invalid).empty());

    // Huge or out-of-struct offsets, implausible sizes.
    refused(with(l.dbg_thread_state_next, std::uint64_t{1} << 40), ReadErrorKind::Invalid);
    refused(with(l.dbg_interpreter_frame_owner, 70000), ReadErrorKind::Invalid);
    refused(with(l.dbg_pyobject_ob_type, 1 << 20), ReadErrorKind::Invalid);
    refused(with(l.dbg_thread_state_current_frame, static_cast<std::uint64_t>(l.tstate_size)),
            ReadErrorKind::Invalid);  // at or past the end of PyThreadState
    refused(with(l.dbg_thread_state_size, 0), ReadErrorKind::Invalid);
    refused(with(l.dbg_code_object_size, std::uint64_t{1} << 33), ReadErrorKind::Invalid);
    refused(with(l.dbg_runtime_state_size, std::uint64_t{1} << 30), ReadErrorKind::Invalid);
    refused(with(l.dbg_interpreter_state_gil_runtime_state_locked, static_cast<std::uint64_t>(l.interp_gil - 8)),
            ReadErrorKind::Invalid);  // outside _gil
    refused(with(l.dbg_thread_state_interp, static_cast<std::uint64_t>(l.tstate_next)),
            ReadErrorKind::Invalid);  // two members at one offset

    // Versions: before 3.13 there is no such table; garbage is no version.
    refused(with(l.dbg_version, 0x030c01f0), ReadErrorKind::Invalid);
    refused(with(l.dbg_version, 0x020712f0), ReadErrorKind::Invalid);
    refused(with(l.dbg_version, 0xdeadbeef030d00f0), ReadErrorKind::Invalid);
    refused(with(l.dbg_free_threaded, 7), ReadErrorKind::Invalid);

    // Truncated: the struct runs past the end of mapped memory.
    auto truncated = goodImage(l);
    truncated.resize(truncated.size() / 2);
    refused(truncated, ReadErrorKind::Fault);
    BufferMemory empty;
    CHECK(readDebugOffsets(empty, kRuntime, l).error().kind == ReadErrorKind::Fault);

    // A table without debug offsets (before 3.13) cannot read any.
    for (auto [major, minor] : {std::pair{3, 12}, std::pair{3, 7}, std::pair{2, 7}}) {
        const PyLayout* old = findGeneratedLayout(major, minor);
        REQUIRE(old != nullptr);
        BufferMemory memory;
        memory.map(kRuntime, goodImage(l));
        CHECK(readDebugOffsets(memory, kRuntime, *old).error().kind == ReadErrorKind::Unsupported);
    }
    // A format whose size is absurd is not used to size a read.
    PyLayout broken = l;
    broken.dbg_size = std::int64_t{1} << 40;
    BufferMemory memory;
    memory.map(kRuntime, goodImage(l));
    CHECK(readDebugOffsets(memory, kRuntime, broken).error().kind == ReadErrorKind::Unsupported);
    CHECK(memory.readCount() == 0);
}

TEST_CASE("debug offsets: a live interpreter's _PyRuntime", "[interp]") {
    const std::string python = test::testPython();
    if (python.find('/') != std::string::npos && ::access(python.c_str(), X_OK) != 0) std::exit(77);
    const char* script = R"PY(
import ctypes, sys, sysconfig, time
try:
    runtime = ctypes.addressof(ctypes.c_char.in_dll(ctypes.pythonapi, "_PyRuntime"))
except Exception:
    runtime = 0
sys.stdout.write("RUNTIME %d %d %d %d %d\n" % (sys.version_info[0], sys.version_info[1], sys.hexversion, runtime,
                                              1 if sysconfig.get_config_var("Py_GIL_DISABLED") else 0))
sys.stdout.flush()
while True:
    time.sleep(1000)
)PY";
    test::ChildProcess child({python, "-c", script});
    auto line = child.waitFor("RUNTIME ");
    REQUIRE(line);
    std::istringstream words(*line);
    int major = 0, minor = 0;
    std::uint64_t hexversion = 0, runtime = 0;
    int freeThreaded = 0;
    words >> major >> minor >> hexversion >> runtime >> freeThreaded;
    INFO("Python " << major << "." << minor << (freeThreaded ? "t" : "") << " (" << python << "), _PyRuntime at "
                   << runtime);
    // The struct as the version's own table describes it (newer ones: the newest table's).
    const PyLayout* own = findGeneratedLayout(major, minor, freeThreaded != 0);
    if (own == nullptr && major == 3 && minor > 13) own = newestGeneratedLayout(freeThreaded != 0);
    const PyLayout& format = own != nullptr && own->dbg_size != kAbsent ? *own : table313();

    if (major == 2 || (major == 3 && minor < 7)) {
        CHECK(runtime == 0);  // no _PyRuntime before 3.7
        WARN("Python " << major << "." << minor << " has no _PyRuntime: no debug offsets to read");
        return;
    }
    REQUIRE(runtime != 0);
    LiveProcessMemory memory(child.pid());
    auto offsets = readDebugOffsets(memory, runtime, format);
    if (major == 3 && minor < 13) {
        // The same bytes hold other fields: no cookie there.
        REQUIRE_FALSE(offsets.ok());
        CHECK(offsets.error().kind == ReadErrorKind::Invalid);
        CHECK(offsets.error().what.find("cookie") != std::string::npos);
        return;
    }
    INFO((offsets.ok() ? std::string() : offsets.error().describe()));
    REQUIRE(offsets.ok());
    CHECK(offsets->version == hexversion);
    CHECK(offsets->freeThreaded == (freeThreaded != 0));
    const PyLayout* table = findGeneratedLayout(major, minor, freeThreaded != 0);
    if (table == nullptr) {
        WARN("Python " << major << "." << minor << " is newer than the tables: debug offsets read with the "
                       << format.major << "." << format.minor << " format");
        return;
    }
    if (minor >= 14) {
        CHECK(offsets->gcSize != 0);
        CHECK(applyDebugOffsets(*table, offsets.value()).interp_gc_collecting == table->interp_gc_collecting);
        CHECK(applyDebugOffsets(*table, offsets.value()).tstate_datastack_top == table->tstate_datastack_top);
        CHECK((offsets->frameTlbcIndex != 0) == (freeThreaded != 0));
        CHECK(applyDebugOffsets(*table, offsets.value()).frame_tlbc_index == table->frame_tlbc_index);
        CHECK(applyDebugOffsets(*table, offsets.value()).code_tlbc == table->code_tlbc);
    }
    // The target's own offsets equal the generated table's (3.13.0 headers).
    checkSameAsTable(applyDebugOffsets(*table, offsets.value()), *table);
    CHECK(offsets->runtimeSize == static_cast<std::uint64_t>(table->runtime_size));
    CHECK(offsets->interpSize == static_cast<std::uint64_t>(table->interp_size));
    CHECK(offsets->tstateSize == static_cast<std::uint64_t>(table->tstate_size));
}
