// Discovery against live interpreters: version, layout source, interpreter state,
// with symbols and by scanning (as for a stripped build), and the refusals.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstring>
#include <sstream>
#include <string>

#include "pyspy/common/error.h"
#include "pyspy/process/live_memory.h"
#include "pyspy/process/process.h"
#include "pyspy/python/interpreter.h"
#include "pyspy/python/python_process.h"
#include "support/child_process.h"

using namespace pyspy;

namespace {

// Prints its version, then sits in a named function so a stack walk has something to find.
constexpr const char* kTargetScript =
    "import sys, time\n"
    "def parked_in_locate_test():\n"
    "    sys.stdout.write('VERSION %d %d %d\\n' % tuple(sys.version_info[:3]))\n"
    "    sys.stdout.flush()\n"
    "    while True:\n"
    "        time.sleep(0.05)\n"
    "parked_in_locate_test()\n";

struct LiveTarget {
    test::ChildProcess child;
    PythonVersion version;
};

std::string requirePython() {
    const std::string python = test::testPython();
    if (python.find('/') != std::string::npos && ::access(python.c_str(), X_OK) != 0) std::exit(77);
    return python;
}

PythonVersion readVersion(test::ChildProcess& child) {
    auto line = child.waitFor("VERSION ");
    REQUIRE(line);
    std::istringstream words(*line);
    PythonVersion v;
    words >> v.major >> v.minor >> v.micro;
    return v;
}

bool hasFrame(const ProcessSnapshot& snap, const std::string& name) {
    for (const auto& thread : snap.threads) {
        for (const auto& frame : thread.frames) {
            if (frame.code && frame.code->name == name) return true;
        }
    }
    return false;
}

}  // namespace

TEST_CASE("locatePython finds version, layout and interpreter of a live Python", "[interp]") {
    const std::string python = requirePython();
    test::ChildProcess child({python, "-c", kTargetScript});
    const PythonVersion expected = readVersion(child);
    INFO("Python " << expected.toString() << " at " << python);

    LiveProcessMemory memory(child.pid());
    const PythonTarget target = locatePython(child.pid(), memory);
    CHECK(target.version == expected);
    CHECK(target.layout.major == expected.major);
    CHECK(target.layout.minor == expected.minor);
    CHECK(target.interpreter != 0);
    CHECK_FALSE(target.foundByScan);
    CHECK(validateInterpreter(memory, target.layout, target.interpreter));
    if (expected.atLeast(3, 7)) {
        CHECK(target.runtime != 0);
    } else {
        CHECK(target.runtime == 0);
    }
    if (expected.atLeast(3, 13)) {
        CHECK(target.layoutSource.rfind("_Py_DebugOffsets", 0) == 0);
    } else {
        CHECK(target.layoutSource.rfind("generated table", 0) == 0);
    }
    CHECK(target.types.code != 0);
    CHECK(target.types.dict != 0);

    SECTION("scanning, without symbols, finds the same interpreter") {
        const PythonTarget scanned = locatePython(child.pid(), memory, LocateOptions{.ignoreSymbols = true});
        CHECK(scanned.foundByScan);
        CHECK(scanned.version == expected);
        CHECK(scanned.interpreter == target.interpreter);
        CHECK(scanned.runtime == target.runtime);
        CHECK(scanned.layoutSource == target.layoutSource);
    }

    SECTION("a snapshot through either path finds the parked function") {
        for (const bool ignoreSymbols : {false, true}) {
            auto process = PythonProcess::attach(child.pid(), LocateOptions{.ignoreSymbols = ignoreSymbols});
            const auto snap = process->snapshot(SnapshotOptions{});
            INFO("ignoreSymbols=" << ignoreSymbols);
            CHECK(snap.pythonVersion == expected.toString());
            CHECK(hasFrame(snap, "parked_in_locate_test"));
        }
    }
}

TEST_CASE("locatePython refuses a process that is not Python", "[process]") {
    test::ChildProcess child({"sleep", "100"});
    // Wait until the exec is done: before it, the child still maps this test binary.
    for (int i = 0; i < 200 && readExecutablePath(child.pid()).find("sleep") == std::string::npos; ++i) {
        ::usleep(10000);
    }
    LiveProcessMemory memory(child.pid());
    try {
        (void)locatePython(child.pid(), memory);
        FAIL("no error for a process that is not Python");
    } catch (const FatalError& error) {
        CHECK(error.kind() == ErrorKind::NotPython);
        CHECK(std::string(error.what()).find("not a Python process") != std::string::npos);
    }
}

TEST_CASE("validateInterpreter rejects null, garbage and loops", "[process]") {
    PyLayout layout;
    layout.interp_tstate_head = 8;
    layout.tstate_interp = 16;
    layout.tstate_next = 0;
    // Two 32-byte structs: an interpreter at 0x1000 and its thread state at 0x2000.
    const auto image = [](std::uint64_t first, std::uint64_t second, std::uint64_t third) {
        std::vector<std::uint8_t> bytes(32);
        std::memcpy(bytes.data(), &first, 8);
        std::memcpy(bytes.data() + 8, &second, 8);
        std::memcpy(bytes.data() + 16, &third, 8);
        return bytes;
    };
    const auto check = [&](std::uint64_t tstateNext, std::uint64_t tstateInterp) {
        BufferMemory memory;
        memory.map(0x1000, image(0, 0x2000, 0));
        memory.map(0x2000, image(tstateNext, 0, tstateInterp));
        return validateInterpreter(memory, layout, 0x1000);
    };
    CHECK(check(0, 0x1000));            // one thread that points back
    CHECK_FALSE(check(0, 0x9999));      // a thread of another interpreter
    CHECK_FALSE(check(0x2000, 0x1000)); // next = itself: a loop
    CHECK_FALSE(check(0x7000, 0x1000)); // next is unmapped
    BufferMemory empty;
    CHECK_FALSE(validateInterpreter(empty, layout, 0));
    CHECK_FALSE(validateInterpreter(empty, layout, 0x1000));
}
