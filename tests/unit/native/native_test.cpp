// The native layer against a forked copy of this test binary: unwinding a thread
// stopped by ThreadPause, symbolizing its frames (names from .symtab, lines from the
// binary's DWARF), demangling, and the cache.
#include <catch2/catch.hpp>

#include <algorithm>
#include <string>
#include <vector>

#include "process/forked_child.h"
#include "pyspy/native/symbolizer.h"
#include "pyspy/native/unwinder.h"
#include "pyspy/process/ptrace.h"

using namespace pyspy;

namespace {

volatile unsigned long spinCounter = 0;

// Three distinct, non-inlined frames the unwind must find, innermost first.
extern "C" __attribute__((noinline)) void pyspy_test_spin_inner(int fd) {
    test::sendValue(fd, 1);
    for (;;) spinCounter = spinCounter + 1;
}

extern "C" __attribute__((noinline)) void pyspy_test_spin_middle(int fd) {
    pyspy_test_spin_inner(fd);
    spinCounter = spinCounter + 1;  // not a tail call
}

__attribute__((noinline)) void pyspySpinOuter(int fd) {  // C++: a mangled name
    pyspy_test_spin_middle(fd);
    spinCounter = spinCounter + 1;
}

std::vector<std::string> names(const std::vector<NativeFrame>& frames) {
    std::vector<std::string> out;
    for (const auto& frame : frames) out.push_back(frame.symbol ? frame.symbol->function : "?");
    return out;
}

}  // namespace

TEST_CASE("demangle turns C++ names into source form and leaves the rest alone", "[native]") {
    CHECK(demangle("_ZN3foo3barEi") == "foo::bar(int)");
    CHECK(demangle("_ZNK5pyspy7Sampler5statsEv") == "pyspy::Sampler::stats() const");
    CHECK(demangle("qsort_r") == "qsort_r");
    CHECK(demangle("_Znot a mangled name") == "_Znot a mangled name");
    CHECK(demangle("") == "");
}

TEST_CASE("NativeUnwinder and NativeSymbolizer read a stopped thread's call chain", "[native]") {
    test::ForkedChild child([](int fd) { pyspySpinOuter(fd); });
    int ready = 0;
    REQUIRE(child.receive(ready));

    NativeUnwinder unwinder(child.pid());
    std::vector<NativeFrame> frames;
    {
        auto pause = ThreadPause::pauseAll(child.pid());
        REQUIRE(pause.ok());
        auto stack = unwinder.unwind(child.pid());
        REQUIRE(stack.ok());
        frames = stack.value().frames;
    }
    REQUIRE(frames.size() >= 3);
    CHECK(frames[0].lookupAddress == frames[0].pc);      // the innermost pc is exact
    CHECK(frames[1].lookupAddress == frames[1].pc - 1);  // callers: the call instruction

    NativeSymbolizer symbolizer(child.pid());
    for (auto& frame : frames) frame.symbol = symbolizer.symbolize(frame.lookupAddress);
    const auto shown = names(frames);
    INFO(Catch::Detail::stringify(shown));
    // The child may still be in write(2) right after telling us it is ready: libc's
    // write, and under ASan its interceptor too; nothing else may come before.
    const auto inner =
        static_cast<std::size_t>(std::find(shown.begin(), shown.end(), "pyspy_test_spin_inner") - shown.begin());
    REQUIRE(inner + 2 < shown.size());
    CHECK(inner <= 2);
    for (std::size_t i = 0; i < inner; ++i) CHECK(shown[i].find("write") != std::string::npos);
    CHECK(shown[inner + 1] == "pyspy_test_spin_middle");
    CHECK(shown[inner + 2] == "(anonymous namespace)::pyspySpinOuter(int)");
    const NativeSymbol& symbol = *frames[inner].symbol;
    CHECK(symbol.hasSymbol);
    CHECK(symbol.module.find("unit_native") != std::string::npos);
    CHECK(symbol.file.find("native_test.cpp") != std::string::npos);
    CHECK(symbol.line > 0);

    // The cache hands out the same symbol for the same address.
    CHECK(symbolizer.symbolize(frames[inner].lookupAddress) == frames[inner].symbol);
}

TEST_CASE("NativeUnwinder of a thread that is not stopped by us fails without throwing", "[native]") {
    test::ForkedChild child([](int fd) { pyspySpinOuter(fd); });
    int ready = 0;
    REQUIRE(child.receive(ready));
    NativeUnwinder unwinder(child.pid());
    auto stack = unwinder.unwind(child.pid());  // not paused: ptrace refuses
    if (stack.ok()) {
        CHECK(stack.value().frames.empty());
    } else {
        CHECK_FALSE(stack.error().describe().empty());
    }
}

TEST_CASE("NativeSymbolizer names an address in no module by its value", "[native]") {
    NativeSymbolizer symbolizer(::getpid());
    auto symbol = symbolizer.symbolize(0x10);
    CHECK(symbol->module.empty());
    CHECK(symbol->function == "0x10");
    CHECK_FALSE(symbol->hasSymbol);
}
