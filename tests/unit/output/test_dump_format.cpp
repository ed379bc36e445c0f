// dump's text and JSON formats against golden files (tests/golden/dump.*).
// Regenerate after an intended format change: PYSPY_UPDATE_GOLDEN=1 unit_output.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>

#include <nlohmann/json.hpp>

#include "pyspy/output/dump.h"

using namespace pyspy;

namespace {

std::shared_ptr<const CodeInfo> code(const std::string& qualname, const std::string& filename) {
    auto info = std::make_shared<CodeInfo>();
    info->name = qualname.substr(qualname.rfind('.') == std::string::npos ? 0 : qualname.rfind('.') + 1);
    info->qualname = qualname;
    info->filename = filename;
    return info;
}

ProcessSnapshot sampleSnapshot() {
    ProcessSnapshot snap;
    snap.pid = 4242;
    snap.commandLine = "python3 app.py --serve";
    snap.pythonVersion = "3.12.1";
    snap.executable = "/usr/local/bin/python3.12";
    snap.paused = true;
    snap.timestamp = 1732435200.5;
    ThreadStack main;
    main.threadId = 0x7f0000001000;
    main.nativeId = 4242;
    main.name = "MainThread";
    main.state = ThreadState::Io;
    main.wait = WaitReason{45, "recvfrom", 7, FdInfo{FdKind::Socket, "10.0.0.5:5432"}};
    main.frames = {{code("Server.wait", "/srv/app.py"), 40, 0, 0, {}, {}},
                   {code("<module>", "/srv/app.py"), 52, 0, 0, {}, {}}};
    ThreadStack worker;
    worker.threadId = 0x7f0000002000;
    worker.nativeId = 4250;
    worker.name = "worker \x1b[31m<&\">";  // hostile: an escape sequence and markup
    worker.active = true;
    worker.state = ThreadState::Running;
    worker.holdsGil = true;
    worker.frames = {{code("compute", "/usr/lib/python3.12/site-packages/lib/calc.py"), std::nullopt, 0, 0, {}, {}},
                     {code("run", "/usr/lib/python3.12/threading.py"), 1010, 0, 0, {}, {}}};
    worker.truncated = true;
    ThreadStack unknown;
    unknown.threadId = 0x7f0000003000;
    unknown.error = "bad address at 0x10";
    unknown.state = ThreadState::Gil;
    unknown.waitingForGil = true;
    unknown.wait = WaitReason{202, "futex", std::nullopt, FdInfo{}};
    snap.threads = {main, worker, unknown};
    return snap;
}

std::string readFile(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

void compareGolden(const std::string& name, const std::string& actual) {
    const std::string path = std::string(PYSPY_TESTS_DIR) + "/golden/" + name;
    if (std::getenv("PYSPY_UPDATE_GOLDEN") != nullptr) {
        std::ofstream(path, std::ios::binary) << actual;
    }
    CHECK(actual == readFile(path));
}

}  // namespace

TEST_CASE("dump text output matches the golden file", "[output]") {
    DumpFormatOptions options;
    compareGolden("dump.txt", formatDumpText(sampleSnapshot(), options));
    options.fullFilenames = true;
    compareGolden("dump-full-filenames.txt", formatDumpText(sampleSnapshot(), options));
}

TEST_CASE("dump JSON output matches the golden file and parses", "[output]") {
    const std::string json = formatDumpJson(sampleSnapshot(), DumpFormatOptions{});
    compareGolden("dump.json", json);
    auto doc = nlohmann::json::parse(json);
    CHECK(doc["threads"].size() == 3);
    CHECK(doc["threads"][1]["holds_gil"] == true);
    CHECK(doc["threads"][1]["frames"][0]["line"].is_null());
    CHECK(doc["threads"][2]["name"].is_null());
}

TEST_CASE("text output never passes terminal control characters through", "[output]") {
    const std::string text = formatDumpText(sampleSnapshot(), DumpFormatOptions{});
    CHECK(text.find('\x1b') == std::string::npos);
    CHECK(text.find("\\x1b[31m") != std::string::npos);
}

TEST_CASE("shortFilename keeps what identifies a file", "[output]") {
    CHECK(shortFilename("/venv/lib/python3.11/site-packages/requests/api.py") == "requests/api.py");
    CHECK(shortFilename("/usr/lib/python3/dist-packages/apt/cache.py") == "apt/cache.py");
    CHECK(shortFilename("/root/.pyenv/versions/3.11.7/lib/python3.11/json/decoder.py") == "json/decoder.py");
    CHECK(shortFilename("/srv/app/main.py") == "main.py");
    CHECK(shortFilename("<string>") == "<string>");
}

TEST_CASE("dump shows locals under their frame, and the gc mark", "[output]") {
    ProcessSnapshot snap = sampleSnapshot();
    snap.threads[1].collectingGarbage = true;
    PyFrame& frame = snap.threads[1].frames[0];
    frame.locals = {{"count", "3"}, {"label", "'\x1b[31m'"}};
    PyFrame& outer = snap.threads[1].frames[1];
    outer.localsError = "bad address at 0x10";

    const std::string text = formatDumpText(snap, DumpFormatOptions{});
    CHECK(text.find("(running+gil+gc): \"worker") != std::string::npos);
    CHECK(text.find("calc.py:?)\n        count = 3\n        label = '\\x1b[31m'\n") != std::string::npos);
    CHECK(text.find("        [error reading locals: bad address at 0x10]\n") != std::string::npos);

    CHECK(nlohmann::json::parse(formatDumpJson(snap, DumpFormatOptions{}))["threads"][1]["frames"][0].count("locals") ==
          0);
    DumpFormatOptions withLocals;
    withLocals.locals = true;
    auto doc = nlohmann::json::parse(formatDumpJson(snap, withLocals));
    const auto& worker = doc["threads"][1];
    CHECK(worker["collecting_garbage"] == true);
    CHECK(worker["frames"][0]["locals"] ==
          nlohmann::json::parse(R"([{"name": "count", "repr": "3"}, {"name": "label", "repr": "'\u001b[31m'"}])"));
    CHECK(worker["frames"][0]["locals_error"].is_null());
    CHECK(worker["frames"][1]["locals"].empty());
    CHECK(worker["frames"][1]["locals_error"] == "bad address at 0x10");
}

namespace {

NativeFrame nativeFrame(std::uint64_t pc, const std::string& function, const std::string& module,
                        const std::string& file = "", int line = 0) {
    auto symbol = std::make_shared<NativeSymbol>();
    symbol->function = function;
    symbol->module = module;
    symbol->file = file;
    symbol->line = line;
    symbol->hasSymbol = true;
    NativeFrame frame;
    frame.pc = frame.lookupAddress = pc;
    frame.symbol = symbol;
    return frame;
}

}  // namespace

TEST_CASE("dump --native interleaves native frames, marked with their module", "[output]") {
    ProcessSnapshot snap = sampleSnapshot();
    ThreadStack& main = snap.threads[0];  // Server.wait, <module>
    main.nativeRequested = true;
    main.nativeFrames = {nativeFrame(0x1000, "poll", "/lib/libc.so.6"),
                         nativeFrame(0x2000, "ext_call", "/srv/ext.so", "/src/ext.c", 12)};
    auto inlinedSymbol = std::make_shared<NativeSymbol>(*main.nativeFrames[1].symbol);
    inlinedSymbol->inlined = {InlinedFrame{"helper", "/src/ext.h", 3}};
    main.nativeFrames[1].symbol = inlinedSymbol;
    main.merged = {{true, 0}, {false, 0}, {true, 1}, {false, 1}};

    const std::string text = formatDumpText(snap, DumpFormatOptions{});
    CHECK(text.find("    poll [native: libc.so.6]\n"
                    "    Server.wait (app.py:40)\n"
                    "    helper (ext.h:3) [native: ext.so, inlined]\n"
                    "    ext_call (ext.c:12) [native: ext.so]\n"
                    "    <module> (app.py:52)\n") != std::string::npos);

    auto doc = nlohmann::json::parse(formatDumpJson(snap, DumpFormatOptions{}));
    const auto& frames = doc["threads"][0]["frames"];
    REQUIRE(frames.size() == 5);
    CHECK(frames[0]["kind"] == "native");
    CHECK(frames[0]["module"] == "/lib/libc.so.6");
    CHECK(frames[0]["filename"].is_null());
    CHECK(frames[0]["address"] == 0x1000);
    CHECK(frames[1]["kind"] == "python");
    CHECK(frames[2]["inlined"] == true);
    CHECK(frames[3]["function"] == "ext_call");
    CHECK(frames[3]["line"] == 12);
    CHECK(frames[3]["inlined"] == false);
    CHECK(doc["threads"][0]["merge_failed"] == false);
    CHECK(doc["threads"][1].count("merge_failed") == 0);  // no --native for it: the old document
    CHECK(doc["threads"][1]["frames"][0].count("kind") == 0);
}

TEST_CASE("dump --native shows both stacks side by side when they did not merge", "[output]") {
    ProcessSnapshot snap = sampleSnapshot();
    ThreadStack& main = snap.threads[0];
    main.nativeRequested = true;
    main.mergeFailed = true;
    main.nativeError = "1 eval-loop native frames for 2 groups of Python frames";
    main.nativeFrames = {nativeFrame(0x1000, "poll", "/lib/libc.so.6"),
                         nativeFrame(0x3000, "_PyEval_EvalFrameDefault", "/lib/libpython3.12.so")};

    const std::string text = formatDumpText(snap, DumpFormatOptions{});
    CHECK(text.find("    [native and Python stacks not merged; Python stack:]\n"
                    "    Server.wait (app.py:40)\n"
                    "    <module> (app.py:52)\n"
                    "    [native stack:]\n"
                    "    poll [native: libc.so.6]\n"
                    "    _PyEval_EvalFrameDefault [native: libpython3.12.so]\n"
                    "    [native: 1 eval-loop native frames for 2 groups of Python frames]\n") != std::string::npos);

    auto doc = nlohmann::json::parse(formatDumpJson(snap, DumpFormatOptions{}));
    const auto& thread = doc["threads"][0];
    CHECK(thread["merge_failed"] == true);
    CHECK(thread["frames"].size() == 2);
    CHECK(thread["native_frames"].size() == 2);
    CHECK(thread["native_error"] == "1 eval-loop native frames for 2 groups of Python frames");
}
