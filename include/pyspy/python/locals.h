// Arguments and local variables of a frame, with short reprs of their values, for
// `dump --locals`. Only dump reads them: the sampler never does.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "pyspy/common/result.h"
#include "pyspy/python/objects.h"
#include "pyspy/python/stack.h"

namespace pyspy {

// How much of a value is shown. level 1 (`-l`) is short, level 2 (`-ll`) longer.
struct ReprLimits {
    std::size_t maxChars = 80;     // of one value's repr; longer ones are cut and end with "..."
    std::size_t maxItems = 4;      // shown elements of a tuple, list, dict or set
    int maxDepth = 2;              // nesting shown; deeper containers are summarised by type and length
    std::size_t maxIntDigits = 8;  // internal digits of a big int (30 bits each) shown in decimal

    static ReprLimits forLevel(int level);
};

// A short repr of the object at `object`: Python's own repr for None, bool, int,
// float, str and bytes (str/bytes cut at the limits); the first elements and the
// length of a tuple, list, dict, set or frozenset; `<TypeName object at 0x...>` for
// anything else; `<unreadable: why>` when the object cannot be read. Builtin types
// are recognised by name and by not being heap types (so a class named `int` is not
// taken for one). Every length and depth is bounded.
std::string formatValue(const ObjectReader& reader, std::uint64_t object, const ReprLimits& limits);

// The arguments and locals of the frame at `frame` running the code object at `code`
// (PyFrame::address / codeAddress), in the code object's order. Unbound locals (and
// empty cells) are left out. Cell variables (captured by an inner function) and free
// variables (of an enclosing function, in a closure) are shown with their cell's
// content: on 3.11+ every co_localsplusnames entry; before 3.11 the co_varnames slots,
// then the co_cellvars and co_freevars cells, an argument that is also a cell variable
// once, at its argument's place, with its cell's (current) value.
Result<std::vector<LocalVariable>> readFrameLocals(const ObjectReader& reader, std::uint64_t frame, std::uint64_t code,
                                                   const ReprLimits& limits);

}  // namespace pyspy
