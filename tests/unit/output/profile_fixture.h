// A hand-built RecordedProfile for the profile exporters' tests (speedscope, raw,
// chrometrace), with hostile names: ';', a newline, quotes, markup, bytes that are not
// UTF-8, a label ending in a number. Golden files: tests/golden/profile.*;
// regenerate after an intended format change with PYSPY_UPDATE_GOLDEN=1 unit_output.
#pragma once

#include <catch2/catch.hpp>

#include <cstdlib>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "pyspy/sampling/profile.h"

namespace pyspy_test {

using namespace pyspy;

struct FixtureBuilder {
    RecordedProfile profile;

    std::uint32_t thread(std::uint64_t threadId, std::optional<pid_t> nativeId, const std::string& name,
                         const std::string& label) {
        ProfiledThread t;
        t.threadId = threadId;
        t.nativeId = nativeId;
        t.name = name;
        t.frame = profile.frames.intern({FrameKind::Thread, label, "", 0});
        profile.threads.push_back(t);
        return static_cast<std::uint32_t>(profile.threads.size() - 1);
    }
    FrameId frame(const std::string& name, const std::string& filename, int line) {
        return profile.frames.intern({FrameKind::Python, name, filename, line});
    }
    // `samples` samples of `frames` (outermost first) on `thread`, as one timeline span
    // from `start` (seconds); returns the span's end.
    double run(std::uint32_t thread, const std::vector<FrameId>& frames, double start, std::uint64_t samples) {
        std::vector<FrameId> stack{profile.threads[thread].frame};
        stack.insert(stack.end(), frames.begin(), frames.end());
        const NodeId leaf = profile.trie.insert(stack, samples);
        const double end = start + static_cast<double>(samples) * profile.interval();
        profile.timeline.push_back({thread, leaf, start, end, samples});
        return end;
    }
};

// Three threads. MainThread (native id 4242): <module> > Server.serve for 3 samples,
// then > handle for 2, back to Server.serve for 1, a missed sample, Server.serve for
// 2 more. A worker without a native id whose name and frames are hostile: run >
// "we;ird" for 2, a sample without Python frames, run > "we;ird" again. "Thread 12":
// one sample of a frame without a line, and no timeline.
inline RecordedProfile sampleProfile() {
    FixtureBuilder b;
    RecordedProfile& p = b.profile;
    p.pid = 4242;
    p.commandLine = "python3 app.py --serve \"x\"";
    p.pythonVersion = "3.12.1";
    p.rateHz = 100;
    p.startTime = 1732435200.5;
    p.samples = 10;
    p.errors = 1;

    const auto main = b.thread(0x7f0000001000, 4242, "MainThread", "Thread 4242 \"MainThread\"");
    const auto worker = b.thread(0x7f0000002000, std::nullopt, "worker;\n\"<script>\" \xff\xfe",
                                 "Thread 0x7f0000002000 \"worker;\n\"<script>\" \xff\xfe\"");
    const auto third = b.thread(0x7f0000003000, 12, "", "Thread 12");

    const FrameId module = b.frame("<module>", "/srv/app.py", 52);
    const FrameId serve = b.frame("Server.serve", "/srv/app.py", 40);
    const FrameId handle = b.frame("handle", "/usr/lib/python3.12/site-packages/lib/calc.py", 10);
    const FrameId run = b.frame("Thread.run", "/usr/lib/python3.12/threading.py", 1010);
    const FrameId weird = b.frame("we;ird\nname \"q\" <script>\xc3(", "/srv/<b>odd;dir</b>/w.py", 7);
    const FrameId noLine = b.frame("wait 3", "/srv/w2.py", 0);

    double t = b.run(main, {module, serve}, 0.0, 3);
    t = b.run(main, {module, serve, handle}, t, 2);
    t = b.run(main, {module, serve}, t, 1);
    t = b.run(main, {module, serve}, t + p.interval(), 2);  // after a missed sample
    p.duration = t - p.interval();

    double w = b.run(worker, {run, weird}, 0.0, 2);
    w = b.run(worker, {}, w, 1);
    b.run(worker, {run, weird}, w, 1);

    p.trie.insert(std::vector<FrameId>{p.threads[third].frame, noLine}, 1);
    return p;
}

inline std::string readFile(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

inline void compareGolden(const std::string& name, const std::string& actual) {
    const std::string path = std::string(PYSPY_TESTS_DIR) + "/golden/" + name;
    if (std::getenv("PYSPY_UPDATE_GOLDEN") != nullptr) {
        std::ofstream(path, std::ios::binary) << actual;
    }
    CHECK(actual == readFile(path));
}

// Calls f(match) for each line of `text`, each of which must match `grammar` (the line
// is reported when a check in f fails).
template <typename F>
void forEachLineMatching(const std::string& text, const std::regex& grammar, F&& f) {
    std::istringstream in(text);
    std::string l;
    while (std::getline(in, l)) {
        INFO(l);
        std::smatch m;
        REQUIRE(std::regex_match(l, m, grammar));
        f(m);
    }
}

// Whether `text` is well-formed UTF-8.
inline bool validUtf8(const std::string& text) {
    std::size_t i = 0;
    const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(text[k]); };
    while (i < text.size()) {
        const unsigned char c = byte(i);
        std::size_t n = c < 0x80 ? 1 : c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
        if (n == 0 || i + n > text.size()) return false;
        for (std::size_t k = 1; k < n; ++k) {
            if ((byte(i + k) & 0xc0) != 0x80) return false;
        }
        if (n == 3 && c == 0xe0 && byte(i + 1) < 0xa0) return false;
        if (n == 3 && c == 0xed && byte(i + 1) > 0x9f) return false;
        if (n == 4 && c == 0xf0 && byte(i + 1) < 0x90) return false;
        if (n == 4 && c == 0xf4 && byte(i + 1) > 0x8f) return false;
        i += n;
    }
    return true;
}

}  // namespace pyspy_test
