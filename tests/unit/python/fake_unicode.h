// The fake str objects of the python unit tests: a compact ASCII PyUnicodeObject laid
// out as on 64-bit CPython 3.x (length at 16, state at 32, ASCII data after a 40-byte
// header, non-ASCII compact data after 56), shared by every test that fakes a layout.
#pragma once

#include <cstdint>

#include "pyspy/python/layout.h"

namespace pyspy::test {

inline void setFakeUnicodeLayout(PyLayout& l) {
    l.unicode_length = 16;
    l.unicode_state = 32;
    l.unicode_ascii_size = 40;
    l.unicode_compact_size = 56;
    l.unicode_kind_shift = 2;
    l.unicode_compact_bit = 5;
    l.unicode_ascii_bit = 6;
}

// The state word of such a str: kind 1 (1 byte per character), compact, ASCII.
constexpr std::uint32_t kFakeAsciiState = (1u << 2) | (1u << 5) | (1u << 6);

}  // namespace pyspy::test
