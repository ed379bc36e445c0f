// Sampler's tick API (begin / tick / nextDue / finish), driven from outside as
// TreeRecording's shared threads drive it, against a live interpreter.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <chrono>
#include <memory>
#include <cstdlib>
#include <string>
#include <thread>

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
