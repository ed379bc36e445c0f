// dump's text and JSON formats against golden files (tests/golden/dump.*).
// Regenerate after an intended format change: PYSPY_UPDATE_GOLDEN=1 unit_output.
#include <catch2/catch.hpp>

#include <csignal>
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

namespace {

// sampleSnapshot() read from a core: the worker (4250) took a SIGSEGV at address 0.
ProcessSnapshot coreSnapshot() {
    ProcessSnapshot snap = sampleSnapshot();
    snap.paused = false;
    CoreCrashInfo core;
    core.path = "/var/crash/core.4242";
    core.signal = SIGSEGV;
    core.code = SEGV_MAPERR;
    core.codeKnown = true;
    core.faultAddress = 0;
    core.tid = 4250;
    core.tidIsPython = true;
    core.moduleProblems = {"/usr/lib/libfoo.so: not found (/usr/lib/libfoo.so: not found)"};
    snap.core = core;
    snap.threads[1].crashed = true;
    return snap;
}

// The second line of a dump's text: what the core says about the crash.
std::string crashLineOf(const ProcessSnapshot& snap) {
    const std::string text = formatDumpText(snap, DumpFormatOptions{});
    const auto first = text.find('\n');
    return text.substr(first + 1, text.find('\n', first + 1) - first - 1);
}

}  // namespace

TEST_CASE("dump of a core: the file, the fatal signal and the thread that took it", "[output][core]") {
    const ProcessSnapshot snap = coreSnapshot();
    const std::string text = formatDumpText(snap, DumpFormatOptions{});
    CHECK_THAT(text, Catch::StartsWith("Core dump /var/crash/core.4242 of process 4242: python3 app.py --serve\n"
                                       "Killed by SIGSEGV (address not mapped) at address 0x0 in thread 4250\n"
                                       "Python v3.12.1 (/usr/local/bin/python3.12)\n"));
    CHECK(text.find("\nThread 4250 (running+gil) [crashed: SIGSEGV]: \"worker ") != std::string::npos);
    CHECK(text.find("[crashed") == text.rfind("[crashed"));  // that thread alone
    CHECK(text.find("\nThread 4242 (io: recvfrom on socket 10.0.0.5:5432): \"MainThread\"\n") != std::string::npos);

    SECTION("the rest of the text is the live dump's") {
        ProcessSnapshot live = snap;
        live.core.reset();
        const std::string liveText = formatDumpText(live, DumpFormatOptions{});
        CHECK(liveText.find("[crashed") == std::string::npos);  // crashed means nothing without a core
        const std::string body = text.substr(text.find("\nPython v"));
        CHECK(liveText.substr(liveText.find("\nPython v")) ==
              std::string(body).replace(body.find(" [crashed: SIGSEGV]"), 19, ""));
    }
    SECTION("the core's path is made safe for a terminal") {
        ProcessSnapshot hostile = snap;
        hostile.core->path = "core\x1b]2;x\x07";
        CHECK_THAT(formatDumpText(hostile, DumpFormatOptions{}), Catch::StartsWith("Core dump core\\x1b]2;x\\x07 of"));
    }
}

TEST_CASE("dump of a core: how the crash line reads for each kind of core", "[output][core]") {
    ProcessSnapshot snap = coreSnapshot();

    SECTION("no fatal signal recorded (a gcore)") {
        snap.core->signal = 0;
        snap.core->code = 0;
        snap.core->faultAddress.reset();
        snap.threads[1].crashed = false;
        CHECK(crashLineOf(snap) == "No fatal signal recorded (a core written while the process ran, e.g. by gcore)");
        CHECK(formatDumpText(snap, DumpFormatOptions{}).find("[crashed") == std::string::npos);
    }
    SECTION("a crash in a thread that is not a Python one, not shown") {
        snap.core->tid = 4299;
        snap.core->tidIsPython = false;
        snap.threads[1].crashed = false;
        CHECK(crashLineOf(snap) ==
              "Killed by SIGSEGV (address not mapped) at address 0x0 in thread 4299 (not a Python thread: --native "
              "shows it)");
    }
    SECTION("a crash in a thread that is not a Python one, shown with its native stack") {
        snap.core->tid = 4299;
        snap.core->tidIsPython = false;
        snap.threads[1].crashed = false;
        ThreadStack c;
        c.nativeId = 4299;
        c.state = ThreadState::Running;
        c.crashed = true;
        c.nativeRequested = true;
        c.nativeFrames = {nativeFrame(0x1000, "crash_here", "/srv/ext.so")};
        c.mergeFailed = true;
        snap.threads.insert(snap.threads.begin(), c);
        CHECK(crashLineOf(snap) ==
              "Killed by SIGSEGV (address not mapped) at address 0x0 in thread 4299 (not a Python thread)");
        CHECK(formatDumpText(snap, DumpFormatOptions{}).find("\nThread 4299 (running) [crashed: SIGSEGV]\n") !=
              std::string::npos);
    }
    SECTION("abort(): SIGABRT sent by tgkill, no fault address") {
        snap.core->signal = SIGABRT;
        snap.core->code = SI_TKILL;
        snap.core->faultAddress.reset();
        CHECK(crashLineOf(snap) == "Killed by SIGABRT (sent by tgkill (abort, raise)) in thread 4250");
        CHECK(formatDumpText(snap, DumpFormatOptions{}).find("[crashed: SIGABRT]") != std::string::npos);
    }
    SECTION("a signal code with no text, and a signal without a name") {
        snap.core->signal = SIGSEGV;
        snap.core->code = 99;
        snap.core->faultAddress = 0xdead0;
        CHECK(crashLineOf(snap) == "Killed by SIGSEGV at address 0xdead0 in thread 4250");
        snap.core->signal = 77;
        snap.core->faultAddress.reset();
        CHECK(crashLineOf(snap) == "Killed by signal 77 in thread 4250");
    }
}

TEST_CASE("dump --json of a core: a \"core\" object and \"crashed\" per thread; a live one has neither",
          "[output][core]") {
    ProcessSnapshot snap = coreSnapshot();
    auto doc = nlohmann::json::parse(formatDumpJson(snap, DumpFormatOptions{}));
    REQUIRE(doc.contains("core"));
    const auto& core = doc["core"];
    CHECK(core == nlohmann::json::parse(R"json({
        "file": "/var/crash/core.4242", "signal": 11, "signal_name": "SIGSEGV", "code": 1,
        "code_text": "address not mapped", "fault_address": 0, "thread": 4250, "thread_is_python": true,
        "module_problems": ["/usr/lib/libfoo.so: not found (/usr/lib/libfoo.so: not found)"]
})json"));
    REQUIRE(doc["threads"].size() == 3);
    CHECK(doc["threads"][0]["crashed"] == false);
    CHECK(doc["threads"][1]["crashed"] == true);
    CHECK(doc["threads"][2]["crashed"] == false);

    SECTION("SIGABRT from abort(): no fault address") {
        snap.core->signal = SIGABRT;
        snap.core->code = SI_TKILL;
        snap.core->faultAddress.reset();
        snap.core->tidIsPython = false;
        snap.core->moduleProblems.clear();
        auto other = nlohmann::json::parse(formatDumpJson(snap, DumpFormatOptions{}))["core"];
        CHECK(other["signal_name"] == "SIGABRT");
        CHECK(other["code"] == SI_TKILL);
        CHECK(other["code_text"] == "sent by tgkill (abort, raise)");
        CHECK(other["fault_address"].is_null());
        CHECK(other["thread_is_python"] == false);
        CHECK(other["module_problems"] == nlohmann::json::array());
    }
    SECTION("a signal without NT_SIGINFO: no code, and code 0 does not read as \"sent by kill\"") {
        snap.core->code = 0;
        snap.core->codeKnown = false;
        auto other = nlohmann::json::parse(formatDumpJson(snap, DumpFormatOptions{}))["core"];
        CHECK(other["code"].is_null());
        CHECK(other["code_text"].is_null());
        CHECK(formatDumpText(snap, DumpFormatOptions{}).find("Killed by SIGSEGV at address 0x0 in thread 4250") !=
              std::string::npos);
    }
    SECTION("no signal recorded: no name, no code text") {
        snap.core->signal = 0;
        snap.core->code = 0;
        snap.core->faultAddress.reset();
        auto other = nlohmann::json::parse(formatDumpJson(snap, DumpFormatOptions{}))["core"];
        CHECK(other["signal"] == 0);
        CHECK(other["signal_name"].is_null());
        CHECK(other["code_text"].is_null());
    }
    SECTION("a live snapshot: the document without either key") {
        snap.core.reset();
        const std::string json = formatDumpJson(snap, DumpFormatOptions{});
        auto live = nlohmann::json::parse(json);
        CHECK_FALSE(live.contains("core"));
        for (const auto& thread : live["threads"]) CHECK_FALSE(thread.contains("crashed"));
        ProcessSnapshot plain = sampleSnapshot();
        plain.paused = false;
        CHECK(json == formatDumpJson(plain, DumpFormatOptions{}));  // crashed set or not: the same bytes
    }
}
