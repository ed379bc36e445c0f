// The speedscope format: golden file, frames, per-thread profiles, weights. With
// PYSPY_FORMATS_OUT=<dir> the last test case also writes speedscope files there for
// tests/formats/check_speedscope.sh to validate against the speedscope npm schema.
#include <catch2/catch.hpp>

#include <fstream>
#include <map>
#include <random>
#include <sstream>

#include <nlohmann/json.hpp>

#include "pyspy/output/speedscope.h"
#include "profile_fixture.h"

using namespace pyspy;
using namespace pyspy_test;
using nlohmann::json;

namespace {

std::string speedscope(const RecordedProfile& profile, const ExportOptions& options) {
    std::ostringstream out;
    writeSpeedscope(profile, options, out);
    return out.str();
}

// A sample's stack as "name (file:line);..." from the document's frames.
std::string stackText(const json& doc, const json& sample) {
    std::string text;
    for (const auto& index : sample) {
        const json& frame = doc["shared"]["frames"].at(index.get<std::size_t>());
        if (!text.empty()) text += ';';
        text += frame["name"].get<std::string>();
        if (frame.contains("file")) text += " (" + frame["file"].get<std::string>();
        if (frame.contains("line")) text += ":" + std::to_string(frame["line"].get<int>());
        if (frame.contains("file")) text += ")";
    }
    return text;
}

// A profile of many threads and random stacks, to validate at some size.
RecordedProfile randomProfile(unsigned seed) {
    FixtureBuilder b;
    b.profile.pid = 77;
    b.profile.commandLine = "python3 random.py";
    std::mt19937 rng(seed);
    std::vector<FrameId> frames;
    for (int i = 0; i < 40; ++i) {
        frames.push_back(b.frame("f" + std::to_string(i), "/r/m" + std::to_string(i % 7) + ".py", i % 5));
    }
    for (int t = 0; t < 4; ++t) b.thread(1000 + t, 500 + t, "t" + std::to_string(t), "Thread " + std::to_string(500 + t));
    std::vector<double> time(4, 0.0);
    for (int i = 0; i < 400; ++i) {
        const auto thread = static_cast<std::uint32_t>(rng() % 4);
        std::vector<FrameId> stack;
        const auto depth = rng() % 12;
        for (unsigned d = 0; d < depth; ++d) stack.push_back(frames[rng() % frames.size()]);
        time[thread] = b.run(thread, stack, time[thread], 1 + rng() % 5);
    }
    return b.profile;
}

}  // namespace

TEST_CASE("speedscope output matches the golden file", "[output][speedscope]") {
    compareGolden("profile.speedscope.json", speedscope(sampleProfile(), ExportOptions{}));
}

TEST_CASE("speedscope output: shared frames, one sampled profile per thread", "[output][speedscope]") {
    const RecordedProfile profile = sampleProfile();
    ExportOptions options;
    options.title = "pyspy-cpp record: app";
    const std::string text = speedscope(profile, options);
    CHECK(validUtf8(text));
    const json doc = json::parse(text);
    CHECK(doc["$schema"] == "https://www.speedscope.app/file-format-schema.json");
    CHECK(doc["exporter"] == "pyspy-cpp");
    CHECK(doc["name"] == "pyspy-cpp record: app");
    CHECK(doc["activeProfileIndex"] == 0);  // MainThread has the most samples

    const json& profiles = doc["profiles"];
    REQUIRE(profiles.size() == 3);
    CHECK(profiles[0]["name"] == "Thread 4242 \"MainThread\"");
    CHECK(profiles[1]["name"] == "Thread 0x7f0000002000 \"worker;\n\"<script>\" \xef\xbf\xbd\xef\xbf\xbd\"");
    CHECK(profiles[2]["name"] == "Thread 12");

    std::uint64_t total = 0;
    std::map<std::string, std::uint64_t> stacks[3];
    for (std::size_t i = 0; i < profiles.size(); ++i) {
        const json& p = profiles[i];
        CHECK(p["type"] == "sampled");
        CHECK(p["unit"] == "none");
        CHECK(p["startValue"] == 0);
        REQUIRE(p["samples"].size() == p["weights"].size());
        std::uint64_t weights = 0;
        for (std::size_t s = 0; s < p["samples"].size(); ++s) {
            const auto w = p["weights"][s].get<std::uint64_t>();
            weights += w;
            stacks[i][stackText(doc, p["samples"][s])] += w;
        }
        CHECK(p["endValue"] == weights);
        total += weights;
    }
    CHECK(total == profile.trie.totalSamples());
    using Stacks = std::map<std::string, std::uint64_t>;
    CHECK(stacks[0] == Stacks{{"<module> (app.py:52);Server.serve (app.py:40)", 6},
                              {"<module> (app.py:52);Server.serve (app.py:40);handle (lib/calc.py:10)", 2}});
    CHECK(stacks[1] == Stacks{{"", 1},
                              {"Thread.run (threading.py:1010);we;ird\nname \"q\" <script>\xef\xbf\xbd( (w.py:7)", 3}});
    CHECK(stacks[2] == Stacks{{"wait 3 (w2.py)", 1}});
    // Frames are listed once each; the thread frames are the profiles, not frames.
    CHECK(doc["shared"]["frames"].size() == 6);
}

TEST_CASE("speedscope output: full filenames and no lines", "[output][speedscope]") {
    ExportOptions options;
    options.fullFilenames = true;
    options.showLines = false;
    const json doc = json::parse(speedscope(sampleProfile(), options));
    CHECK(doc["shared"]["frames"][0] == json{{"name", "<module>"}, {"file", "/srv/app.py"}});
    CHECK(doc["name"] == "pyspy-cpp: python3 app.py --serve \"x\" (pid 4242)");
}

TEST_CASE("speedscope output of an empty profile", "[output][speedscope]") {
    const json doc = json::parse(speedscope(RecordedProfile{}, ExportOptions{}));
    CHECK(doc["profiles"].empty());
    CHECK(doc["shared"]["frames"].empty());
    CHECK(doc["activeProfileIndex"] == 0);
}

TEST_CASE("speedscope files for the schema check", "[output][speedscope]") {
    const RecordedProfile random = randomProfile(1);
    const json doc = json::parse(speedscope(random, ExportOptions{}));
    CHECK(doc["profiles"].size() == 4);
    std::uint64_t total = 0;
    for (const auto& p : doc["profiles"]) total += p["endValue"].get<std::uint64_t>();
    CHECK(total == random.trie.totalSamples());

    const char* dir = std::getenv("PYSPY_FORMATS_OUT");
    if (dir == nullptr) return;
    const auto write = [&](const std::string& name, const RecordedProfile& profile, const ExportOptions& options) {
        std::ofstream out(std::string(dir) + "/" + name, std::ios::binary);
        writeSpeedscope(profile, options, out);
        REQUIRE(out.good());
    };
    ExportOptions all;
    all.showThreads = true;
    all.fullFilenames = true;
    all.showLines = false;
    all.title = "title \"quoted\" \xff";
    write("fixture.speedscope.json", sampleProfile(), ExportOptions{});
    write("fixture-options.speedscope.json", sampleProfile(), all);
    write("empty.speedscope.json", RecordedProfile{}, ExportOptions{});
    write("random.speedscope.json", random, ExportOptions{});
}
