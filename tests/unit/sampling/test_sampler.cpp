// Sampler's tick API (begin / tick / nextDue / finish), driven from outside as
// TreeRecording's shared threads drive it, against a live interpreter.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>

#include "pyspy/common/error.h"
#include "pyspy/python/python_process.h"
#include "pyspy/sampling/sampler.h"
#include "support/child_process.h"

using namespace pyspy;

namespace {

constexpr const char* kTargetScript =
    "import sys, time\n"
    "def parked_in_sampler_test():\n"
    "    sys.stdout.write('READY\\n')\n"
    "    sys.stdout.flush()\n"
    "    while True:\n"
    "        time.sleep(0.01)\n"
    "parked_in_sampler_test()\n";

std::string requirePython() {
    std::string python = test::testPython();
    if (python.find('/') != std::string::npos && ::access(python.c_str(), X_OK) != 0) std::exit(77);
    return python;
}

// A Python parked in parked_in_sampler_test, attached.
struct ParkedPython {
    ParkedPython() : child({requirePython(), "-c", kTargetScript}) {
        REQUIRE(child.waitFor("READY"));
        process = PythonProcess::attach(child.pid());
    }
    test::ChildProcess child;
    std::unique_ptr<PythonProcess> process;
};

// Counts ticks and the ticks in which some thread was in the parked function.
class CountingSink : public SampleSink {
  public:
    void onSample(const Sample& sample, const FrameTable& frames, const std::vector<ProfiledThread>&) override {
        ++samples;
        for (const auto& thread : sample.threads) {
            for (FrameId id : thread.frames) {
                if (frames[id].name == "parked_in_sampler_test") {
                    ++parked;
                    return;
                }
            }
        }
    }
    int samples = 0;
    int parked = 0;
};

void sleepUntilDue(const Sampler& sampler) {
    std::this_thread::sleep_until(sampler.nextDue());
}

}  // namespace

TEST_CASE("Sampler ticks when driven from outside and ends when the target exits", "[interp]") {
    ParkedPython target;
    SamplerOptions options;
    options.rateHz = 200;
    options.includeIdle = true;
    Sampler sampler(*target.process, options);
    CountingSink sink;
    sampler.begin();
    for (int i = 0; i < 20; ++i) {
        sleepUntilDue(sampler);
        REQUIRE(sampler.tick(sink));
    }
    CHECK(sink.samples + static_cast<int>(sampler.errorsSoFar()) >= 20);
    CHECK(sink.parked > 0);

    // A tick called before it is due samples nothing.
    const int before = sink.samples;
    const auto due = sampler.nextDue();
    if (std::chrono::steady_clock::now() + std::chrono::milliseconds(1) < due) {
        CHECK(sampler.tick(sink));
        CHECK(sink.samples == before);
    }

    target.child.kill();
    bool going = true;
    for (int i = 0; i < 100 && going; ++i) {
        sleepUntilDue(sampler);
        going = sampler.tick(sink);
    }
    CHECK_FALSE(going);
    const SamplerStats stats = sampler.finish();
    CHECK(stats.targetExited);
    CHECK(stats.ticks == static_cast<std::uint64_t>(sink.samples));
    CHECK(stats.elapsedSeconds > 0);
}

TEST_CASE("Sampler's tick ends at the duration, which counts as due", "[interp]") {
    ParkedPython target;
    SamplerOptions options;
    options.rateHz = 1;  // the next tick would come after the duration
    options.durationSeconds = 0.2;
    Sampler sampler(*target.process, options);
    CountingSink sink;
    const auto begun = std::chrono::steady_clock::now();
    sampler.begin();
    REQUIRE(sampler.tick(sink));  // the first tick is due at once
    CHECK(sampler.nextDue() <= begun + std::chrono::milliseconds(400));
    sleepUntilDue(sampler);
    bool going = true;
    for (int i = 0; i < 10 && going; ++i) {
        going = sampler.tick(sink);
        if (going) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    CHECK_FALSE(going);
    const SamplerStats stats = sampler.finish();
    CHECK(stats.ticks == 1);
    CHECK_FALSE(stats.targetExited);
    CHECK(stats.elapsedSeconds >= 0.2);
}

TEST_CASE("ProfileBuilder: a snapshot copies, a cut moves out and starts anew", "[interp]") {
    ParkedPython target;
    SamplerOptions options;
    options.rateHz = 200;
    options.includeIdle = true;
    Sampler sampler(*target.process, options);
    ProfileBuilder builder(options, true);
    sampler.begin();
    const auto tickTimes = [&](int n) {
        for (int i = 0; i < n; ++i) {
            sleepUntilDue(sampler);
            REQUIRE(sampler.tick(builder));
        }
    };
    tickTimes(10);
    const RecordedProfile snapshot = builder.snapshot(sampler, sampler.statsSoFar(), *target.process);
    CHECK(snapshot.samples == sampler.statsSoFar().ticks);
    CHECK(snapshot.trie.totalSamples() > 0);
    CHECK_FALSE(snapshot.timeline.empty());

    tickTimes(5);
    const SamplerStats atCut = sampler.statsSoFar();
    const RecordedProfile first = builder.cut(sampler, atCut, *target.process);
    CHECK(first.samples == atCut.ticks);
    CHECK(first.trie.totalSamples() >= snapshot.trie.totalSamples());  // a superset of the snapshot
    CHECK(first.errors == atCut.errors);

    tickTimes(7);
    const SamplerStats end = sampler.finish();
    const RecordedProfile second = builder.finish(sampler, end, *target.process);
    // The second period holds only what came after the cut, and its clock starts there.
    CHECK(second.samples == end.ticks - atCut.ticks);
    CHECK(second.trie.totalSamples() <= second.samples * second.threads.size());
    CHECK(second.trie.totalSamples() > 0);
    CHECK(second.startTime >= first.startTime + atCut.elapsedSeconds - 1e-6);
    CHECK(second.duration <= end.elapsedSeconds - atCut.elapsedSeconds + 1e-6);
    for (const auto& span : second.timeline) CHECK(span.start <= second.duration + 0.1);
    // The frame table is kept across the cut: the parked function is found in both.
    const auto named = [](const RecordedProfile& profile) {
        for (FrameId id = 0; id < profile.frames.size(); ++id) {
            if (profile.frames[id].name == "parked_in_sampler_test") return true;
        }
        return false;
    };
    CHECK(named(first));
    CHECK(named(second));
}

TEST_CASE("ThreadFilter keeps threads by name (a regex search) or OS id", "[sampling]") {
    ProfiledThread worker;
    worker.name = "worker-3";
    worker.nativeId = 4242;
    ProfiledThread main;
    main.name = "MainThread";
    main.nativeId = 100;
    ProfiledThread unnamed;

    CHECK(ThreadFilter().keeps(worker));
    CHECK(ThreadFilter().keeps(unnamed));
    const ThreadFilter byName({"^work", "nothing"}, {});
    CHECK(byName.keeps(worker));
    CHECK_FALSE(byName.keeps(main));
    CHECK_FALSE(byName.keeps(unnamed));
    CHECK(ThreadFilter({"er-"}, {}).keeps(worker));  // a search, not a full match
    const ThreadFilter byId({}, {100});
    CHECK(byId.keeps(main));
    CHECK_FALSE(byId.keeps(worker));
    CHECK_FALSE(byId.keeps(unnamed));
    const ThreadFilter either({"^work"}, {100});
    CHECK(either.keeps(main));
    CHECK(either.keeps(worker));
    try {
        ThreadFilter({"("}, {});
        FAIL("no error for a bad regex");
    } catch (const FatalError& error) {
        CHECK(error.kind() == ErrorKind::Usage);
        CHECK_THAT(error.what(), Catch::Contains("--thread-name '('"));
    }
}
