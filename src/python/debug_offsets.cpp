#include "pyspy/python/debug_offsets.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

namespace pyspy {

namespace {

// Which struct a member describes: offsets are checked against that struct's size and
// must differ from the struct's other offsets.
enum class Section { Runtime, Interp, Thread, Frame, Code, Gc, Objects };

enum class Kind {
    Size,      // sizeof a struct
    Offset,    // a member offset inside its section's struct
    Gil,       // an offset inside the interpreter's _gil (checked against interpGilRuntimeState)
    Optional,  // an offset only some builds have (0: absent), in a newer format only
};

// Members only newer formats have are read when the format places them.
enum class Since { Always, Newer };

struct Member {
    std::int64_t PyLayout::*position;  // where it sits in _Py_DebugOffsets (the format)
    std::uint64_t DebugOffsets::*value;
    std::int64_t PyLayout::*target;  // the PyLayout field it overrides; nullptr: handled apart
    Section section;
    Kind kind;
    const char* name;
    Since since = Since::Always;
};

using L = PyLayout;
using D = DebugOffsets;

// Every value read, after the cookie, version and free_threaded words.
constexpr Member kMembers[] = {
    {&L::dbg_runtime_state_size, &D::runtimeSize, &L::runtime_size, Section::Runtime, Kind::Size, "runtime_state.size"},
    {&L::dbg_runtime_state_interpreters_head, &D::runtimeInterpretersHead, &L::runtime_interpreters_head,
     Section::Runtime, Kind::Offset, "runtime_state.interpreters_head"},

    {&L::dbg_interpreter_state_size, &D::interpSize, &L::interp_size, Section::Interp, Kind::Size,
     "interpreter_state.size"},
    {&L::dbg_interpreter_state_next, &D::interpNext, &L::interp_next, Section::Interp, Kind::Offset,
     "interpreter_state.next"},
    {&L::dbg_interpreter_state_threads_head, &D::interpThreadsHead, &L::interp_tstate_head, Section::Interp,
     Kind::Offset, "interpreter_state.threads_head"},
    {&L::dbg_interpreter_state_imports_modules, &D::interpImportsModules, &L::interp_modules, Section::Interp,
     Kind::Offset, "interpreter_state.imports_modules"},
    {&L::dbg_interpreter_state_ceval_gil, &D::interpCevalGil, &L::interp_ceval_gil, Section::Interp, Kind::Offset,
     "interpreter_state.ceval_gil"},
    {&L::dbg_interpreter_state_gil_runtime_state, &D::interpGilRuntimeState, &L::interp_gil, Section::Interp,
     Kind::Offset, "interpreter_state.gil_runtime_state"},
    {&L::dbg_interpreter_state_gil_runtime_state_locked, &D::interpGilLocked, nullptr, Section::Interp, Kind::Gil,
     "interpreter_state.gil_runtime_state_locked"},
    {&L::dbg_interpreter_state_gil_runtime_state_holder, &D::interpGilHolder, nullptr, Section::Interp, Kind::Gil,
     "interpreter_state.gil_runtime_state_holder"},
    {&L::dbg_interpreter_state_gc, &D::interpGc, nullptr, Section::Interp, Kind::Offset, "interpreter_state.gc",
     Since::Newer},
    {&L::dbg_gc_size, &D::gcSize, nullptr, Section::Gc, Kind::Size, "gc.size", Since::Newer},
    {&L::dbg_gc_collecting, &D::gcCollecting, nullptr, Section::Gc, Kind::Offset, "gc.collecting", Since::Newer},

    {&L::dbg_thread_state_size, &D::tstateSize, &L::tstate_size, Section::Thread, Kind::Size, "thread_state.size"},
    {&L::dbg_thread_state_next, &D::tstateNext, &L::tstate_next, Section::Thread, Kind::Offset, "thread_state.next"},
    {&L::dbg_thread_state_interp, &D::tstateInterp, &L::tstate_interp, Section::Thread, Kind::Offset,
     "thread_state.interp"},
    {&L::dbg_thread_state_current_frame, &D::tstateCurrentFrame, &L::tstate_current_frame, Section::Thread,
     Kind::Offset, "thread_state.current_frame"},
    {&L::dbg_thread_state_thread_id, &D::tstateThreadId, &L::tstate_thread_id, Section::Thread, Kind::Offset,
     "thread_state.thread_id"},
    {&L::dbg_thread_state_native_thread_id, &D::tstateNativeThreadId, &L::tstate_native_thread_id, Section::Thread,
     Kind::Offset, "thread_state.native_thread_id"},
    {&L::dbg_thread_state_datastack_chunk, &D::tstateDatastackChunk, &L::tstate_datastack_chunk, Section::Thread,
     Kind::Offset, "thread_state.datastack_chunk"},

    {&L::dbg_interpreter_frame_size, &D::frameSize, &L::frame_size, Section::Frame, Kind::Size,
     "interpreter_frame.size"},
    {&L::dbg_interpreter_frame_previous, &D::framePrevious, &L::frame_back, Section::Frame, Kind::Offset,
     "interpreter_frame.previous"},
    {&L::dbg_interpreter_frame_executable, &D::frameExecutable, &L::frame_code, Section::Frame, Kind::Offset,
     "interpreter_frame.executable"},
    {&L::dbg_interpreter_frame_instr_ptr, &D::frameInstrPtr, &L::frame_instr_ptr, Section::Frame, Kind::Offset,
     "interpreter_frame.instr_ptr"},
    {&L::dbg_interpreter_frame_localsplus, &D::frameLocalsplus, &L::frame_localsplus, Section::Frame, Kind::Offset,
     "interpreter_frame.localsplus"},
    {&L::dbg_interpreter_frame_owner, &D::frameOwner, &L::frame_owner, Section::Frame, Kind::Offset,
     "interpreter_frame.owner"},
    {&L::dbg_interpreter_frame_tlbc_index, &D::frameTlbcIndex, &L::frame_tlbc_index, Section::Frame, Kind::Optional,
     "interpreter_frame.tlbc_index", Since::Newer},

    {&L::dbg_code_object_size, &D::codeSize, &L::code_size, Section::Code, Kind::Size, "code_object.size"},
    {&L::dbg_code_object_filename, &D::codeFilename, &L::code_filename, Section::Code, Kind::Offset,
     "code_object.filename"},
    {&L::dbg_code_object_name, &D::codeName, &L::code_name, Section::Code, Kind::Offset, "code_object.name"},
    {&L::dbg_code_object_qualname, &D::codeQualname, &L::code_qualname, Section::Code, Kind::Offset,
     "code_object.qualname"},
    {&L::dbg_code_object_linetable, &D::codeLinetable, &L::code_linetable, Section::Code, Kind::Offset,
     "code_object.linetable"},
    {&L::dbg_code_object_firstlineno, &D::codeFirstlineno, &L::code_firstlineno, Section::Code, Kind::Offset,
     "code_object.firstlineno"},
    {&L::dbg_code_object_argcount, &D::codeArgcount, &L::code_argcount, Section::Code, Kind::Offset,
     "code_object.argcount"},
    {&L::dbg_code_object_localsplusnames, &D::codeLocalsplusnames, &L::code_localsplusnames, Section::Code,
     Kind::Offset, "code_object.localsplusnames"},
    {&L::dbg_code_object_localspluskinds, &D::codeLocalspluskinds, &L::code_localspluskinds, Section::Code,
     Kind::Offset, "code_object.localspluskinds"},
    {&L::dbg_code_object_co_code_adaptive, &D::codeCodeAdaptive, &L::code_code_adaptive, Section::Code, Kind::Offset,
     "code_object.co_code_adaptive"},
    {&L::dbg_code_object_co_tlbc, &D::codeTlbc, &L::code_tlbc, Section::Code, Kind::Optional, "code_object.co_tlbc",
     Since::Newer},

    {&L::dbg_pyobject_ob_type, &D::objectType, &L::object_type, Section::Objects, Kind::Offset, "pyobject.ob_type"},
    {&L::dbg_type_object_tp_name, &D::typeName, &L::type_name, Section::Objects, Kind::Offset, "type_object.tp_name"},
    {&L::dbg_type_object_tp_flags, &D::typeFlags, &L::type_flags, Section::Objects, Kind::Offset,
     "type_object.tp_flags"},
    {&L::dbg_type_object_tp_basicsize, &D::typeBasicsize, &L::type_basicsize, Section::Objects, Kind::Offset,
     "type_object.tp_basicsize", Since::Newer},
    {&L::dbg_type_object_tp_dictoffset, &D::typeDictoffset, &L::type_dictoffset, Section::Objects, Kind::Offset,
     "type_object.tp_dictoffset", Since::Newer},
    {&L::dbg_heap_type_object_ht_cached_keys, &D::heapTypeCachedKeys, &L::heaptype_cached_keys, Section::Objects,
     Kind::Offset, "heap_type_object.ht_cached_keys", Since::Newer},
    {&L::dbg_set_object_used, &D::setUsed, &L::set_used, Section::Objects, Kind::Offset, "set_object.used",
     Since::Newer},
    {&L::dbg_set_object_table, &D::setTable, &L::set_table, Section::Objects, Kind::Offset, "set_object.table",
     Since::Newer},
    {&L::dbg_set_object_mask, &D::setMask, &L::set_mask, Section::Objects, Kind::Offset, "set_object.mask",
     Since::Newer},
    {&L::dbg_gen_object_gi_iframe, &D::genIframe, &L::gen_iframe, Section::Objects, Kind::Offset,
     "gen_object.gi_iframe", Since::Newer},
    {&L::dbg_tuple_object_ob_item, &D::tupleItem, &L::tuple_item, Section::Objects, Kind::Offset,
     "tuple_object.ob_item"},
    {&L::dbg_list_object_ob_item, &D::listItem, &L::list_item, Section::Objects, Kind::Offset, "list_object.ob_item"},
    {&L::dbg_dict_object_ma_keys, &D::dictKeys, &L::dict_keys, Section::Objects, Kind::Offset, "dict_object.ma_keys"},
    {&L::dbg_dict_object_ma_values, &D::dictValues, &L::dict_values, Section::Objects, Kind::Offset,
     "dict_object.ma_values"},
    {&L::dbg_float_object_ob_fval, &D::floatFval, &L::float_fval, Section::Objects, Kind::Offset,
     "float_object.ob_fval"},
    {&L::dbg_long_object_lv_tag, &D::longLvTag, &L::long_lv_tag, Section::Objects, Kind::Offset, "long_object.lv_tag"},
    {&L::dbg_long_object_ob_digit, &D::longDigit, &L::long_digit, Section::Objects, Kind::Offset,
     "long_object.ob_digit"},
    {&L::dbg_bytes_object_ob_size, &D::bytesSize, &L::bytes_size, Section::Objects, Kind::Offset,
     "bytes_object.ob_size"},
    {&L::dbg_bytes_object_ob_sval, &D::bytesSval, &L::bytes_sval, Section::Objects, Kind::Offset,
     "bytes_object.ob_sval"},
    {&L::dbg_unicode_object_state, &D::unicodeState, &L::unicode_state, Section::Objects, Kind::Offset,
     "unicode_object.state"},
    {&L::dbg_unicode_object_length, &D::unicodeLength, &L::unicode_length, Section::Objects, Kind::Offset,
     "unicode_object.length"},
    {&L::dbg_unicode_object_asciiobject_size, &D::unicodeAsciiSize, &L::unicode_ascii_size, Section::Objects,
     Kind::Size, "unicode_object.asciiobject_size"},
    {&L::dbg_unicode_object_compactunicodeobject_size, &D::unicodeCompactSize, &L::unicode_compact_size,
     Section::Objects, Kind::Size, "unicode_object.compactunicodeobject_size", Since::Newer},
};

// The interpreter's _gil members lie within this many bytes of _gil itself.
constexpr std::uint64_t kMaxGilStructSize = 4096;

std::uint64_t maxSize(Section section) {
    return section == Section::Runtime || section == Section::Interp ? kMaxRuntimeStructSize : kMaxObjectStructSize;
}

ReadError bad(std::uint64_t address, const std::string& what) {
    return invalid("_Py_DebugOffsets: " + what, address);
}

}  // namespace

Result<DebugOffsets> readDebugOffsets(const ProcessMemory& memory, std::uint64_t runtimeAddr, const PyLayout& format) {
    const std::int64_t size = format.dbg_size;
    auto unsupported = [](const std::string& what) { return Err{ReadError{ReadErrorKind::Unsupported, 0, what}}; };
    if (format.runtime_debug_offsets == kAbsent || size == kAbsent || format.dbg_cookie == kAbsent ||
        format.dbg_version == kAbsent || format.dbg_free_threaded == kAbsent) {
        return unsupported("the layout table has no _Py_DebugOffsets (before 3.13)");
    }
    if (size <= 0 || static_cast<std::uint64_t>(size) > kMaxDebugOffsetsSize || format.runtime_debug_offsets < 0 ||
        static_cast<std::uint64_t>(format.runtime_debug_offsets) > kMaxDebugOffset) {
        return unsupported("the layout table has a bad _Py_DebugOffsets size");
    }
    auto fits = [&](std::int64_t position, std::size_t width) {
        return position >= 0 && static_cast<std::uint64_t>(position) + width <= static_cast<std::uint64_t>(size);
    };
    if (!fits(format.dbg_cookie, sizeof kDebugOffsetsCookie) || !fits(format.dbg_version, 8) ||
        !fits(format.dbg_free_threaded, 8)) {
        return unsupported("the layout table's _Py_DebugOffsets positions are outside the struct");
    }
    // The members this format has: a newer member an older format does not place is not read.
    std::vector<const Member*> members;
    for (const Member& m : kMembers) {
        if (m.since == Since::Newer && format.*m.position == kAbsent) continue;
        if (!fits(format.*m.position, 8)) {
            return unsupported(std::string("the layout table has no position for _Py_DebugOffsets.") + m.name);
        }
        members.push_back(&m);
    }

    const std::uint64_t address = runtimeAddr + static_cast<std::uint64_t>(format.runtime_debug_offsets);
    PYSPY_TRY(auto block, RemoteBlock::read(memory, address, static_cast<std::size_t>(size)));
    const auto& bytes = block.bytes();
    if (std::memcmp(bytes.data() + format.dbg_cookie, kDebugOffsetsCookie, sizeof kDebugOffsetsCookie) != 0) {
        return Err{bad(address, "no \"xdebugpy\" cookie")};
    }

    DebugOffsets out;
    PYSPY_TRY(out.version, block.field<std::uint64_t>(format.dbg_version));
    const std::uint64_t major = (out.version >> 24) & 0xff;
    const std::uint64_t minor = (out.version >> 16) & 0xff;
    if ((out.version >> 32) != 0 || major != 3 || minor < 13) {
        return Err{bad(address, "implausible version " + std::to_string(out.version))};
    }
    PYSPY_TRY(auto freeThreaded, block.field<std::uint64_t>(format.dbg_free_threaded));
    if (freeThreaded > 1) return Err{bad(address, "implausible free_threaded flag")};
    out.freeThreaded = freeThreaded != 0;

    for (const Member* m : members) {
        PYSPY_TRY(out.*m->value, block.field<std::uint64_t>(format.*m->position));
    }

    // Sizes first, then every offset against its struct's size.
    auto sectionSize = [&](Section section) -> std::uint64_t {
        for (const Member* m : members) {
            if (m->section == section && m->kind == Kind::Size && section != Section::Objects) return out.*m->value;
        }
        return kMaxDebugOffset;  // Section::Objects: no one struct to bound by
    };
    for (const Member* member : members) {
        const Member& m = *member;
        const std::uint64_t value = out.*m.value;
        if (m.kind == Kind::Size) {
            if (value == 0 || value > maxSize(m.section)) {
                return Err{bad(address, std::string(m.name) + " = " + std::to_string(value) + " is implausible")};
            }
            continue;
        }
        if (m.kind == Kind::Optional && value == 0) continue;  // this build has no such field
        if (m.kind == Kind::Optional && !out.freeThreaded) {
            return Err{bad(address, std::string(m.name) + " is set in a build with the GIL")};
        }
        if (value >= kMaxDebugOffset || value >= sectionSize(m.section)) {
            return Err{bad(address, std::string(m.name) + " = " + std::to_string(value) + " is out of bounds")};
        }
        if (m.kind == Kind::Gil &&
            (value < out.interpGilRuntimeState || value - out.interpGilRuntimeState >= kMaxGilStructSize)) {
            return Err{bad(address, std::string(m.name) + " is outside the interpreter's _gil")};
        }
    }
    // Offsets of one struct are distinct (a table read at a wrong position rarely is).
    for (Section section : {Section::Runtime, Section::Interp, Section::Thread, Section::Frame, Section::Code}) {
        std::vector<std::uint64_t> seen;
        for (const Member* m : members) {
            if (m->section != section || m->kind == Kind::Size || m->value == &D::interpGilRuntimeState) continue;
            if (m->kind == Kind::Optional && out.*m->value == 0) continue;  // this build has no such field
            seen.push_back(out.*m->value);
        }
        std::sort(seen.begin(), seen.end());
        if (std::adjacent_find(seen.begin(), seen.end()) != seen.end()) {
            return Err{bad(address, "two members of one struct at the same offset")};
        }
    }
    if (out.interpGilLocked == out.interpGilHolder) {
        return Err{bad(address, "the GIL's locked and holder fields at the same offset")};
    }
    return out;
}

PyLayout applyDebugOffsets(const PyLayout& base, const DebugOffsets& offsets) {
    PyLayout layout = base;
    for (const Member& m : kMembers) {
        if (m.target == nullptr) continue;
        // 0: absent in this build (Optional), or not in the target's format (Newer): keep the table's.
        if ((m.kind == Kind::Optional || m.since == Since::Newer) && offsets.*m.value == 0) continue;
        layout.*m.target = static_cast<std::int64_t>(offsets.*m.value);
    }
    // The GIL struct's members, relative to the struct (interp_gil is its offset).
    layout.gil_locked = static_cast<std::int64_t>(offsets.interpGilLocked - offsets.interpGilRuntimeState);
    layout.gil_last_holder = static_cast<std::int64_t>(offsets.interpGilHolder - offsets.interpGilRuntimeState);
    if (offsets.gcSize != 0) {  // 3.14+: the GC state's `collecting`, from the interpreter
        layout.interp_gc_collecting = static_cast<std::int64_t>(offsets.interpGc + offsets.gcCollecting);
    }
    // datastack_top follows datastack_chunk in every version that has them (3.11+); the
    // offsets name only the chunk, so keep the table's distance from it.
    if (base.tstate_datastack_top != kAbsent && base.tstate_datastack_chunk != kAbsent) {
        layout.tstate_datastack_top =
            layout.tstate_datastack_chunk + (base.tstate_datastack_top - base.tstate_datastack_chunk);
    }
    layout.version_hex = static_cast<std::uint32_t>(offsets.version);
    return layout;
}

}  // namespace pyspy
