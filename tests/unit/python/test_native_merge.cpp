// mergeNativeStack on hand-built stacks: eval-loop native frames replaced by their
// groups of Python frames, interpreter frames hidden or shown, mismatches reported.
#include <catch2/catch.hpp>

#include <memory>
#include <string>
#include <vector>

#include "pyspy/python/native_merge.h"

using namespace pyspy;

namespace {

const std::string kLibpython = "/opt/python/lib/libpython3.12.so.1.0";
const std::string kExtension = "/app/ext.so";
const std::string kLibc = "/usr/lib/x86_64-linux-gnu/libc.so.6";

NativeFrame native(const std::string& function, const std::string& module) {
    auto symbol = std::make_shared<NativeSymbol>();
    symbol->function = function;
    symbol->module = module;
    symbol->hasSymbol = true;
    NativeFrame frame;
    frame.symbol = symbol;
    return frame;
}

PyFrame python(const std::string& function) {
    auto code = std::make_shared<CodeInfo>();
    code->name = code->qualname = function;
    code->filename = "app.py";
    PyFrame frame;
    frame.code = code;
    return frame;
}

NativeMergeRules rules(int minor) {
    NativeMergeRules r;
    r.version = PythonVersion{3, minor, 0};
    r.interpreterModules = {"/opt/python/bin/python3", kLibpython};
    return r;
}

// The merged stack as "py:name" / "c:name", innermost first.
std::vector<std::string> shown(const ThreadStack& thread) {
    std::vector<std::string> out;
    for (const auto& entry : thread.merged) {
        out.push_back(entry.native ? "c:" + thread.nativeFrames[entry.index].symbol->function
                                   : "py:" + thread.frames[entry.index].function());
    }
    return out;
}

// Python inner <- C ext_call <- Python outer, main: what a C extension calling back does.
ThreadStack callbackStack(const std::vector<std::uint32_t>& groups) {
    ThreadStack t;
    t.nativeRequested = true;
    t.frames = {python("leaf"), python("inner"), python("outer"), python("<module>")};
    t.evalGroups = groups;
    t.nativeFrames = {native("clock_nanosleep", kLibc),
                      native("time_sleep", kLibpython),
                      native("_PyEval_EvalFrameDefault", kLibpython),
                      native("PyObject_Call", kLibpython),
                      native("ext_call", kExtension),
                      native("_PyEval_EvalFrameDefault.cold", kLibpython),
                      native("Py_RunMain", kLibpython),
                      native("__libc_start_main", kLibc)};
    return t;
}

}  // namespace

TEST_CASE("isEvalLoopFrame knows each version's eval loop and its compiler clones", "[native_merge]") {
    CHECK(isEvalLoopFrame(PythonVersion{2, 7, 18}, "PyEval_EvalFrameEx"));
    CHECK_FALSE(isEvalLoopFrame(PythonVersion{2, 7, 18}, "_PyEval_EvalFrameDefault"));
    CHECK(isEvalLoopFrame(PythonVersion{3, 8, 0}, "_PyEval_EvalFrameDefault"));
    CHECK(isEvalLoopFrame(PythonVersion{3, 12, 0}, "_PyEval_EvalFrameDefault.cold"));
    CHECK_FALSE(isEvalLoopFrame(PythonVersion{3, 8, 0}, "PyEval_EvalFrameEx"));  // a wrapper since 3.6
    CHECK_FALSE(isEvalLoopFrame(PythonVersion{3, 12, 0}, "_PyEval_EvalFrameDefaultX"));
}

TEST_CASE("mergeNativeStack puts each eval loop's Python frames in its place", "[native_merge]") {
    ThreadStack t = callbackStack({2, 2});  // 3.11+: inner call runs leaf+inner, outer call outer+<module>
    REQUIRE(mergeNativeStack(t, rules(12)));
    CHECK_FALSE(t.mergeFailed);
    CHECK(shown(t) == std::vector<std::string>{"c:clock_nanosleep", "py:leaf", "py:inner", "c:ext_call", "py:outer",
                                               "py:<module>", "c:__libc_start_main"});

    SECTION("--native-all keeps the interpreter's frames") {
        auto r = rules(12);
        r.showInterpreterFrames = true;
        REQUIRE(mergeNativeStack(t, r));
        CHECK(shown(t) == std::vector<std::string>{"c:clock_nanosleep", "c:time_sleep", "py:leaf", "py:inner",
                                                   "c:PyObject_Call", "c:ext_call", "py:outer", "py:<module>",
                                                   "c:Py_RunMain", "c:__libc_start_main"});
    }
}

TEST_CASE("mergeNativeStack keeps an empty group's eval frame out of the way", "[native_merge]") {
    ThreadStack t = callbackStack({0, 4});  // the inner call's frame is still being set up
    REQUIRE(mergeNativeStack(t, rules(12)));
    CHECK(shown(t) == std::vector<std::string>{"c:clock_nanosleep", "c:ext_call", "py:leaf", "py:inner", "py:outer",
                                               "py:<module>", "c:__libc_start_main"});
}

TEST_CASE("mergeNativeStack reports a mismatch and merges nothing", "[native_merge]") {
    SECTION("more groups than eval frames (an unwind that stopped early)") {
        ThreadStack t = callbackStack({1, 1, 2});
        CHECK_FALSE(mergeNativeStack(t, rules(10)));
        CHECK(t.mergeFailed);
        CHECK(t.merged.empty());
        REQUIRE(t.nativeError);
        CHECK(t.nativeError->find("2 eval-loop native frames for 3 groups") != std::string::npos);
    }
    SECTION("groups that do not cover the Python frames") {
        ThreadStack t = callbackStack({1, 1});
        CHECK_FALSE(mergeNativeStack(t, rules(10)));
        CHECK(t.mergeFailed);
    }
}
