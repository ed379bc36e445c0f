// Versions no interpreter of which runs here: 3.15 and 3.15t are read through their own
// _Py_DebugOffsets on top of the derived tables (docs/layouts.md), and any newer version
// on top of the newest table. These tests build a 3.15 process image in a BufferMemory
// (the debug offsets in 3.15's format, with the struct offsets a 3.15 build has where
// they differ from 3.14's) and read it the way locatePython and the walker do.
#include <catch2/catch.hpp>

#include <cstring>
#include <string>
#include <vector>

#include "debug_offsets_image.h"
#include "pyspy/process/memory.h"
#include "pyspy/python/debug_offsets.h"
#include "pyspy/python/frame_walker.h"
#include "pyspy/python/version.h"

using namespace pyspy;

namespace {

constexpr std::uint64_t kRuntime = 0x7f0000100000;
constexpr std::uint64_t kStrType = 0x1000, kBytesType = 0x2000, kCodeType = 0x3000;

std::uint64_t u(std::int64_t v) {
    return static_cast<std::uint64_t>(v);
}

const PyLayout& table(int minor, bool freeThreaded) {
    const PyLayout* l = findGeneratedLayout(3, minor, freeThreaded);
    REQUIRE(l != nullptr);
    return *l;
}

// The values a 3.15 build reports in its _Py_DebugOffsets: the table's, except the
// PyThreadState members 3.15 moved (base_frame and the profiling fields came before
// thread_id; offsets of a Linux x86-64 3.15.0 build), its reorganised GC state and its
// 8 bytes larger PyTypeObject.
struct Image315 {
    std::vector<std::uint8_t> bytes;
    const PyLayout& format;

    explicit Image315(const PyLayout& l, std::uint64_t version = 0x030f00f0) : bytes(test::goodImage(l)), format(l) {
        put(l.dbg_version, version);
        put(l.dbg_interpreter_state_gc, 1024);
        put(l.dbg_gc_size, 400);
        put(l.dbg_gc_collecting, 112);  // 192 in 3.14
        put(l.dbg_thread_state_size, 880);
        put(l.dbg_thread_state_thread_id, 176);
        put(l.dbg_thread_state_native_thread_id, 184);
        put(l.dbg_thread_state_datastack_chunk, 256);
        put(l.dbg_type_object_tp_dictoffset, u(l.type_dictoffset) + 8);
        put(l.dbg_heap_type_object_ht_cached_keys, u(l.heaptype_cached_keys) + 8);
    }
    void put(std::int64_t position, std::uint64_t value) {
        REQUIRE(position >= 0);
        REQUIRE(u(position) + 8 <= bytes.size());
        std::memcpy(bytes.data() + position, &value, 8);
    }
    Result<DebugOffsets> read(const PyLayout& with) const {
        BufferMemory memory;
        memory.map(kRuntime + u(with.runtime_debug_offsets), bytes);
        return readDebugOffsets(memory, kRuntime, with);
    }
};

// Objects laid out by a (3.14+) layout: str, bytes, code objects and interpreter frames.
struct ImageWriter {
    BufferMemory memory;
    const PyLayout& l;

    static void put64(std::vector<std::uint8_t>& obj, std::int64_t at, std::uint64_t v) {
        std::memcpy(obj.data() + at, &v, 8);
    }
    void putString(std::uint64_t at, const std::string& text) {
        std::vector<std::uint8_t> obj(u(l.unicode_ascii_size) + text.size() + 256, 0);
        put64(obj, l.object_type, kStrType);
        put64(obj, l.unicode_length, text.size());
        const std::uint32_t state =
            (1u << l.unicode_kind_shift) | (1u << l.unicode_compact_bit) | (1u << l.unicode_ascii_bit);
        std::memcpy(obj.data() + l.unicode_state, &state, 4);
        std::memcpy(obj.data() + l.unicode_ascii_size, text.data(), text.size());
        memory.map(at, std::move(obj));
    }
    void putBytes(std::uint64_t at, const std::vector<std::uint8_t>& data) {
        std::vector<std::uint8_t> obj(u(l.bytes_sval) + data.size() + 256, 0);
        put64(obj, l.object_type, kBytesType);
        put64(obj, l.bytes_size, data.size());
        std::memcpy(obj.data() + l.bytes_sval, data.data(), data.size());
        memory.map(at, std::move(obj));
    }
    // A code object whose instructions are all on firstLine + 2, with `copies` extra
    // per-thread bytecode copies (free-threaded) in a _PyCodeArray at at+0x400.
    void putCode(std::uint64_t at, const std::string& name, int firstLine, int copies = 0) {
        std::vector<std::uint8_t> obj(u(l.code_code_adaptive) + 64, 0);
        put64(obj, l.object_type, kCodeType);
        put64(obj, l.code_filename, at + 0x1000);
        put64(obj, l.code_name, at + 0x2000);
        put64(obj, l.code_qualname, at + 0x2000);
        put64(obj, l.code_linetable, at + 0x3000);
        const std::int32_t line = firstLine, traceable = 0;
        std::memcpy(obj.data() + l.code_firstlineno, &line, 4);
        std::memcpy(obj.data() + l.code_firsttraceable, &traceable, 4);
        if (copies > 0) {
            put64(obj, l.code_tlbc, at + 0x400);
            std::vector<std::uint8_t> array(u(l.codearray_entries) + 8 * (copies + 1), 0);
            put64(array, l.codearray_size, u(copies + 1));
            put64(array, l.codearray_entries, at + u(l.code_code_adaptive));
            for (int i = 1; i <= copies; ++i) put64(array, l.codearray_entries + 8 * i, at + 0x800 + 0x100 * u(i));
            memory.map(at + 0x400, std::move(array));
        }
        memory.map(at, std::move(obj));
        putString(at + 0x1000, "/app/" + name + ".py");
        putString(at + 0x2000, name);
        putBytes(at + 0x3000, {0x80 | (13 << 3) | 15, 2 << 1});  // 16 code units, line + 2
    }
    // A frame; its executable a tagged _PyStackRef (deferred: the low bit set).
    void putFrame(std::uint64_t at, std::uint64_t code, std::uint64_t back, std::uint64_t instr, std::int8_t owner,
                  std::int32_t tlbcIndex = 0) {
        std::vector<std::uint8_t> frame(u(l.frame_localsplus) + 8, 0);
        put64(frame, l.frame_code, code | 1);
        put64(frame, l.frame_back, back);
        put64(frame, l.frame_instr_ptr, instr);
        std::memcpy(frame.data() + l.frame_owner, &owner, 1);
        if (l.frame_tlbc_index != kAbsent) std::memcpy(frame.data() + l.frame_tlbc_index, &tlbcIndex, 4);
        memory.map(at, std::move(frame));
    }
    TypeAddresses types() const {
        TypeAddresses t;
        t.str = kStrType;
        t.bytes = kBytesType;
        t.code = kCodeType;
        return t;
    }
};

}  // namespace

TEST_CASE("3.15: the debug offsets in 3.15's format are read and laid over the 3.15 table", "[newer]") {
    for (bool freeThreaded : {false, true}) {
        const PyLayout& l = table(15, freeThreaded);
        INFO("3.15" << (freeThreaded ? "t" : ""));
        const Image315 image(l);
        auto offsets = image.read(l);
        INFO((offsets.ok() ? std::string() : offsets.error().describe()));
        REQUIRE(offsets.ok());
        CHECK(offsets->version == 0x030f00f0);
        CHECK(offsets->freeThreaded == freeThreaded);
        const PyLayout applied = applyDebugOffsets(l, offsets.value());
        CHECK(applied.tstate_thread_id == 176);
        CHECK(applied.tstate_native_thread_id == 184);
        CHECK(applied.tstate_datastack_chunk == 256);
        CHECK(applied.tstate_datastack_top == 264);  // kept next to datastack_chunk
        CHECK(applied.tstate_size == 880);
        CHECK(applied.interp_gc_collecting == 1024 + 112);
        CHECK(applied.type_dictoffset == l.type_dictoffset + 8);
        CHECK(applied.heaptype_cached_keys == l.heaptype_cached_keys + 8);
        CHECK(applied.version_hex == 0x030f00f0);
        CHECK(applied.frame_tlbc_index == l.frame_tlbc_index);
        CHECK(applied.code_tlbc == l.code_tlbc);

        // 3.15 inserted thread-state and type members: its struct read as 3.14's lays
        // other members' values on the wrong fields, and the checks refuse it.
        const PyLayout& older = table(14, freeThreaded);
        auto misread = image.read(older);
        REQUIRE_FALSE(misread.ok());
        CHECK(misread.error().kind == ReadErrorKind::Invalid);
    }
}

TEST_CASE("3.15: corrupted debug offsets are refused with a clear message", "[newer]") {
    const PyLayout& l = table(15, false);
    const auto refused = [&](Image315 image, const std::string& expected) {
        auto offsets = image.read(l);
        REQUIRE_FALSE(offsets.ok());
        CHECK(offsets.error().kind == ReadErrorKind::Invalid);
        INFO(offsets.error().describe());
        CHECK(offsets.error().describe().find(expected) != std::string::npos);
    };
    Image315 badCookie(l);
    std::memcpy(badCookie.bytes.data() + l.dbg_cookie, "xdebugpz", 8);
    refused(badCookie, "cookie");
    Image315 hugeThreadState(l);
    hugeThreadState.put(l.dbg_thread_state_size, std::uint64_t{1} << 32);
    refused(hugeThreadState, "thread_state.size");
    Image315 offsetOutside(l);
    offsetOutside.put(l.dbg_thread_state_datastack_chunk, 900);  // past the 880-byte PyThreadState
    refused(offsetOutside, "thread_state.datastack_chunk");
    Image315 gcOutside(l);
    gcOutside.put(l.dbg_gc_collecting, 400);  // at the end of the 400-byte GC state
    refused(gcOutside, "gc.collecting");
    Image315 tlbcWithGil(l);
    tlbcWithGil.put(l.dbg_code_object_co_tlbc, 224);  // per-thread bytecode in a build with the GIL
    refused(tlbcWithGil, "co_tlbc");
    Image315 wrongVersion(l, 0x020712f0);
    refused(wrongVersion, "version");
    Image315 clash(l);
    clash.put(l.dbg_thread_state_native_thread_id, 176);  // two members at one offset
    refused(clash, "same offset");
    Image315 typeOutside(l);
    typeOutside.put(l.dbg_type_object_tp_basicsize, 70000);
    refused(typeOutside, "type_object.tp_basicsize");
}

TEST_CASE("3.16 and later: read through the newest format when their offsets validate", "[newer]") {
    // A newer version that kept 3.15's struct is accepted (locatePython then warns that
    // it is newer than pyspy-cpp knows); the minor version comes from the offsets.
    const PyLayout* newest = newestGeneratedLayout(false);
    REQUIRE(newest != nullptr);
    CHECK(newest->minor == 15);
    auto offsets = Image315(*newest, 0x031000a1).read(*newest);
    REQUIRE(offsets.ok());
    CHECK(offsets->version == 0x031000a1);
    CHECK(versionFromHex(static_cast<std::uint32_t>(offsets->version)).minor == 16);
}

TEST_CASE("3.15: a stack walks through the applied layout, tags, base frame and bytecode copies", "[newer]") {
    for (bool freeThreaded : {false, true}) {
        const PyLayout& base = table(15, freeThreaded);
        INFO("3.15" << (freeThreaded ? "t" : ""));
        auto offsets = Image315(base).read(base);
        REQUIRE(offsets.ok());
        const PyLayout l = applyDebugOffsets(base, offsets.value());
        ImageWriter image{BufferMemory(), l};
        const int copies = freeThreaded ? 2 : 0;
        image.putCode(0x100000, "inner", 10, copies);
        image.putCode(0x200000, "outer", 20, copies);
        // inner runs the second per-thread copy of its bytecode (free-threaded), 4 code
        // units in; outer its own bytecode; then the thread's base frame (3.15: owned by
        // the interpreter, executable None) ends the chain.
        const std::uint64_t innerInstr =
            freeThreaded ? 0x100000 + 0x800 + 0x200 + 8 : 0x100000 + u(l.code_code_adaptive) + 8;
        image.putFrame(0x900000, 0x100000, 0x900100, innerInstr, static_cast<std::int8_t>(l.owner_thread),
                       freeThreaded ? 2 : 0);
        image.putFrame(0x900100, 0x200000, 0x900200, 0x200000 + u(l.code_code_adaptive) + 12,
                       static_cast<std::int8_t>(l.owner_thread));
        image.putFrame(0x900200, 0x5000, 0, 0, static_cast<std::int8_t>(l.owner_interpreter));
        ObjectReader reader(image.memory, l, image.types());
        CodeCache codes;
        FrameWalker walker(image.memory, reader, codes);
        auto chain = walker.walk(0x900000);
        INFO((chain.ok() ? std::string() : chain.error().describe()));
        REQUIRE(chain.ok());
        REQUIRE(chain->frames.size() == 2);
        CHECK(chain->frames[0].function() == "inner");
        CHECK(chain->frames[0].filename() == "/app/inner.py");
        CHECK(chain->frames[0].line == 12);
        CHECK(chain->frames[0].codeAddress == 0x100000);  // the tag bit is not part of the address
        CHECK(chain->frames[1].function() == "outer");
        CHECK(chain->frames[1].line == 22);

        if (freeThreaded) {
            // A copy index past the code's array is an error, never a wrong line.
            image.putFrame(0x900400, 0x100000, 0x900100, innerInstr, static_cast<std::int8_t>(l.owner_thread), 7);
            CodeCache fresh;
            FrameWalker again(image.memory, reader, fresh);
            auto bad = again.walk(0x900400);
            REQUIRE_FALSE(bad.ok());
            CHECK(bad.error().describe().find("bytecode copy") != std::string::npos);
        }
    }
}
