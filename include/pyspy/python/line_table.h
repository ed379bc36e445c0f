// Decoders of the code-object tables that map a bytecode offset to a source line.
// Pure functions over bytes copied from the target: every loop is bounded by the
// table's length, so a corrupt table yields a wrong or missing line, never a hang.
#pragma once

#include <cstdint>
#include <optional>
#include <span>

namespace pyspy {

enum class LineTableFormat {
    Lnotab27,      // 2.7 - 3.5: co_lnotab, (addr incr, line incr) unsigned byte pairs
    Lnotab36,      // 3.6 - 3.9: co_lnotab, line increment is a signed byte
    Linetable310,  // 3.10: co_linetable, (start delta, line delta) with -128 = no line
    Locations311,  // 3.11+: co_linetable, the PEP 657 location table
};

LineTableFormat lineTableFormatFor(int major, int minor);

// The line of the instruction at `byteOffset` bytes into the bytecode (3.11+: into
// co_code_adaptive, cache entries included), or nothing when the table says that
// instruction has no line, the offset is past the code a 3.10+ table describes, or the
// table is corrupt. lnotab tables do not record the code's length: an offset past their
// last pair gets the last line, as in the interpreter. A negative offset (a frame that
// has not started) gets firstLineNo.
std::optional<int> lineForOffset(LineTableFormat format, std::span<const std::uint8_t> table, int firstLineNo,
                                 int byteOffset);

}  // namespace pyspy
