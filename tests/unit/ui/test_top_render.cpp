// The text layout of `top`: header figures, table columns, path cutting from the left,
// width and height bounds, hostile names.
#include <catch2/catch.hpp>

#include <sstream>

#include "pyspy/ui/top_render.h"

using namespace pyspy;

TEST_CASE("fitFunction cuts the path from the left and never the name", "[top]") {
    CHECK(fitFunction("run", "app/server.py", 12, 80) == "run (app/server.py:12)");
    CHECK(fitFunction("run", "app/server.py", 0, 80) == "run (app/server.py)");
    CHECK(fitFunction("run", "", 0, 80) == "run");
    // 17 columns: "run (" + "..." + tail + ":12)"
    CHECK(fitFunction("run", "app/server.py", 12, 17) == "run (...er.py:12)");
    CHECK(displayWidth(fitFunction("run", "app/server.py", 12, 17)) == 17);
    CHECK(fitFunction("run", "app/server.py", 12, 12) == "run (...:12)");
    CHECK(fitFunction("Handler.very_long_method_name", "x.py", 3, 10) == "Handler.very_long_method_name");
    // UTF-8: cut at character boundaries.
    const std::string fitted = fitFunction("f", "/data/\xc3\xa9t\xc3\xa9/m.py", 1, 15);
    CHECK(fitted == "f (...\xc3\xa9/m.py:1)");
    CHECK(displayWidth(fitted) == 15);
}

TEST_CASE("clipToWidth and formatSeconds", "[top]") {
    CHECK(clipToWidth("abcdef", 3) == "abc");
    CHECK(clipToWidth("\xc3\xa9\xc3\xa9\xc3\xa9", 2) == "\xc3\xa9\xc3\xa9");
    CHECK(clipToWidth("ab", 5) == "ab");
    CHECK(formatSeconds(0.456) == "0.46s");
    CHECK(formatSeconds(123.45) == "123.5s");
    CHECK(formatSeconds(4567.8) == "4568s");
}

namespace {

TopSnapshot sampleSnapshot() {
    FrameTable frames;
    const FrameId mod = frames.intern(FrameKey{FrameKind::Python, "<module>", "/srv/app.py", 50});
    const FrameId hot =
        frames.intern(FrameKey{FrameKind::Python, "compute", "/usr/lib/python3.12/site-packages/lib/calc.py", 7});
    const FrameId evil = frames.intern(FrameKey{FrameKind::Python, "bad\x1b[31m", "/srv/app.py", 9});
    std::vector<ProfiledThread> threads{ProfiledThread{0x10, 4242, "MainThread", 0}};
    SamplerOptions options;
    TopAggregator agg(options);
    for (int i = 0; i < 10; ++i) {
        Sample s;
        s.tick = std::uint64_t(i);
        s.time = 0.01 * i;
        ThreadSample t;
        t.thread = 0;
        t.active = true;
        t.holdsGil = true;
        t.frames = {mod, i < 8 ? hot : evil};
        s.threads = {t};
        agg.onSample(s, frames, threads);
    }
    return agg.snapshot(false);
}

TopHeader sampleHeader() {
    TopHeader h;
    h.pid = 4242;
    h.commandLine = "python3 app.py --serve";
    h.pythonVersion = "3.12.1";
    h.rateHz = 100;
    h.samples = 10;
    h.errors = 1;
    h.elapsedSeconds = 0.1;
    return h;
}

}  // namespace

TEST_CASE("renderTop: header, gauges and rows", "[top]") {
    const auto snap = sampleSnapshot();
    TopRenderOptions options;
    const auto lines = renderTop(snap, sampleHeader(), TopViewOptions{}, options);
    std::ostringstream all;
    for (const auto& l : lines) all << l.text << "\n";
    const std::string text = all.str();
    INFO(text);
    REQUIRE(lines.size() >= 9);
    CHECK(lines[0].text == "Process 4242: python3 app.py --serve");
    CHECK(lines[1].text == "Python v3.12.1 | 100 Hz | 10 samples, 1 errors | 1 threads | 0.1 s");
    CHECK(lines[2].text == "GIL: 100.0% [####################]   Active: 100.0% [####################]");
    CHECK(lines[2].style == TopStyle::GaugeHot);
    CHECK(lines[3].text == "Threads: 1.0 running (average per sample)");
    CHECK(lines[4].text == "Window: last refresh (0.1 s) | sort: %Own descending | by line | all threads | ? for keys");
    CHECK(lines[5].text == "View: running (functions of running threads) | w: next view");
    CHECK(lines[7].text == "   %Own  %Total  OwnTime TotalTime  Function (filename:line)");
    CHECK(lines[7].style == TopStyle::TableHeader);
    CHECK(lines[8].text == "  80.0%   80.0%    0.08s     0.08s  compute (lib/calc.py:7)");
    CHECK(lines[9].text == "  20.0%   20.0%    0.02s     0.02s  bad\\x1b[31m (app.py:9)");  // made safe
    CHECK(lines[10].text == "   0.0%  100.0%    0.00s     0.10s  <module> (app.py:50)");
    CHECK(text.find('\x1b') == std::string::npos);
}

TEST_CASE("renderTop: a free-threaded target has no GIL gauge", "[top]") {
    const auto snap = sampleSnapshot();
    TopHeader header = sampleHeader();
    header.pythonVersion = "3.14.7";
    header.freeThreaded = true;
    const auto lines = renderTop(snap, header, TopViewOptions{}, TopRenderOptions{});
    REQUIRE(lines.size() >= 4);
    CHECK(lines[2].text == "free-threaded (no GIL)   Active: 100.0% [####################]");
    CHECK(lines[3].text == "Threads: 1.0 running (average per sample)");
    for (const auto& line : lines) CHECK(line.text.find("GIL:") == std::string::npos);
}

TEST_CASE("renderTop: full filenames, status line, width and height bounds", "[top]") {
    const auto snap = sampleSnapshot();
    TopHeader header = sampleHeader();
    header.status = "Process 4242 exited: press any key to quit";
    TopRenderOptions options;
    options.fullFilenames = true;
    auto lines = renderTop(snap, header, TopViewOptions{}, options);
    CHECK(lines[6].text == header.status);
    CHECK(lines[6].style == TopStyle::Status);
    CHECK(lines[8].text.find("compute (/usr/lib/python3.12/site-packages/lib/calc.py:7)") != std::string::npos);

    options.width = 60;
    options.height = 10;
    lines = renderTop(snap, header, TopViewOptions{}, options);
    REQUIRE(lines.size() == 10);
    for (const auto& l : lines) CHECK(displayWidth(l.text) <= 60);
    // The function name stays; the path is cut from the left.
    CHECK(lines[8].text == "  80.0%   80.0%    0.08s     0.08s  compute (...b/calc.py:7)");
}

TEST_CASE("renderTop: per-thread column, function rows, empty windows, help", "[top]") {
    const auto snap = sampleSnapshot();
    TopViewOptions view;
    view.perThread = true;
    view.lineNumbers = false;
    auto lines = renderTop(snap, sampleHeader(), view, TopRenderOptions{});
    CHECK(lines[7].text == "   %Own  %Total  OwnTime TotalTime  Thread               Function (filename)");
    CHECK(lines[8].text == "  80.0%   80.0%    0.08s     0.08s  MainThread 4242      compute (lib/calc.py)");

    TopSnapshot empty;
    lines = renderTop(empty, sampleHeader(), TopViewOptions{}, TopRenderOptions{});
    CHECK(lines.back().text == "  (no samples yet)");

    const auto help = renderTopHelp(TopRenderOptions{});
    std::string all;
    for (const auto& l : help) all += l.text + "\n";
    for (const char* key : {"  1 ", "  2 ", "  3 ", "  4 ", "  r ", "  l ", "  c ", "  t ", "  p ", "  ? ", "  q "}) {
        CHECK(all.find(key) != std::string::npos);
    }
}

TEST_CASE("renderTop: with several processes, a Process column, and the per-process table", "[top]") {
    FrameTable a, b;
    const FrameId fa = a.intern(FrameKey{FrameKind::Python, "work", "/srv/app.py", 3});
    const FrameId fb = b.intern(FrameKey{FrameKind::Python, "work", "/srv/app.py", 3});
    const FrameId only = b.intern(FrameKey{FrameKind::Python, "solo", "/srv/app.py", 8});
    std::vector<ProfiledThread> threads{ProfiledThread{0x10, 4242, "MainThread", 0}};
    SamplerOptions options;
    TopAggregator agg(options);
    const auto p0 = agg.addProcess(4242, "python3 app.py", 0, 0);
    const auto p1 = agg.addProcess(4243, std::string("python3 worker ") + std::string(200, 'x'), 0, 0);
    for (int i = 0; i < 4; ++i) {
        Sample s;
        s.tick = std::uint64_t(i);
        s.time = 0.01 * i;
        ThreadSample t;
        t.active = t.holdsGil = true;
        t.frames = {fa};
        s.threads = {t};
        agg.onProcessSample(p0, s, a, threads);
        t.frames = {i == 0 ? only : fb};
        s.threads = {t};
        agg.onProcessSample(p1, s, b, threads);
    }
    TopSnapshot snap = agg.snapshot(false);
    snap.processes[p0].cpuInterval = 0.25;
    snap.processes[p1].cpuInterval = 0.995;
    auto lines = renderTop(snap, sampleHeader(), TopViewOptions{}, TopRenderOptions{});
    CHECK(lines[1].text == "Python v3.12.1 | 100 Hz | 10 samples, 1 errors | 2 threads | 2 processes | 0.1 s");
    CHECK(lines[7].text == "   %Own  %Total  OwnTime TotalTime  Process  Function (filename:line)");
    CHECK(lines[8].text == " 175.0%  175.0%    0.07s     0.07s  2 procs  work (app.py:3)");
    CHECK(lines[9].text == "  25.0%   25.0%    0.01s     0.01s  4243     solo (app.py:8)");

    TopViewOptions view;
    view.perProcess = true;
    TopRenderOptions narrow;
    narrow.width = 60;
    CHECK(renderTop(snap, sampleHeader(), view, TopRenderOptions{})[4].text.find("| per process |") !=
          std::string::npos);
    lines = renderTop(snap, sampleHeader(), view, narrow);
    // 60 columns: the command column at its narrowest (16), the state columns cut.
    CHECK(lines[7].text == "   %CPU    %GIL  Samples      PID  Command" + std::string(11, ' ') + "running");
    CHECK(lines[8].text == "  99.5%  100.0%        4     4243  python3 worker x      1.0");
    CHECK(lines[9].text == "  25.0%  100.0%        4     4242  python3 app.py        1.0");
    for (const auto& l : lines) CHECK(displayWidth(l.text) <= 60);
    // Without a width (text mode): the command column as wide as the longest command, up
    // to 100 columns, then every state.
    lines = renderTopProcesses(snap, view, TopRenderOptions{});
    CHECK(lines[0].text == "   %CPU    %GIL  Samples      PID  Command" + std::string(95, ' ') +
                               "running     gil    lock      io   sleep   other");
    CHECK(lines[1].text == "  99.5%  100.0%        4     4243  python3 worker " + std::string(85, 'x') +
                               "      1.0     0.0     0.0     0.0     0.0     0.0");
    CHECK(lines[2].text == "  25.0%  100.0%        4     4242  python3 app.py" + std::string(86, ' ') +
                               "      1.0     0.0     0.0     0.0     0.0     0.0");
}

TEST_CASE("renderTop: the Threads line by state, the views, the per-process states", "[top]") {
    FrameTable frames;
    const FrameId work = frames.intern(FrameKey{FrameKind::Python, "work", "/srv/app.py", 3});
    const FrameId recv = frames.intern(FrameKey{FrameKind::Python, "read_reply", "/srv/net.py", 12});
    const FrameId take = frames.intern(FrameKey{FrameKind::Python, "take", "/srv/app.py", 30});
    std::vector<ProfiledThread> threads{ProfiledThread{0x10, 4242, "MainThread", 0},
                                        ProfiledThread{0x20, 4243, "net", 0}, ProfiledThread{0x30, 4244, "pool", 0}};
    SamplerOptions options;
    TopAggregator agg(options);
    const auto thread = [](std::uint32_t index, std::vector<FrameId> stack, ThreadState state) {
        ThreadSample t;
        t.thread = index;
        t.active = t.holdsGil = state == ThreadState::Running;
        t.state = state;
        t.frames = std::move(stack);
        return t;
    };
    // 10 ticks: main runs; net waits on I/O 7 times and for the GIL 3 times; pool waits
    // on a lock 9 times and in a child's wait once.
    for (int i = 0; i < 10; ++i) {
        Sample s;
        s.tick = std::uint64_t(i);
        s.time = 0.01 * i;
        s.threads = {thread(0, {work}, ThreadState::Running),
                     thread(1, {work, recv}, i < 7 ? ThreadState::Io : ThreadState::Gil),
                     thread(2, {take}, i < 9 ? ThreadState::Lock : ThreadState::Child)};
        agg.onSample(s, frames, threads);
    }
    const TopSnapshot snap = agg.snapshot(false);
    TopViewOptions view;
    auto lines = renderTop(snap, sampleHeader(), view, TopRenderOptions{});
    CHECK(lines[3].text == "Threads: 1.0 running, 0.3 gil, 0.9 lock, 0.7 io, 0.1 child (average per sample)");
    CHECK(lines[5].text == "View: running (functions of running threads) | w: next view");
    CHECK(lines[8].text == " 100.0%  100.0%    0.10s     0.10s  work (app.py:3)");

    view.state = ThreadState::Io;
    lines = renderTop(snap, sampleHeader(), view, TopRenderOptions{});
    CHECK(lines[5].text == "View: io (functions where threads wait on I/O) | w: next view");
    CHECK(lines[8].text == "  70.0%   70.0%    0.07s     0.07s  read_reply (net.py:12)");
    CHECK(lines[9].text == "   0.0%   70.0%    0.00s     0.07s  work (app.py:3)");

    view.state = ThreadState::Sleep;
    lines = renderTop(snap, sampleHeader(), view, TopRenderOptions{});
    CHECK(lines[5].text == "View: sleep (functions where threads sleep) | w: next view");
    CHECK(lines.back().text == "  (no thread in state sleep in the window)");

    // Free-threaded: the same line (no gil state ever comes from such a target).
    TopHeader header = sampleHeader();
    header.freeThreaded = true;
    CHECK(renderTop(snap, header, TopViewOptions{}, TopRenderOptions{})[3].text == lines[3].text);

    const auto procs = renderTopProcesses(snap, view, TopRenderOptions{});
    REQUIRE(procs.size() == 2);
    CHECK(procs[1].text.substr(procs[1].text.size() - 48) == "     1.0     0.3     0.9     0.7     0.0     0.1");

    std::string help;
    for (const auto& l : renderTopHelp(TopRenderOptions{})) help += l.text + "\n";
    CHECK(help.find("  w   next view") != std::string::npos);
    CHECK(help.find("  W   previous view") != std::string::npos);
}
