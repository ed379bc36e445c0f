// TopAggregator and buildTopTable on hand-made samples: own/total per window, recursion
// counted once, line vs function rows, per-thread rows, filters, gauges, thread states,
// sorting and reversing; and the keys.
#include <catch2/catch.hpp>

#include <map>

#include "pyspy/ui/top_model.h"
#include "pyspy/ui/top_view.h"

using namespace pyspy;

namespace {

struct Fixture {
    FrameTable frames;
    std::vector<ProfiledThread> threads;
    SamplerOptions options;
    std::uint64_t tick = 0;

    Fixture() {
        options.rateHz = 100;
        ProfiledThread main;
        main.threadId = 0x1000;
        main.nativeId = 100;
        main.name = "MainThread";
        ProfiledThread worker;
        worker.threadId = 0x2000;
        worker.nativeId = 101;
        worker.name = "worker";
        threads = {main, worker};
    }
    FrameId frame(const std::string& name, int line, const std::string& file = "/app/mod.py") {
        return frames.intern(FrameKey{FrameKind::Python, name, file, line});
    }
    static ThreadSample ts(std::uint32_t thread, std::vector<FrameId> stack, bool active, bool gil,
                           ThreadState state = ThreadState::Other) {
        ThreadSample t;
        t.thread = thread;
        t.frames = std::move(stack);
        t.active = active;
        t.holdsGil = gil;
        t.state = active ? ThreadState::Running : state;
        return t;
    }
    // A thread waiting in `state` (not active, not holding the GIL).
    static ThreadSample waiting(std::uint32_t thread, std::vector<FrameId> stack, ThreadState state) {
        return ts(thread, std::move(stack), false, false, state);
    }
    void feed(TopAggregator& agg, std::vector<ThreadSample> sample) {
        Sample s;
        s.tick = tick;
        s.time = 0.01 * double(tick);
        ++tick;
        s.threads = std::move(sample);
        agg.onSample(s, frames, threads);
    }
};

const TopRow* find(const std::vector<TopRow>& rows, const std::string& name, int line = -1) {
    for (const auto& r : rows) {
        if (r.function->name == name && (line < 0 || r.function->line == line)) return &r;
    }
    return nullptr;
}

}  // namespace

TEST_CASE("own and total per function, recursion counted once", "[top]") {
    Fixture f;
    const FrameId mod = f.frame("<module>", 1), main = f.frame("main", 10), fib = f.frame("fib", 20),
                  fibInner = f.frame("fib", 21);
    TopAggregator agg(f.options);
    // 3 ticks: fib recursing (twice, at two lines), then main itself.
    f.feed(agg, {Fixture::ts(0, {mod, main, fib, fibInner}, true, true)});
    f.feed(agg, {Fixture::ts(0, {mod, main, fib, fib}, true, true)});
    f.feed(agg, {Fixture::ts(0, {mod, main}, true, true)});
    const TopSnapshot snap = agg.snapshot(false);
    REQUIRE(snap.interval.ticks == 3);

    TopViewOptions view;
    auto rows = buildTopTable(snap, view);
    REQUIRE(find(rows, "fib", 21) != nullptr);
    CHECK(find(rows, "fib", 21)->ownPercent == Approx(100.0 / 3));
    CHECK(find(rows, "fib", 20)->ownPercent == Approx(100.0 / 3));
    CHECK(find(rows, "fib", 20)->totalPercent == Approx(200.0 / 3));  // once per stack
    CHECK(find(rows, "main")->ownPercent == Approx(100.0 / 3));
    CHECK(find(rows, "main")->totalPercent == Approx(100.0));
    CHECK(find(rows, "<module>")->ownPercent == 0.0);

    view.lineNumbers = false;  // `l`: by function, so fib's lines merge and recursion still counts once
    rows = buildTopTable(snap, view);
    REQUIRE(rows.size() == 3);
    CHECK(find(rows, "fib")->function->line == 0);
    CHECK(find(rows, "fib")->ownPercent == Approx(200.0 / 3));
    CHECK(find(rows, "fib")->totalPercent == Approx(200.0 / 3));
    CHECK(rows[0].function->name == "fib");
    // Seconds: 2 samples x 0.01 s measured per tick.
    CHECK(find(rows, "fib")->ownSeconds == Approx(0.02));
    CHECK(find(rows, "main")->totalSeconds == Approx(0.03));
}

TEST_CASE("interval window restarts at each refresh, cumulative keeps everything", "[top]") {
    Fixture f;
    const FrameId a = f.frame("a", 1), b = f.frame("b", 2);
    TopAggregator agg(f.options);
    for (int i = 0; i < 4; ++i) f.feed(agg, {Fixture::ts(0, {a}, true, true)});
    auto first = agg.snapshot(true);
    CHECK(first.interval.ticks == 4);
    for (int i = 0; i < 2; ++i) f.feed(agg, {Fixture::ts(0, {b}, true, true)});
    auto second = agg.snapshot(true);
    CHECK(second.interval.ticks == 2);
    CHECK(second.cumulative.ticks == 6);

    TopViewOptions view;
    auto rows = buildTopTable(second, view);
    REQUIRE(rows.size() == 1);  // only what the window saw
    CHECK(rows[0].function->name == "b");
    CHECK(rows[0].ownPercent == Approx(100.0));

    view.cumulative = true;  // `c`
    rows = buildTopTable(second, view);
    REQUIRE(rows.size() == 2);
    CHECK(rows[0].function->name == "a");
    CHECK(rows[0].ownPercent == Approx(400.0 / 6));
    CHECK(rows[1].ownPercent == Approx(200.0 / 6));
}

TEST_CASE("filters: idle threads are left out of rows unless --idle, --gil keeps the holder", "[top]") {
    Fixture f;
    const FrameId busy = f.frame("busy", 1), sleep = f.frame("sleep", 2);
    const auto run = [&](SamplerOptions options) {
        TopAggregator agg(options);
        for (int i = 0; i < 10; ++i) {
            f.feed(agg, {Fixture::ts(0, {busy}, true, i % 2 == 0), Fixture::ts(1, {sleep}, false, false)});
        }
        return agg.snapshot(false);
    };
    SamplerOptions options = f.options;
    auto snap = run(options);
    TopViewOptions view;
    auto rows = buildTopTable(snap, view);
    REQUIRE(rows.size() == 1);
    CHECK(rows[0].function->name == "busy");
    CHECK(snap.interval.kept == 10);
    CHECK(snap.interval.threadSamples == 20);

    options.includeIdle = true;
    snap = run(options);
    rows = buildTopTable(snap, view);
    CHECK(rows.size() == 2);
    CHECK(find(rows, "sleep")->ownPercent == Approx(100.0));

    options.includeIdle = false;
    options.gilOnly = true;
    snap = run(options);
    rows = buildTopTable(snap, view);
    REQUIRE(rows.size() == 1);
    CHECK(rows[0].ownPercent == Approx(50.0));
}

TEST_CASE("gauges and thread states: contention shows one thread waiting for the GIL", "[top]") {
    Fixture f;
    const FrameId spinA = f.frame("spin", 5), spinB = f.frame("spin", 6), main = f.frame("main", 9);
    f.threads.push_back(ProfiledThread{0x3000, 102, "third", 0});
    TopAggregator agg(f.options);
    // Two spinning threads take turns with the GIL; the waiter is asleep on the GIL
    // (state gil, not active). The main thread sleeps and never holds the GIL.
    for (int i = 0; i < 100; ++i) {
        const bool aHolds = (i / 5) % 2 == 0;
        f.feed(agg, {Fixture::waiting(0, {main}, ThreadState::Sleep),
                     Fixture::ts(1, {aHolds ? spinA : spinB}, aHolds, aHolds, ThreadState::Gil),
                     Fixture::ts(2, {aHolds ? spinB : spinA}, !aHolds, !aHolds, ThreadState::Gil)});
    }
    const TopSnapshot snap = agg.snapshot(true);
    const TopWindow& w = snap.interval;
    CHECK(w.gilShare() == Approx(1.0));
    CHECK(w.statePerTick(ThreadState::Running) == Approx(1.0));
    CHECK(w.statePerTick(ThreadState::Gil) == Approx(1.0));
    CHECK(w.statePerTick(ThreadState::Sleep) == Approx(1.0));
    CHECK(w.statePerTick(ThreadState::Lock) == 0.0);
    CHECK(w.activeShare() == Approx(1.0 / 3));
    CHECK(snap.liveThreads == 3);

    TopAggregator sleepy(f.options);
    for (int i = 0; i < 50; ++i) {
        f.feed(sleepy, {Fixture::waiting(0, {main}, ThreadState::Sleep), Fixture::waiting(1, {main}, ThreadState::Io)});
    }
    const TopSnapshot quiet = sleepy.snapshot(false);
    CHECK(quiet.interval.gilShare() == 0.0);
    CHECK(quiet.interval.activeShare() == 0.0);
    CHECK(quiet.interval.statePerTick(ThreadState::Running) == 0.0);
    CHECK(quiet.interval.statePerTick(ThreadState::Sleep) == Approx(1.0));
    CHECK(quiet.interval.statePerTick(ThreadState::Io) == Approx(1.0));
}

TEST_CASE("a thread running per the OS, or holding the GIL, is running whatever its state says", "[top]") {
    Fixture f;
    const FrameId hash = f.frame("hash_file", 3);
    TopAggregator agg(f.options);
    for (int i = 0; i < 100; ++i) {
        ThreadSample t = Fixture::ts(0, {hash}, i % 2 == 0, i % 4 == 1);
        t.state = ThreadState::Io;  // a stale or unknown state: the OS and the GIL win
        f.feed(agg, {t});
    }
    auto snap = agg.snapshot(false);
    CHECK(snap.interval.statePerTick(ThreadState::Running) == Approx(0.75));
    CHECK(snap.interval.statePerTick(ThreadState::Io) == Approx(0.25));
    CHECK(snap.interval.activeShare() == Approx(0.75));
    CHECK(topSampleState(Fixture::ts(0, {}, false, true, ThreadState::Gil)) == ThreadState::Running);
    CHECK(topSampleState(Fixture::waiting(0, {}, ThreadState::Lock)) == ThreadState::Lock);
}

TEST_CASE("wait views: the functions where threads wait, per state, own and total", "[top]") {
    Fixture f;
    const FrameId mod = f.frame("<module>", 1), work = f.frame("work", 10), recv = f.frame("recv_all", 20),
                  acquire = f.frame("acquire_it", 30), nap = f.frame("nap", 40);
    f.threads.push_back(ProfiledThread{0x3000, 102, "third", 0});
    SamplerOptions options = f.options;
    TopAggregator agg(options);
    // The main thread runs work(); the worker waits on I/O in recv_all 3 ticks of 4 and
    // on a lock the 4th; the third thread sleeps.
    for (int i = 0; i < 8; ++i) {
        f.feed(agg, {Fixture::ts(0, {mod, work}, true, true),
                     i % 4 == 3 ? Fixture::waiting(1, {mod, work, acquire}, ThreadState::Lock)
                                : Fixture::waiting(1, {mod, work, recv}, ThreadState::Io),
                     Fixture::waiting(2, {nap}, ThreadState::Sleep)});
    }
    const TopSnapshot snap = agg.snapshot(false);
    TopViewOptions view;  // running: work alone (idle threads are not kept)
    auto rows = buildTopTable(snap, view);
    REQUIRE(rows.size() == 2);
    CHECK(rows[0].function->name == "work");
    CHECK(rows[0].ownPercent == Approx(100.0));
    CHECK(find(rows, "recv_all") == nullptr);

    view.state = ThreadState::Io;
    rows = buildTopTable(snap, view);
    REQUIRE(rows.size() == 3);
    CHECK(rows[0].function->name == "recv_all");
    CHECK(rows[0].ownPercent == Approx(75.0));
    CHECK(rows[0].totalPercent == Approx(75.0));
    CHECK(rows[0].ownSeconds == Approx(0.06));
    CHECK(find(rows, "work")->ownPercent == 0.0);
    CHECK(find(rows, "work")->totalPercent == Approx(75.0));
    CHECK(find(rows, "acquire_it") == nullptr);

    view.state = ThreadState::Lock;
    rows = buildTopTable(snap, view);
    REQUIRE(find(rows, "acquire_it") != nullptr);
    CHECK(find(rows, "acquire_it")->ownPercent == Approx(25.0));
    CHECK(rows[0].function->name == "acquire_it");

    view.state = ThreadState::Sleep;
    view.perThread = true;
    rows = buildTopTable(snap, view);
    REQUIRE(rows.size() == 1);
    CHECK(rows[0].function->name == "nap");
    CHECK(*rows[0].thread == 2);

    view = TopViewOptions{};
    view.state = ThreadState::Child;
    CHECK(buildTopTable(snap, view).empty());

    // --idle puts the waiting threads in the running view too; the wait views are the same.
    options.includeIdle = true;
    TopAggregator all(options);
    for (int i = 0; i < 4; ++i) {
        f.feed(all, {Fixture::ts(0, {mod, work}, true, true), Fixture::waiting(1, {mod, work, recv}, ThreadState::Io)});
    }
    const TopSnapshot idle = all.snapshot(false);
    CHECK(find(buildTopTable(idle, TopViewOptions{}), "recv_all") != nullptr);
    view.state = ThreadState::Io;
    rows = buildTopTable(idle, view);
    CHECK(find(rows, "recv_all")->ownPercent == Approx(100.0));
    CHECK(find(rows, "work")->totalPercent == Approx(100.0));  // the waiter's stack only
}

TEST_CASE("per-thread rows and sorting by each column, reversed", "[top]") {
    Fixture f;
    const FrameId outer = f.frame("outer", 1), hot = f.frame("hot", 2), warm = f.frame("warm", 3);
    TopAggregator agg(f.options);
    for (int i = 0; i < 10; ++i) {
        f.feed(agg, {Fixture::ts(0, {outer, i < 7 ? hot : warm}, true, true), Fixture::ts(1, {hot}, true, false)});
    }
    auto snap = agg.snapshot(false);
    TopViewOptions view;
    auto rows = buildTopTable(snap, view);
    REQUIRE(rows.size() == 3);
    CHECK(rows[0].function->name == "hot");  // 17 of 10 ticks: 170%
    CHECK(rows[0].ownPercent == Approx(170.0));
    CHECK(rows[1].function->name == "warm");
    CHECK(rows[2].function->name == "outer");

    view.sort = TopColumn::Total;
    rows = buildTopTable(snap, view);
    CHECK(rows[0].function->name == "hot");
    CHECK(rows[1].function->name == "outer");  // 100% total beats warm's 30%
    view.reverse = true;
    rows = buildTopTable(snap, view);
    CHECK(rows[0].function->name == "warm");
    CHECK(rows[2].function->name == "hot");

    view = TopViewOptions{};
    view.sort = TopColumn::TotalTime;
    rows = buildTopTable(snap, view);
    CHECK(rows[0].function->name == "hot");
    CHECK(rows[1].function->name == "outer");

    view = TopViewOptions{};
    view.perThread = true;
    rows = buildTopTable(snap, view);
    REQUIRE(rows.size() == 4);
    CHECK(rows[0].function->name == "hot");
    CHECK(*rows[0].thread == 1);  // 100% in the worker
    CHECK(rows[1].function->name == "hot");
    CHECK(*rows[1].thread == 0);
    CHECK(rows[1].ownPercent == Approx(70.0));
    CHECK(topThreadLabel(snap.threads[*rows[0].thread]) == "worker 101");
}

TEST_CASE("keys change the view", "[top]") {
    TopViewState s;
    CHECK(applyTopKey(s, '2'));
    CHECK(s.view.sort == TopColumn::Total);
    CHECK(applyTopKey(s, '4'));
    CHECK(s.view.sort == TopColumn::TotalTime);
    CHECK(applyTopKey(s, 'r'));
    CHECK(s.view.reverse);
    CHECK(applyTopKey(s, 'l'));
    CHECK_FALSE(s.view.lineNumbers);
    CHECK(applyTopKey(s, 'c'));
    CHECK(s.view.cumulative);
    CHECK(applyTopKey(s, 't'));
    CHECK(s.view.perThread);
    CHECK(applyTopKey(s, 'P'));
    CHECK(s.view.perProcess);
    // w cycles the views: running, gil, lock, io, sleep, child, other, and back; W goes back.
    CHECK(s.view.state == ThreadState::Running);
    const ThreadState cycle[] = {ThreadState::Gil,   ThreadState::Lock,  ThreadState::Io,     ThreadState::Sleep,
                                 ThreadState::Child, ThreadState::Other, ThreadState::Running};
    for (ThreadState next : cycle) {
        CHECK(applyTopKey(s, 'w'));
        CHECK(s.view.state == next);
    }
    CHECK(applyTopKey(s, 'W'));
    CHECK(s.view.state == ThreadState::Other);
    CHECK(applyTopKey(s, 'w'));
    CHECK(s.view.state == ThreadState::Running);
    CHECK_FALSE(s.paused);
    CHECK(applyTopKey(s, 'p'));
    CHECK(s.paused);
    CHECK(applyTopKey(s, '?'));
    CHECK(s.help);
    CHECK(applyTopKey(s, '1'));  // closes the help, changes nothing else
    CHECK_FALSE(s.help);
    CHECK(s.view.sort == TopColumn::TotalTime);
    CHECK_FALSE(applyTopKey(s, 'x'));
    CHECK_FALSE(s.quit);
    applyTopKey(s, 'q');
    CHECK(s.quit);
}

TEST_CASE("processes: rows merge across processes, ticks are sampling instants, per-process table", "[top]") {
    // Two processes, each with its own sampler (own FrameTable, own thread indices):
    // the parent idles in main, each of two workers runs work() holding its GIL.
    SamplerOptions options;
    options.rateHz = 100;
    options.includeIdle = true;
    TopAggregator agg(options);
    const std::uint32_t parent = agg.addProcess(10, "python app.py", 1.0, 100.0);
    const std::uint32_t worker1 = agg.addProcess(11, "python worker", 0.0, 100.0);
    const std::uint32_t worker2 = agg.addProcess(12, "python worker", 0.0, 100.0);
    Fixture a, b, c;  // one frame table per process; ids differ on purpose
    b.frame("unrelated", 1);
    const FrameId pMain = a.frame("main", 5), w1Work = b.frame("work", 9), w2Work = c.frame("work", 9);
    for (int i = 0; i < 10; ++i) {
        Sample s;
        s.tick = std::uint64_t(i);
        s.time = 0.01 * i;
        s.threads = {Fixture::ts(0, {pMain}, false, false)};
        agg.onProcessSample(parent, s, a.frames, a.threads);
        s.threads = {Fixture::ts(0, {w1Work}, true, true)};
        agg.onProcessSample(worker1, s, b.frames, b.threads);
        if (i < 5) {  // the second worker joined late: half the ticks
            s.threads = {Fixture::ts(0, {w2Work}, true, i % 2 == 0)};
            agg.onProcessSample(worker2, s, c.frames, c.threads);
        }
    }
    agg.processEnded(worker2);
    TopSnapshot snap = agg.snapshot(false);
    CHECK(snap.interval.ticks == 10);  // instants, not 25 process ticks
    CHECK(snap.interval.processTicks == 25);
    CHECK(snap.interval.gilShare() == Approx(13.0 / 25));
    CHECK(snap.liveThreads == 2);  // the ended worker's thread is gone

    const auto rows = buildTopTable(snap, TopViewOptions{});
    const TopRow* work = find(rows, "work");
    REQUIRE(work != nullptr);
    CHECK(work->ownPercent == Approx(150.0));  // 10 + 5 thread-samples in 10 instants
    CHECK(work->processCount == 2);
    CHECK_FALSE(work->process.has_value());
    const TopRow* main = find(rows, "main");
    REQUIRE(main != nullptr);
    REQUIRE(main->process.has_value());
    CHECK(snap.processes[*main->process].pid == 10);
    CHECK(find(rows, "unrelated") == nullptr);

    // CPU: 0.5 s of CPU in 1 s for worker 11, and nothing for the others.
    TopCpuMeter meter;
    const std::map<pid_t, double> cpu{{10, 1.0}, {11, 0.5}};
    meter.measure(snap, 101.0, [&](pid_t pid) -> std::optional<double> {
        auto it = cpu.find(pid);
        return it == cpu.end() ? std::nullopt : std::optional<double>(it->second);
    });
    REQUIRE(snap.processes[worker1].cpuInterval.has_value());
    CHECK(*snap.processes[worker1].cpuInterval == Approx(0.5));
    CHECK(*snap.processes[parent].cpuInterval == Approx(0.0));
    CHECK_FALSE(snap.processes[worker2].cpuInterval.has_value());  // ended: not read

    const auto procs = buildTopProcessTable(snap, TopViewOptions{});
    REQUIRE(procs.size() == 3);
    CHECK(procs[0].process->pid == 11);
    CHECK(*procs[0].cpuPercent == Approx(50.0));
    CHECK(procs[0].gilPercent == Approx(100.0));
    CHECK(procs[0].samples == 10);
    CHECK(procs[1].process->pid == 10);
    CHECK(procs[1].gilPercent == Approx(0.0));
    CHECK(procs[2].process->pid == 12);  // no CPU figure: last
    CHECK(procs[2].gilPercent == Approx(60.0));
    CHECK(procs[2].process->ended);
    // Threads per sample in each state: the parent's main thread waits (state other in
    // these samples), each worker's runs.
    CHECK(procs[0].perTick(ThreadState::Running) == Approx(1.0));
    CHECK(procs[1].perTick(ThreadState::Running) == 0.0);
    CHECK(procs[1].perTick(ThreadState::Other) == Approx(1.0));
    CHECK(procs[2].perTick(ThreadState::Running) == Approx(1.0));

    // The next interval is measured from the previous reading.
    TopSnapshot next = agg.snapshot(true);
    meter.measure(next, 103.0, [](pid_t pid) -> std::optional<double> { return pid == 11 ? 2.5 : 1.0; });
    CHECK(*next.processes[worker1].cpuInterval == Approx(1.0));
    CHECK(*next.processes[worker1].cpuCumulative == Approx(2.5 / 3));
}
