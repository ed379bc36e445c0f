// Merging a thread's native stack with its Python stack (--native): each native frame
// of the interpreter's eval loop is replaced by the Python frames that C-level call was
// running (ThreadStack::evalGroups), in order; the interpreter's other frames (calls,
// argument passing) are hidden unless asked for. See docs/native.md.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "pyspy/python/stack.h"
#include "pyspy/python/version.h"

namespace pyspy {

struct NativeMergeRules {
    PythonVersion version;
    std::vector<std::string> interpreterModules;  // the python executable and libpython, as mapped
    bool showInterpreterFrames = false;           // --native-all
};

// The eval-loop function of this version whose every native frame runs a group of
// Python frames: PyEval_EvalFrameEx (2.7), _PyEval_EvalFrameDefault (3.x).
std::string_view evalLoopFunction(const PythonVersion& version);

// Whether `function` (a symbol name, possibly a compiler clone such as "f.cold" or
// "f.part.0") is the eval loop of `version`.
bool isEvalLoopFrame(const PythonVersion& version, std::string_view function);

// Fills thread.merged from thread.frames, thread.evalGroups and the symbolized
// thread.nativeFrames. When the number of eval-loop frames is not the number of
// groups, sets mergeFailed and nativeError and leaves merged empty: the caller reports
// both stacks side by side. Returns whether the stacks merged.
bool mergeNativeStack(ThreadStack& thread, const NativeMergeRules& rules);

}  // namespace pyspy
