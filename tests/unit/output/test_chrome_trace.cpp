// The Trace Event Format: golden file, metadata, merged nested X events, the cap.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <random>
#include <sstream>

#include <nlohmann/json.hpp>

#include "pyspy/output/chrome_trace.h"
#include "profile_fixture.h"

using namespace pyspy;
using namespace pyspy_test;
using nlohmann::json;

namespace {

json chromeTrace(const RecordedProfile& profile, const ExportOptions& options = {},
                 std::size_t maxEvents = kChromeTraceMaxEvents) {
    std::ostringstream out;
    writeChromeTrace(profile, options, out, maxEvents);
    CHECK(validUtf8(out.str()));
    return json::parse(out.str());
}

std::vector<json> eventsOf(const json& doc, const std::string& ph) {
    std::vector<json> events;
    for (const auto& e : doc["traceEvents"]) {
        if (e["ph"] == ph) events.push_back(e);
    }
    return events;
}

// The X events of one tid in file order, checking that they nest: each one either
// lies inside the one before it (still open) or starts after it ends.
std::vector<json> nestedEvents(const json& doc, std::int64_t tid) {
    std::vector<json> events;
    for (const auto& e : eventsOf(doc, "X")) {
        if (e["tid"] == tid) events.push_back(e);
    }
    std::vector<std::int64_t> ends;
    std::int64_t lastTs = -1;
    for (const auto& e : events) {
        const auto ts = e["ts"].get<std::int64_t>(), end = ts + e["dur"].get<std::int64_t>();
        CHECK(ts >= lastTs);  // sorted by time
        lastTs = ts;
        CHECK(e["dur"].get<std::int64_t>() >= 0);
        while (!ends.empty() && ends.back() <= ts && !(ends.back() == ts && end == ts)) ends.pop_back();
        if (!ends.empty()) CHECK(end <= ends.back());
        ends.push_back(end);
    }
    return events;
}

// The names of the events containing time t (microseconds), outermost first.
std::vector<std::string> stackAt(const std::vector<json>& events, double t) {
    std::vector<std::string> names;
    for (const auto& e : events) {
        const auto ts = e["ts"].get<std::int64_t>(), dur = e["dur"].get<std::int64_t>();
        if (ts <= t && t < static_cast<double>(ts + dur)) names.push_back(e["name"].get<std::string>());
    }
    return names;
}

std::vector<std::string> spanStack(const RecordedProfile& profile, const TimelineSpan& span) {
    std::vector<std::string> names;
    for (FrameId id : profile.trie.path(span.leaf)) {
        if (profile.frames[id].kind != FrameKind::Thread) names.push_back(profile.frames[id].name);
    }
    return names;
}

RecordedProfile randomTimeline(unsigned seed) {
    FixtureBuilder b;
    b.profile.pid = 9;
    std::mt19937 rng(seed);
    std::vector<FrameId> frames;
    for (int i = 0; i < 6; ++i) frames.push_back(b.frame("f" + std::to_string(i), "/m.py", i + 1));
    for (int t = 0; t < 3; ++t) b.thread(100 + t, 200 + t, "", "Thread " + std::to_string(200 + t));
    std::vector<double> time(3, 0.0);
    std::vector<std::vector<FrameId>> stacks(3);
    for (int i = 0; i < 600; ++i) {
        const auto t = static_cast<std::uint32_t>(rng() % 3);
        // Mostly small changes to the stack, as a program does: pop some, push some.
        auto& stack = stacks[t];
        stack.resize(stack.size() - std::min<std::size_t>(stack.size(), rng() % 3));
        for (unsigned k = rng() % 3; k > 0; --k) stack.push_back(frames[rng() % frames.size()]);
        const double gap = rng() % 8 == 0 ? b.profile.interval() * (1 + rng() % 3) : 0.0;
        time[t] = b.run(t, stack, time[t] + gap, 1 + rng() % 4);
    }
    return b.profile;
}

}  // namespace

TEST_CASE("chrometrace output matches the golden file", "[output][chrometrace]") {
    std::ostringstream out;
    writeChromeTrace(sampleProfile(), ExportOptions{}, out);
    compareGolden("profile.chrometrace.json", out.str());
}

TEST_CASE("chrometrace output: metadata events name the process and threads", "[output][chrometrace]") {
    const json doc = chromeTrace(sampleProfile());
    const auto meta = eventsOf(doc, "M");
    REQUIRE(meta.size() == 7);
    CHECK(meta[0] == json{{"ph", "M"}, {"name", "process_name"}, {"pid", 4242}, {"tid", 0},
                          {"args", {{"name", "python3 app.py --serve \"x\""}}}});
    std::map<std::int64_t, std::string> names;
    for (const auto& e : meta) {
        CHECK(e["pid"] == 4242);
        if (e["name"] == "thread_name") names[e["tid"].get<std::int64_t>()] = e["args"]["name"].get<std::string>();
    }
    // tid: the native id when known, else the thread's index.
    CHECK(names == std::map<std::int64_t, std::string>{
                       {4242, "MainThread"}, {1, "worker;\n\"<script>\" \xef\xbf\xbd\xef\xbf\xbd"}, {12, "Thread 12"}});
    CHECK(doc["otherData"]["command_line"] == "python3 app.py --serve \"x\"");
    CHECK(doc["otherData"]["dropped_events"] == 0);
}

TEST_CASE("chrometrace output: a frame that stays on the stack is one event", "[output][chrometrace]") {
    const json doc = chromeTrace(sampleProfile());
    const auto brief = [](const std::vector<json>& events) {
        std::vector<std::tuple<std::string, std::int64_t, std::int64_t>> out;
        for (const auto& e : events) out.emplace_back(e["name"], e["ts"], e["dur"]);
        return out;
    };
    using Events = std::vector<std::tuple<std::string, std::int64_t, std::int64_t>>;
    // <module> and Server.serve stay across three spans; the missed sample ends them.
    CHECK(brief(nestedEvents(doc, 4242)) == Events{{"<module>", 0, 60000},
                                                   {"Server.serve", 0, 60000},
                                                   {"handle", 30000, 20000},
                                                   {"<module>", 70000, 20000},
                                                   {"Server.serve", 70000, 20000}});
    // The sample without Python frames ends the worker's frames.
    const std::string weird = "we;ird\nname \"q\" <script>\xef\xbf\xbd(";
    CHECK(brief(nestedEvents(doc, 1)) ==
          Events{{"Thread.run", 0, 20000}, {weird, 0, 20000}, {"Thread.run", 30000, 10000}, {weird, 30000, 10000}});
    CHECK(nestedEvents(doc, 12).empty());
    const auto x = eventsOf(doc, "X");
    REQUIRE(x.size() == 9);
    CHECK(x[2]["args"] == json{{"file", "lib/calc.py"}, {"line", 10}});
    CHECK(x[2]["pid"] == 4242);
    CHECK(x[2]["cat"] == "python");

    ExportOptions options;
    options.fullFilenames = true;
    options.showLines = false;
    CHECK(eventsOf(chromeTrace(sampleProfile(), options), "X")[2]["args"] ==
          json{{"file", "/usr/lib/python3.12/site-packages/lib/calc.py"}});
}

TEST_CASE("chrometrace output: random timelines nest and cover every span", "[output][chrometrace]") {
    for (unsigned seed = 1; seed <= 5; ++seed) {
        const RecordedProfile profile = randomTimeline(seed);
        const json doc = chromeTrace(profile);
        for (std::uint32_t t = 0; t < 3; ++t) {
            const auto events = nestedEvents(doc, 200 + t);
            for (const auto& span : profile.timeline) {
                if (span.thread != t) continue;
                const double mid = (std::llround(span.start * 1e6) + std::llround(span.end * 1e6)) / 2.0;
                CHECK(stackAt(events, mid) == spanStack(profile, span));
            }
        }
        // Capped: the longest events are kept with all their parents.
        const std::size_t all = eventsOf(doc, "X").size();
        const json capped = chromeTrace(profile, {}, all / 3);
        CHECK(eventsOf(capped, "X").size() == all / 3);
        CHECK(capped["otherData"]["dropped_events"] == all - all / 3);
        for (std::uint32_t t = 0; t < 3; ++t) {
            const auto events = nestedEvents(capped, 200 + t);
            for (const auto& span : profile.timeline) {
                if (span.thread != t) continue;
                const double mid = (std::llround(span.start * 1e6) + std::llround(span.end * 1e6)) / 2.0;
                const auto shown = stackAt(events, mid);
                const auto full = spanStack(profile, span);
                REQUIRE(shown.size() <= full.size());
                CHECK(std::equal(shown.begin(), shown.end(), full.begin()));
            }
        }
    }
}

TEST_CASE("chrometrace output of an empty profile", "[output][chrometrace]") {
    const json doc = chromeTrace(RecordedProfile{});
    CHECK(doc["traceEvents"].size() == 1);  // process_name
    CHECK(doc["displayTimeUnit"] == "ms");
}
