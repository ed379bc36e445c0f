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
    main.frames = {{code("Server.wait", "/srv/app.py"), 40, 0, 0, {}, {}}, {code("<module>", "/srv/app.py"), 52, 0, 0, {}, {}}};
    ThreadStack worker;
    worker.threadId = 0x7f0000002000;
    worker.nativeId = 4250;
    worker.name = "worker \x1b[31m<&\">";  // hostile: an escape sequence and markup
    worker.active = true;
    worker.holdsGil = true;
    worker.frames = {{code("compute", "/usr/lib/python3.12/site-packages/lib/calc.py"), std::nullopt, 0, 0, {}, {}},
                     {code("run", "/usr/lib/python3.12/threading.py"), 1010, 0, 0, {}, {}}};
    worker.truncated = true;
    ThreadStack unknown;
    unknown.threadId = 0x7f0000003000;
    unknown.error = "bad address at 0x10";
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
    CHECK(text.find("(active+gil+gc): \"worker") != std::string::npos);
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
