#include "pyspy/python/native_merge.h"

#include <algorithm>
#include <numeric>

#include <fmt/format.h>

namespace pyspy {

namespace {

bool isInterpreterModule(const NativeMergeRules& rules, const std::string& module) {
    if (module.empty()) return false;
    return std::any_of(rules.interpreterModules.begin(), rules.interpreterModules.end(),
                       [&](const std::string& path) { return !path.empty() && path == module; });
}

}  // namespace

std::string_view evalLoopFunction(const PythonVersion& version) {
    // 2.7 runs every frame in a call of PyEval_EvalFrameEx. From 3.6 (PEP 523) that is a
    // wrapper calling interp->eval_frame, by default _PyEval_EvalFrameDefault, which runs
    // the frames: one per call up to 3.10, a run of frames per call from 3.11.
    return version.major == 2 ? "PyEval_EvalFrameEx" : "_PyEval_EvalFrameDefault";
}

bool isEvalLoopFrame(const PythonVersion& version, std::string_view function) {
    // GCC splits cold paths and clones functions into "name.cold", "name.part.0",
    // "name.isra.0", ...: the same C function for our purpose.
    const auto dot = function.find('.');
    if (dot != std::string_view::npos && dot > 0) function = function.substr(0, dot);
    return function == evalLoopFunction(version);
}

bool mergeNativeStack(ThreadStack& thread, const NativeMergeRules& rules) {
    thread.merged.clear();
    thread.mergeFailed = false;
    const auto isEval = [&](const NativeFrame& frame) {
        return frame.symbol != nullptr && isEvalLoopFrame(rules.version, frame.symbol->function);
    };
    const auto evalFrames =
        static_cast<std::size_t>(std::count_if(thread.nativeFrames.begin(), thread.nativeFrames.end(), isEval));
    const std::size_t grouped = std::accumulate(thread.evalGroups.begin(), thread.evalGroups.end(), std::size_t{0});
    if (evalFrames != thread.evalGroups.size() || grouped != thread.frames.size()) {
        thread.mergeFailed = true;
        std::string why = fmt::format("{} eval-loop native frames for {} groups of Python frames", evalFrames,
                                      thread.evalGroups.size());
        if (grouped != thread.frames.size())
            why += fmt::format(" ({} of {} frames grouped)", grouped, thread.frames.size());
        thread.nativeError = thread.nativeError ? *thread.nativeError + "; " + why : why;
        return false;
    }
    thread.merged.reserve(thread.nativeFrames.size() + thread.frames.size());
    std::uint32_t python = 0;
    std::size_t group = 0;
    for (std::size_t i = 0; i < thread.nativeFrames.size(); ++i) {
        const NativeFrame& frame = thread.nativeFrames[i];
        if (isEval(frame)) {
            for (std::uint32_t k = 0; k < thread.evalGroups[group]; ++k) thread.merged.push_back({false, python++});
            ++group;
            continue;
        }
        if (!rules.showInterpreterFrames && frame.symbol != nullptr &&
            isInterpreterModule(rules, frame.symbol->module)) {
            continue;
        }
        thread.merged.push_back({true, static_cast<std::uint32_t>(i)});
    }
    return true;
}

}  // namespace pyspy
