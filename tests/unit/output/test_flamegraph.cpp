// The SVG flame graph: well-formed XML whatever the names (parsed by python3's
// xml.dom.minidom), proportional widths, thread levels, a golden file
// (tests/golden/flamegraph.svg; regenerate with PYSPY_UPDATE_GOLDEN=1 unit_output), and
// bounded output for deep and wide profiles.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "pyspy/output/flamegraph.h"
#include "svg_check.h"

using namespace pyspy;
using pyspy_test::parseSvg;

namespace {

std::string readFile(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

std::string render(const RecordedProfile& profile, const ExportOptions& options = {}) {
    std::ostringstream out;
    writeFlameGraph(profile, options, out);
    return out.str();
}

std::size_t countOf(const std::string& haystack, const std::string& needle) {
    std::size_t n = 0;
    for (auto pos = haystack.find(needle); pos != std::string::npos; pos = haystack.find(needle, pos + 1)) ++n;
    return n;
}

// The first line of a frame's <title>: its label.
std::string labelOf(const nlohmann::json& frame) {
    const std::string title = frame["title"];
    return title.substr(0, title.find('\n'));
}

std::vector<nlohmann::json> framesLabelled(const nlohmann::json& doc, const std::string& label) {
    std::vector<nlohmann::json> found;
    for (const auto& f : doc["frames"]) {
        if (labelOf(f) == label) found.push_back(f);
    }
    return found;
}

// A profile built by hand: threads, then stacks (outermost first) under a thread.
struct Builder {
    RecordedProfile profile;

    std::uint32_t thread(const std::string& name, std::uint64_t id) {
        ProfiledThread t;
        t.threadId = id;
        t.name = name;
        t.frame = profile.frames.intern({FrameKind::Thread, name, "", 0});
        profile.threads.push_back(t);
        return static_cast<std::uint32_t>(profile.threads.size() - 1);
    }
    FrameId py(const std::string& name, const std::string& file, int line) {
        return profile.frames.intern({FrameKind::Python, name, file, line});
    }
    void stack(std::uint32_t thread, std::vector<FrameId> frames, std::uint64_t count = 1) {
        frames.insert(frames.begin(), profile.threads[thread].frame);
        profile.trie.insert(frames, count);
        profile.samples += count;
    }
};

}  // namespace

TEST_CASE("flameGraphXmlText escapes markup, controls and invalid UTF-8", "[output][flamegraph]") {
    CHECK(flameGraphXmlText("<script>alert(1)</script>") == "&lt;script&gt;alert(1)&lt;/script&gt;");
    CHECK(flameGraphXmlText("a&amp;b \"q\" 'a'") == "a&amp;amp;b &quot;q&quot; &apos;a&apos;");
    CHECK(flameGraphXmlText("]]>") == "]]&gt;");
    CHECK(flameGraphXmlText(std::string("nul\0x", 5)) == "nul\\x00x");
    CHECK(flameGraphXmlText("\t\n\r\x1b\x7f") == "\\x09\\x0a\\x0d\\x1b\\x7f");
    CHECK(flameGraphXmlText("\xc2\x85") == "\\x85");                          // C1 control
    CHECK(flameGraphXmlText("a\xff\xfe" "b") == "a\xef\xbf\xbd\xef\xbf\xbd" "b");  // two U+FFFD
    CHECK(flameGraphXmlText("\xe2\x82") == "\xef\xbf\xbd");                    // truncated sequence
    CHECK(flameGraphXmlText("\xc0\xaf") == "\xef\xbf\xbd\xef\xbf\xbd");        // overlong
    CHECK(flameGraphXmlText("\xed\xa0\x80") == "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");  // surrogate
    CHECK(flameGraphXmlText("\xef\xbf\xbe") == "\xef\xbf\xbd");                // U+FFFE is not XML
    CHECK(flameGraphXmlText("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\x8d") == "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\x8d");
}

TEST_CASE("flame graph of hostile names is well-formed XML and harmless", "[output][flamegraph]") {
    Builder b;
    b.profile.commandLine = "python3 </text><script>alert(2)</script> \x1b]0;x\x07";
    b.profile.pythonVersion = "3.12.1";
    const auto main = b.thread("Main<Thread> & \"co\" ]]>", 1);
    const FrameId script = b.py("<script>alert(1)</script>", "/srv/<evil>&'\".py", 3);
    const FrameId amp = b.py("&amp;", "/srv/app.py", 4);
    const FrameId cdata = b.py("]]><![CDATA[x", "/srv/app.py", 5);
    const FrameId nul = b.py(std::string("nul\0byte", 8), "/srv/app.py", 6);
    const FrameId ctl = b.py("ctl\x01\x1b[31m\x7f", "/srv/app.py", 7);
    const FrameId bad = b.py("bad\xff\xfeutf8", "/srv/\xc3(.py", 8);
    b.stack(main, {script, amp, cdata}, 5);
    b.stack(main, {script, nul}, 5);
    b.stack(main, {ctl, bad}, 5);

    for (const bool threads : {false, true}) {
        ExportOptions options;
        options.showThreads = threads;
        options.title = "title <b>&</b>";
        const std::string svg = render(b.profile, options);
        CHECK(countOf(svg, "<script") == 1);
        CHECK(countOf(svg, "]]>") == 2);  // the style and the script sections
        CHECK(svg.find('\0') == std::string::npos);
        CHECK(svg.find('\x1b') == std::string::npos);

        const auto doc = parseSvg(svg);
        CHECK(doc["root"] == "svg");
        CHECK(doc["scripts"] == 1);
        CHECK(framesLabelled(doc, "<script>alert(1)</script> (<evil>&'\".py:3)").size() == 1);
        CHECK(framesLabelled(doc, "&amp; (app.py:4)").size() == 1);
        CHECK(framesLabelled(doc, "]]><![CDATA[x (app.py:5)").size() == 1);
        CHECK(framesLabelled(doc, "nul\\x00byte (app.py:6)").size() == 1);
        CHECK(framesLabelled(doc, "ctl\\x01\\x1b[31m\\x7f (app.py:7)").size() == 1);
        CHECK(framesLabelled(doc, "bad\xef\xbf\xbd\xef\xbf\xbdutf8 (\xef\xbf\xbd(.py:8)").size() == 1);
        CHECK(framesLabelled(doc, "Main<Thread> & \"co\" ]]>").size() == (threads ? 1u : 0u));
        CHECK(doc["ids"]["title"] == "title <b>&</b>");
        const std::string subtitle = doc["ids"]["subtitle"];
        CHECK(subtitle.find("python3 </text><script>alert(2)</script> \\x1b]0;x\\x07") != std::string::npos);
        CHECK(subtitle.find("Python 3.12.1") != std::string::npos);
        // A frame's visible label is its title's first line (possibly shortened).
        for (const auto& f : doc["frames"]) {
            if (f["text"].is_null()) continue;
            const std::string text = f["text"];
            const std::string label = labelOf(f);
            if (text.size() >= 2 && text.substr(text.size() - 2) == "..") {
                CHECK(label.rfind(text.substr(0, text.size() - 2), 0) == 0);
            } else {
                CHECK(text == label);
            }
        }
    }
}

TEST_CASE("flame graph widths are proportional to samples", "[output][flamegraph]") {
    Builder b;
    const auto t = b.thread("MainThread", 1);
    const FrameId main = b.py("main", "/srv/app.py", 10);
    const FrameId a = b.py("a", "/srv/app.py", 20);
    const FrameId c = b.py("c", "/srv/app.py", 30);
    b.stack(t, {main, a}, 300);
    b.stack(t, {main, c}, 100);
    b.stack(t, {main}, 10);  // self time of main

    const auto doc = parseSvg(render(b.profile));
    REQUIRE(doc["frames"].size() == 4);  // all, main, a, c
    const auto all = framesLabelled(doc, "all"), mainF = framesLabelled(doc, "main (app.py:10)");
    const auto aF = framesLabelled(doc, "a (app.py:20)"), cF = framesLabelled(doc, "c (app.py:30)");
    REQUIRE(all.size() == 1);
    REQUIRE(mainF.size() == 1);
    REQUIRE(aF.size() == 1);
    REQUIRE(cF.size() == 1);
    const double wAll = all[0]["width"], wMain = mainF[0]["width"], wa = aF[0]["width"], wc = cF[0]["width"];
    CHECK(wAll == Approx(wMain));
    CHECK(wa / wc == Approx(3.0).epsilon(0.01));
    CHECK(wa / wAll == Approx(300.0 / 410).epsilon(0.01));
    // Classic layout: the root at the bottom, callees above their callers, side by side.
    CHECK(double(all[0]["y"]) > double(mainF[0]["y"]));
    CHECK(double(mainF[0]["y"]) > double(aF[0]["y"]));
    CHECK(double(aF[0]["y"]) == double(cF[0]["y"]));
    CHECK(double(aF[0]["x"]) + wa == Approx(double(cF[0]["x"])).margin(0.02));
    CHECK(aF[0]["n"] == 300);
    CHECK(std::string(aF[0]["title"]).find("300 samples, 73.17%") != std::string::npos);

    SECTION("lines and full filenames follow the options") {
        ExportOptions options;
        options.showLines = false;
        options.fullFilenames = true;
        const auto doc2 = parseSvg(render(b.profile, options));
        CHECK(framesLabelled(doc2, "a (/srv/app.py)").size() == 1);
    }
}

TEST_CASE("flame graph threads: a level with --threads, merged without", "[output][flamegraph]") {
    Builder b;
    const auto t1 = b.thread("MainThread", 1);
    const auto t2 = b.thread("worker-1", 2);
    const FrameId run = b.py("run", "/usr/lib/python3.11/threading.py", 1010);
    const FrameId work = b.py("work", "/srv/app.py", 7);
    b.stack(t1, {run, work}, 6);
    b.stack(t2, {run, work}, 2);

    const auto merged = parseSvg(render(b.profile));
    CHECK(framesLabelled(merged, "MainThread").empty());
    CHECK(framesLabelled(merged, "worker-1").empty());
    const auto run1 = framesLabelled(merged, "run (threading.py:1010)");
    REQUIRE(run1.size() == 1);
    CHECK(run1[0]["n"] == 8);

    ExportOptions options;
    options.showThreads = true;
    const auto split = parseSvg(render(b.profile, options));
    const auto mainT = framesLabelled(split, "MainThread"), worker = framesLabelled(split, "worker-1");
    REQUIRE(mainT.size() == 1);
    REQUIRE(worker.size() == 1);
    CHECK(mainT[0]["n"] == 6);
    CHECK(worker[0]["n"] == 2);
    const auto run2 = framesLabelled(split, "run (threading.py:1010)");
    REQUIRE(run2.size() == 2);
    CHECK(double(mainT[0]["y"]) > double(run2[0]["y"]));  // threads sit right above "all"
    CHECK(double(framesLabelled(split, "all")[0]["y"]) - double(mainT[0]["y"]) == Approx(16));
}

TEST_CASE("flame graph output matches the golden file", "[output][flamegraph]") {
    Builder b;
    b.profile.pid = 4242;
    b.profile.commandLine = "python3 app.py --serve";
    b.profile.pythonVersion = "3.12.1";
    b.profile.rateHz = 100;
    b.profile.startTime = 1732435200.5;
    b.profile.duration = 12.5;
    b.profile.errors = 2;
    const auto t1 = b.thread("MainThread", 0x7f0000001000);
    const auto t2 = b.thread("worker", 0x7f0000002000);
    const FrameId mod = b.py("<module>", "/srv/app.py", 52);
    const FrameId serve = b.py("Server.serve", "/srv/app.py", 40);
    const FrameId handle = b.py("Server.handle", "/srv/app.py", 33);
    const FrameId parse = b.py("parse", "/usr/lib/python3.12/json/decoder.py", 353);
    const FrameId run = b.py("Thread.run", "/usr/lib/python3.12/threading.py", 1010);
    const FrameId compute = b.py("compute", "/venv/lib/python3.12/site-packages/calc/core.py", 0);
    b.stack(t1, {mod, serve, handle, parse}, 40);
    b.stack(t1, {mod, serve, handle}, 25);
    b.stack(t1, {mod, serve}, 10);
    b.stack(t2, {run, compute}, 30);
    b.stack(t2, {run, compute, parse}, 5);
    b.profile.samples = 80;  // ticks; 110 thread-samples

    ExportOptions options;
    options.title = "pyspy-cpp record: python3 app.py --serve (pid 4242)";
    const std::string svg = render(b.profile, options);
    const std::string path = std::string(PYSPY_TESTS_DIR) + "/golden/flamegraph.svg";
    if (std::getenv("PYSPY_UPDATE_GOLDEN") != nullptr) std::ofstream(path, std::ios::binary) << svg;
    CHECK(svg == readFile(path));
    CHECK(render(b.profile, options) == svg);  // deterministic

    const auto doc = parseSvg(svg);
    const std::string subtitle = doc["ids"]["subtitle"];
    CHECK(subtitle ==
          "python3 app.py --serve (pid 4242) | Python 3.12.1 | 80 samples, 100 Hz, 12.50 s | 110 thread-samples"
          " | 2 threads | 2 errors | 2024-11-24 08:00:00 UTC");
    CHECK(framesLabelled(doc, "compute (calc/core.py)").size() == 1);
    CHECK(framesLabelled(doc, "parse (json/decoder.py:353)").size() == 2);
}

TEST_CASE("flame graph of an empty profile is still a document", "[output][flamegraph]") {
    RecordedProfile empty;
    const auto doc = parseSvg(render(empty));
    CHECK(doc["frames"].empty());
    CHECK(doc["scripts"] == 1);
}

TEST_CASE("flame graph of a 5000-deep stack", "[output][flamegraph]") {
    Builder b;
    const auto t = b.thread("MainThread", 1);
    std::vector<FrameId> deep;
    for (int i = 0; i < 5000; ++i) deep.push_back(b.py("f" + std::to_string(i % 7), "/srv/rec.py", i % 7 + 1));
    b.stack(t, deep, 3);
    b.stack(t, std::vector<FrameId>(deep.begin(), deep.begin() + 2500), 1);

    for (const bool threads : {false, true}) {
        ExportOptions options;
        options.showThreads = threads;
        const std::string svg = render(b.profile, options);
        CHECK(countOf(svg, "<g data-s=") == 5001u + (threads ? 1 : 0));
        CHECK(svg.size() < 5002 * 300);
        if (!threads) {
            const auto doc = parseSvg(svg);
            CHECK(doc["frames"].size() == 5001);
        }
    }
}

TEST_CASE("flame graph of 100k distinct stacks is bounded", "[output][flamegraph]") {
    Builder b;
    const auto t1 = b.thread("MainThread", 1);
    const auto t2 = b.thread("worker", 2);
    // Stacks are the decimal digits of 0..99999, one frame per digit and position: five
    // levels of 10, 100, 1000, 10000 and 100000 nodes, one sample per stack.
    std::vector<FrameId> digit[5][10];
    for (int pos = 0; pos < 5; ++pos) {
        for (int d = 0; d < 10; ++d) {
            digit[pos][d].push_back(b.py("level" + std::to_string(pos) + "_digit" + std::to_string(d),
                                         "/srv/pkg/module" + std::to_string(pos) + ".py", 10 + d));
        }
    }
    for (int i = 0; i < 100000; ++i) {
        std::vector<FrameId> stack;
        for (int pos = 0, v = i; pos < 5; ++pos, v /= 10) stack.push_back(digit[pos][v % 10][0]);
        b.stack(i % 2 == 0 ? t1 : t2, stack);
    }
    REQUIRE(b.profile.trie.totalSamples() == 100000);

    ExportOptions options;
    const std::string svg = render(b.profile, options);
    WARN("100k distinct stacks: " << svg.size() << " bytes, " << countOf(svg, "<g data-s=") << " frames");
    // 1180 px wide: a level holds at most 11800 frames of 0.1 px or more; here the
    // narrowest drawn level has 10000 frames of 0.118 px and the leaves are dropped.
    CHECK(countOf(svg, "<g data-s=") == 1 + 10 + 100 + 1000 + 10000);
    CHECK(svg.size() < 3'000'000);
    options.showThreads = true;
    const std::string withThreads = render(b.profile, options);
    CHECK(withThreads.size() < 3'000'000);
    // Narrow frames' samples still count in their parents.
    CHECK(svg.find("<title>all&#10;100000 samples, 100.00%</title>") != std::string::npos);
}
