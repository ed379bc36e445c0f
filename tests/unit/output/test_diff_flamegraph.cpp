// `diff`: the z-test rule, the diff of two profiles read back (frames matched by stack),
// the differential flame graph (well-formed XML whatever the names, colours and
// tooltips, the frames only BASE has) and the difffolded raw output; golden files
// tests/golden/diff.svg and tests/golden/diff.txt (PYSPY_UPDATE_GOLDEN=1 regenerates).
#include <catch2/catch.hpp>

#include <cmath>
#include <map>
#include <regex>
#include <sstream>
#include <string>

#include "profile_fixture.h"
#include "pyspy/output/diff_flamegraph.h"
#include "pyspy/output/pprof.h"
#include "pyspy/output/profile_reader.h"
#include "svg_check.h"

using namespace pyspy;
using namespace pyspy_test;

namespace {

LoadedProfile load(const std::string& bytes) {
    auto result = parseProfile(bytes);
    INFO((result ? std::string() : result.error().what));
    REQUIRE(result.ok());
    return std::move(result).value();
}

std::string svgOf(const ProfileDiff& diff, const DiffOptions& options = {}) {
    std::ostringstream out;
    writeDiffFlameGraph(diff, options, out);
    return out.str();
}

std::string rawOf(const ProfileDiff& diff) {
    std::ostringstream out;
    writeDiffCollapsed(diff, out);
    return out.str();
}

// The frames of a parsed document by label (the first line of the title).
std::map<std::string, nlohmann::json> framesByLabel(const nlohmann::json& doc) {
    std::map<std::string, nlohmann::json> frames;
    for (const auto& f : doc["frames"]) {
        const std::string title = f["title"];
        frames[title.substr(0, title.find('\n'))] = f;
    }
    return frames;
}

// stack -> (BASE, NEW), every line checked against `stack BASE NEW`.
std::map<std::string, std::pair<std::uint64_t, std::uint64_t>> rawLines(const std::string& text) {
    static const std::regex line(R"(^(.+) (\d+) (\d+)$)");
    std::map<std::string, std::pair<std::uint64_t, std::uint64_t>> lines;
    forEachLineMatching(text, line, [&](const std::smatch& m) {
        CHECK(lines.count(m[1].str()) == 0);
        CHECK(validUtf8(m[1].str()));
        lines[m[1].str()] = {std::stoull(m[2].str()), std::stoull(m[3].str())};
    });
    return lines;
}

// 1000 samples: main > hot for `hot`, main > cold for the rest.
std::string split(int hot) {
    return "main (app.py:1);hot (app.py:10) " + std::to_string(hot) + "\nmain (app.py:1);cold (app.py:20) " +
           std::to_string(1000 - hot) + "\n";
}

}  // namespace

TEST_CASE("diff: the two-proportion z-test", "[output][diff]") {
    // p = 0.5, se = sqrt(0.25 * 2/1000) = 0.02236: the bound is 3 se = 6.71 points.
    ShareChange c = shareChange(750, 1000, 250, 1000);
    CHECK(c.base == Approx(0.75));
    CHECK(c.next == Approx(0.25));
    CHECK(c.delta == Approx(-0.5));
    CHECK(c.threshold == Approx(3 * std::sqrt(0.25 * 0.002)));
    CHECK(c.significant);
    c = shareChange(500, 1000, 560, 1000);  // p = 0.53: bound 6.70 points, +6 is noise
    CHECK(c.threshold == Approx(3 * std::sqrt(0.53 * 0.47 * 0.002)));
    CHECK_FALSE(c.significant);
    c = shareChange(500, 1000, 570, 1000);  // +7 points: beyond
    CHECK(c.significant);
    c = shareChange(0, 1000, 10, 1000);  // p = 0.005: bound 0.95 points, +1 beyond
    CHECK(c.threshold == Approx(3 * std::sqrt(0.005 * 0.995 * 0.002)));
    CHECK(c.significant);
    c = shareChange(0, 10, 1, 10);  // one sample of ten: noise
    CHECK_FALSE(c.significant);
    CHECK_FALSE(shareChange(1000, 1000, 10, 10).significant);  // 100% in both: no change, no noise
    CHECK_FALSE(shareChange(0, 0, 5, 10).significant);         // nothing to compare with
    // Unequal totals: shares, not counts, are compared.
    c = shareChange(100, 1000, 1000, 10000);
    CHECK(c.delta == Approx(0).margin(1e-12));
    CHECK_FALSE(c.significant);
}

TEST_CASE("diff of a profile with itself marks nothing", "[output][diff]") {
    const RecordedProfile recorded = sampleProfile();
    for (const std::string& bytes : {split(750), [&] {
                                         std::ostringstream out;
                                         writePprof(recorded, {}, out);
                                         return out.str();
                                     }()}) {
        const LoadedProfile p = load(bytes);
        const ProfileDiff diff(p, p);
        CHECK(diff.onlyInBase().empty());
        for (NodeId id = 0; id < diff.next().size(); ++id) {
            CHECK_FALSE(diff.change(id).significant);
            CHECK(diff.change(id).delta == 0);
        }
        const auto doc = parseSvg(svgOf(diff));
        REQUIRE(doc["frames"].size() == diff.next().size());
        for (const auto& f : doc["frames"]) {
            CHECK(f["data"]["change"] == "noise");
            CHECK(std::string(f["title"]).find("within sampling noise") != std::string::npos);
        }
        for (const auto& [stack, counts] : rawLines(rawOf(diff))) CHECK(counts.first == counts.second);
    }
}

TEST_CASE("diff of a 75/25 and a 25/75 split", "[output][diff]") {
    const LoadedProfile base = load(split(750));
    const LoadedProfile next = load(split(250));
    const ProfileDiff diff(base, next);
    const auto doc = parseSvg(svgOf(diff));
    const auto frames = framesByLabel(doc);
    const auto& hot = frames.at("hot (app.py:10)");
    const auto& cold = frames.at("cold (app.py:20)");
    CHECK(hot["data"]["change"] == "shrank");
    CHECK(std::stod(std::string(hot["data"]["delta"])) == Approx(-50));
    CHECK(hot["data"]["base"] == "750");
    CHECK(hot["n"] == 250);
    CHECK(cold["data"]["change"] == "grew");
    CHECK(std::stod(std::string(cold["data"]["delta"])) == Approx(50));
    CHECK(frames.at("all")["data"]["change"] == "noise");
    CHECK(frames.at("main (app.py:1)")["data"]["change"] == "noise");
    const std::string title = hot["title"];
    CHECK(title ==
          "hot (app.py:10)\nBASE: 75.00% (750 of 1000 samples)\nNEW: 25.00% (250 of 1000 samples)\n"
          "-50.00 points: shrank beyond sampling noise (3 sigma = 6.71 points)");
    // The largest change is the most saturated: pure red and blue ends.
    CHECK(doc["notes"].size() == 2);
    CHECK(std::string(doc["notes"][1]).find("Only in BASE: nothing") == 0);
}

TEST_CASE("diff: frames only in BASE are listed, and raw lines with NEW 0", "[output][diff]") {
    const LoadedProfile base = load("main;gone;deeper 30\nmain;kept 60\nmain 10\nother 100\n");
    const LoadedProfile next = load("main;kept 90\nmain;new 5\nmain 5\n");
    const ProfileDiff diff(base, next);
    const auto lost = diff.onlyInBase();
    REQUIRE(lost.size() == 2);  // "other" and "main;gone" (not "deeper" above it)
    CHECK(diff.frames()[diff.base().node(lost[0]).frame] == "other");
    CHECK(diff.frames()[diff.base().node(lost[1]).frame] == "gone");

    const auto doc = parseSvg(svgOf(diff));
    const auto frames = framesByLabel(doc);
    CHECK(frames.count("gone") == 0);  // NEW's frames only
    CHECK(frames.at("new")["data"]["base"] == "0");
    REQUIRE(doc["notes"].size() == 4);
    CHECK(std::string(doc["notes"][1]).find("Only in BASE (not drawn, each with what it called): 2 frames,") == 0);
    CHECK(std::string(doc["notes"][2]) == "  50.00% of BASE (100 samples), shrank beyond sampling noise: other");
    CHECK(std::string(doc["notes"][3]) == "  15.00% of BASE (30 samples), shrank beyond sampling noise: gone < main");

    const auto lines = rawLines(rawOf(diff));
    CHECK(lines.at("main;gone;deeper") == std::pair<std::uint64_t, std::uint64_t>{30, 0});
    CHECK(lines.at("other") == std::pair<std::uint64_t, std::uint64_t>{100, 0});
    CHECK(lines.at("main;new") == std::pair<std::uint64_t, std::uint64_t>{0, 5});
    CHECK(lines.at("main") == std::pair<std::uint64_t, std::uint64_t>{10, 5});
    std::uint64_t baseSum = 0, nextSum = 0;
    for (const auto& [stack, counts] : lines) baseSum += counts.first, nextSum += counts.second;
    CHECK(baseSum == base.samples());
    CHECK(nextSum == next.samples());
}

TEST_CASE("diff flame graph of hostile names is well-formed XML and harmless", "[output][diff]") {
    // Hostile names through raw input (escaped controls and ';') and through pprof.
    const std::string hostile =
        "</text><script>alert(1)</script> (]]><![CDATA[x.py:1);q\\x0a\\x1b[31m&amp\\x3b "
        "(\xff\xfe.py:2) 5\nbad\xc3( 7\n";
    const RecordedProfile recorded = sampleProfile();
    std::ostringstream pprof;
    writePprof(recorded, {}, pprof);
    const LoadedProfile a = load(hostile), b = load(pprof.str());
    DiffOptions options;
    options.baseName = "base <b>&\x1b.txt";
    options.nextName = "new\n]]>.pb.gz";
    for (const auto& [base, next] : {std::pair{&a, &b}, std::pair{&b, &a}}) {
        const ProfileDiff diff(*base, *next);
        const std::string svg = svgOf(diff, options);
        CHECK(svg.find("<script") == svg.rfind("<script"));  // its own only
        CHECK(svg.find('\x1b') == std::string::npos);
        const auto doc = parseSvg(svg);
        CHECK(doc["scripts"] == 1);
        const std::string subtitle = doc["ids"]["subtitle"];
        CHECK(subtitle.find("base <b>&\\x1b.txt") != std::string::npos);
        CHECK(validUtf8(doc.dump()));
    }
    const auto frames = framesByLabel(parseSvg(svgOf(ProfileDiff(b, a))));
    CHECK(frames.count("</text><script>alert(1)</script> (]]><![CDATA[x.py:1)") == 1);
    CHECK(frames.count("q\\x0a\\x1b[31m&amp; (\xef\xbf\xbd\xef\xbf\xbd.py:2)") == 1);
    // The raw output of hostile names keeps the collapsed grammar.
    const auto lines = rawLines(rawOf(ProfileDiff(b, a)));
    CHECK(lines.count("</text><script>alert(1)</script> (]]><![CDATA[x.py:1);q\\x0a\\x1b[31m&amp\\x3b "
                      "(\xef\xbf\xbd\xef\xbf\xbd.py:2)") == 1);
}

TEST_CASE("diff output matches the golden files", "[output][diff]") {
    const LoadedProfile base = load(
        "<module> (app.py:52);Server.serve (app.py:40);Server.handle (app.py:33);parse (json/decoder.py:353) 400\n"
        "<module> (app.py:52);Server.serve (app.py:40);Server.handle (app.py:33) 250\n"
        "<module> (app.py:52);Server.serve (app.py:40);log (app.py:70) 150\n"
        "<module> (app.py:52);Server.serve (app.py:40) 100\n"
        "Thread.run (threading.py:1010);compute (calc/core.py) 100\n");
    const LoadedProfile next = load(
        "<module> (app.py:52);Server.serve (app.py:40);Server.handle (app.py:33);parse (json/decoder.py:353) 150\n"
        "<module> (app.py:52);Server.serve (app.py:40);Server.handle (app.py:33);cache (app.py:90) 300\n"
        "<module> (app.py:52);Server.serve (app.py:40);Server.handle (app.py:33) 240\n"
        "<module> (app.py:52);Server.serve (app.py:40) 110\n"
        "Thread.run (threading.py:1010);compute (calc/core.py) 100\n");
    const ProfileDiff diff(base, next);
    DiffOptions options;
    options.baseName = "before.txt";
    options.nextName = "after.pb.gz";
    const std::string svg = svgOf(diff, options);
    compareGolden("diff.svg", svg);
    compareGolden("diff.txt", rawOf(diff));
    CHECK(svgOf(diff, options) == svg);  // deterministic

    const auto frames = framesByLabel(parseSvg(svg));
    CHECK(frames.at("cache (app.py:90)")["data"]["change"] == "grew");
    CHECK(frames.at("parse (json/decoder.py:353)")["data"]["change"] == "shrank");
    CHECK(frames.at("compute (calc/core.py)")["data"]["change"] == "noise");
}
