// _Py_DebugOffsets images built from a generated table, for the python unit tests that
// read debug offsets out of a BufferMemory (test_debug_offsets, test_newer_versions).
#pragma once

#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#include "pyspy/python/layout.h"

namespace pyspy::test {

// Every value of _Py_DebugOffsets that maps to a table field, in the format `l`
// describes: (position, value).
inline std::vector<std::pair<std::int64_t, std::uint64_t>> tableValues(const PyLayout& l) {
    auto u = [](std::int64_t v) { return static_cast<std::uint64_t>(v); };
    std::vector<std::pair<std::int64_t, std::uint64_t>> values = {
        {l.dbg_version, l.version_hex},
        {l.dbg_free_threaded, u(l.free_threaded)},
        {l.dbg_runtime_state_size, u(l.runtime_size)},
        {l.dbg_runtime_state_interpreters_head, u(l.runtime_interpreters_head)},
        {l.dbg_interpreter_state_size, u(l.interp_size)},
        {l.dbg_interpreter_state_next, u(l.interp_next)},
        {l.dbg_interpreter_state_threads_head, u(l.interp_tstate_head)},
        {l.dbg_interpreter_state_imports_modules, u(l.interp_modules)},
        {l.dbg_interpreter_state_ceval_gil, u(l.interp_ceval_gil)},
        {l.dbg_interpreter_state_gil_runtime_state, u(l.interp_gil)},
        {l.dbg_interpreter_state_gil_runtime_state_locked, u(l.interp_gil + l.gil_locked)},
        {l.dbg_interpreter_state_gil_runtime_state_holder, u(l.interp_gil + l.gil_last_holder)},
        {l.dbg_thread_state_size, u(l.tstate_size)},
        {l.dbg_thread_state_next, u(l.tstate_next)},
        {l.dbg_thread_state_interp, u(l.tstate_interp)},
        {l.dbg_thread_state_current_frame, u(l.tstate_current_frame)},
        {l.dbg_thread_state_thread_id, u(l.tstate_thread_id)},
        {l.dbg_thread_state_native_thread_id, u(l.tstate_native_thread_id)},
        {l.dbg_thread_state_datastack_chunk, u(l.tstate_datastack_chunk)},
        {l.dbg_interpreter_frame_size, u(l.frame_size)},
        {l.dbg_interpreter_frame_previous, u(l.frame_back)},
        {l.dbg_interpreter_frame_executable, u(l.frame_code)},
        {l.dbg_interpreter_frame_instr_ptr, u(l.frame_instr_ptr)},
        {l.dbg_interpreter_frame_localsplus, u(l.frame_localsplus)},
        {l.dbg_interpreter_frame_owner, u(l.frame_owner)},
        {l.dbg_code_object_size, u(l.code_size)},
        {l.dbg_code_object_filename, u(l.code_filename)},
        {l.dbg_code_object_name, u(l.code_name)},
        {l.dbg_code_object_qualname, u(l.code_qualname)},
        {l.dbg_code_object_linetable, u(l.code_linetable)},
        {l.dbg_code_object_firstlineno, u(l.code_firstlineno)},
        {l.dbg_code_object_argcount, u(l.code_argcount)},
        {l.dbg_code_object_localsplusnames, u(l.code_localsplusnames)},
        {l.dbg_code_object_localspluskinds, u(l.code_localspluskinds)},
        {l.dbg_code_object_co_code_adaptive, u(l.code_code_adaptive)},
        {l.dbg_pyobject_ob_type, u(l.object_type)},
        {l.dbg_type_object_tp_name, u(l.type_name)},
        {l.dbg_type_object_tp_flags, u(l.type_flags)},
        {l.dbg_tuple_object_ob_item, u(l.tuple_item)},
        {l.dbg_list_object_ob_item, u(l.list_item)},
        {l.dbg_dict_object_ma_keys, u(l.dict_keys)},
        {l.dbg_dict_object_ma_values, u(l.dict_values)},
        {l.dbg_float_object_ob_fval, u(l.float_fval)},
        {l.dbg_long_object_lv_tag, u(l.long_lv_tag)},
        {l.dbg_long_object_ob_digit, u(l.long_digit)},
        {l.dbg_bytes_object_ob_size, u(l.bytes_size)},
        {l.dbg_bytes_object_ob_sval, u(l.bytes_sval)},
        {l.dbg_unicode_object_state, u(l.unicode_state)},
        {l.dbg_unicode_object_length, u(l.unicode_length)},
        {l.dbg_unicode_object_asciiobject_size, u(l.unicode_ascii_size)},
    };
    // Members of newer formats (3.14+, 3.15+), where this format places them. The GC
    // state's offset and size are not in a table: `collecting` is put at its start.
    const std::pair<std::int64_t, std::uint64_t> newer[] = {
        {l.dbg_interpreter_state_gc, u(l.interp_gc_collecting)},
        {l.dbg_gc_size, 8},
        {l.dbg_gc_collecting, 0},
        {l.dbg_interpreter_frame_tlbc_index, l.frame_tlbc_index == kAbsent ? 0 : u(l.frame_tlbc_index)},
        {l.dbg_code_object_co_tlbc, l.code_tlbc == kAbsent ? 0 : u(l.code_tlbc)},
        {l.dbg_type_object_tp_basicsize, u(l.type_basicsize)},
        {l.dbg_type_object_tp_dictoffset, u(l.type_dictoffset)},
        {l.dbg_heap_type_object_ht_cached_keys, u(l.heaptype_cached_keys)},
        {l.dbg_set_object_used, u(l.set_used)},
        {l.dbg_set_object_table, u(l.set_table)},
        {l.dbg_set_object_mask, u(l.set_mask)},
        {l.dbg_gen_object_gi_iframe, u(l.gen_iframe)},
        {l.dbg_unicode_object_compactunicodeobject_size, u(l.unicode_compact_size)},
    };
    for (const auto& value : newer) {
        if (value.first != kAbsent) values.push_back(value);
    }
    return values;
}

// A _Py_DebugOffsets image as the table's own version would hold it.
inline std::vector<std::uint8_t> goodImage(const PyLayout& l) {
    std::vector<std::uint8_t> image(static_cast<std::size_t>(l.dbg_size), 0);
    std::memcpy(image.data() + l.dbg_cookie, "xdebugpy", 8);
    for (auto [position, value] : tableValues(l)) {
        std::memcpy(image.data() + position, &value, sizeof value);
    }
    return image;
}

inline void put64(std::vector<std::uint8_t>& image, std::int64_t position, std::uint64_t value) {
    std::memcpy(image.data() + position, &value, sizeof value);
}

}  // namespace pyspy::test
