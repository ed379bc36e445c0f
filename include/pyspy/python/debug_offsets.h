// _Py_DebugOffsets (CPython 3.13+): the table of struct offsets a target interpreter
// keeps at the start of _PyRuntime (pycore_runtime.h), for debuggers and profilers.
//
// readDebugOffsets reads it from the target in one read, using the struct's own layout
// as the generated table describes it (the PyLayout dbg_* fields), and validates every
// value; applyDebugOffsets then lays the target's values over a generated table. So a
// 3.13.x whose offsets differ from 3.13.0's still reads correctly, and a newer minor
// version can be tried with the 3.13 table as base: its values are only accepted if
// they pass the same checks (a reshaped struct almost always fails them).
#pragma once

#include <cstdint>

#include "pyspy/common/result.h"
#include "pyspy/process/memory.h"
#include "pyspy/python/layout.h"

namespace pyspy {

inline constexpr char kDebugOffsetsCookie[8] = {'x', 'd', 'e', 'b', 'u', 'g', 'p', 'y'};

// Bounds every value read must respect.
inline constexpr std::uint64_t kMaxDebugOffsetsSize = 64 * 1024;          // of _Py_DebugOffsets itself
inline constexpr std::uint64_t kMaxDebugOffset = 64 * 1024;               // any member offset
inline constexpr std::uint64_t kMaxRuntimeStructSize = 16 * 1024 * 1024;  // _PyRuntimeState, PyInterpreterState
inline constexpr std::uint64_t kMaxObjectStructSize = 64 * 1024;          // PyThreadState, frames, code objects

// The values read from the target.
struct DebugOffsets {
    std::uint64_t version = 0;  // PY_VERSION_HEX of the target
    bool freeThreaded = false;  // a Py_GIL_DISABLED build

    std::uint64_t runtimeSize = 0;
    std::uint64_t runtimeInterpretersHead = 0;

    std::uint64_t interpSize = 0;
    std::uint64_t interpNext = 0;
    std::uint64_t interpThreadsHead = 0;
    std::uint64_t interpImportsModules = 0;
    std::uint64_t interpCevalGil = 0;
    std::uint64_t interpGilRuntimeState = 0;  // offset of interp->_gil
    std::uint64_t interpGilLocked = 0;        // offset of interp->_gil.locked (from the interpreter)
    std::uint64_t interpGilHolder = 0;        // offset of interp->_gil.last_holder (from the interpreter)
    std::uint64_t interpGc = 0;               // offset of interp->gc (3.14+)
    std::uint64_t gcSize = 0;                 // sizeof(struct _gc_runtime_state) (3.14+)
    std::uint64_t gcCollecting = 0;           // its `collecting` (3.14+)

    std::uint64_t tstateSize = 0;
    std::uint64_t tstateNext = 0;
    std::uint64_t tstateInterp = 0;
    std::uint64_t tstateCurrentFrame = 0;
    std::uint64_t tstateThreadId = 0;
    std::uint64_t tstateNativeThreadId = 0;
    std::uint64_t tstateDatastackChunk = 0;

    std::uint64_t frameSize = 0;
    std::uint64_t framePrevious = 0;
    std::uint64_t frameExecutable = 0;
    std::uint64_t frameInstrPtr = 0;
    std::uint64_t frameLocalsplus = 0;
    std::uint64_t frameOwner = 0;
    std::uint64_t frameTlbcIndex = 0;  // 3.14+, free-threaded only; 0 = none

    std::uint64_t codeSize = 0;
    std::uint64_t codeFilename = 0;
    std::uint64_t codeName = 0;
    std::uint64_t codeQualname = 0;
    std::uint64_t codeLinetable = 0;
    std::uint64_t codeFirstlineno = 0;
    std::uint64_t codeArgcount = 0;
    std::uint64_t codeLocalsplusnames = 0;
    std::uint64_t codeLocalspluskinds = 0;
    std::uint64_t codeCodeAdaptive = 0;
    std::uint64_t codeTlbc = 0;  // 3.14+, free-threaded only; 0 = none

    std::uint64_t objectType = 0;
    std::uint64_t typeName = 0;
    std::uint64_t typeFlags = 0;
    std::uint64_t typeBasicsize = 0;                       // 3.15+
    std::uint64_t typeDictoffset = 0;                      // 3.15+
    std::uint64_t heapTypeCachedKeys = 0;                  // 3.15+
    std::uint64_t setUsed = 0, setTable = 0, setMask = 0;  // 3.14+
    std::uint64_t genIframe = 0;                           // 3.14+
    std::uint64_t unicodeCompactSize = 0;                  // 3.15+
    std::uint64_t tupleItem = 0;
    std::uint64_t listItem = 0;
    std::uint64_t dictKeys = 0;
    std::uint64_t dictValues = 0;
    std::uint64_t floatFval = 0;
    std::uint64_t longLvTag = 0;
    std::uint64_t longDigit = 0;
    std::uint64_t bytesSize = 0;
    std::uint64_t bytesSval = 0;
    std::uint64_t unicodeState = 0;
    std::uint64_t unicodeLength = 0;
    std::uint64_t unicodeAsciiSize = 0;
};

// Reads format.dbg_size bytes at runtimeAddr + format.runtime_debug_offsets in one read
// and checks them: the "xdebugpy" cookie, a 3.13+ version, every offset below
// kMaxDebugOffset and inside its struct's size, sizes within their bounds, distinct
// offsets within a struct. Members that only a newer format has (gc, sets, generators:
// 3.14+; types, heap types: 3.15+) are read when `format` places them; for tlbc_index
// and co_tlbc (3.14+), 0 means the build has no such field (one with the GIL). Errors:
// Unsupported when `format` does not describe the struct (tables before 3.13 have no
// dbg_* positions), the read error from `memory`, Invalid when the bytes are not a
// valid table.
Result<DebugOffsets> readDebugOffsets(const ProcessMemory& memory, std::uint64_t runtimeAddr, const PyLayout& format);

// `base` with every field the debug offsets provide replaced by the target's value.
// The dbg_* positions and major/minor stay the base table's; version_hex becomes
// the target's. GIL fields: interp_gil = _gil, gil_locked/gil_last_holder relative to it.
PyLayout applyDebugOffsets(const PyLayout& base, const DebugOffsets& offsets);

}  // namespace pyspy
