// Memory of one hour of `record` at 100 Hz: feeds ProfileBuilder the samples of a
// program with a few thousand distinct stacks (synthetic, seeded) and prints the
// resident set size at the end. Usage: bench_profile_memory [--timeline] [--stacks N]
//   [--threads N] [--hours H]
// Results and the command are in docs/performance.md.
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "pyspy/sampling/sampler.h"

using namespace pyspy;

namespace {

long residentKiB() {
    std::ifstream status("/proc/self/status");
    for (std::string line; std::getline(status, line);) {
        if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
    }
    return -1;
}

}  // namespace

int main(int argc, char** argv) {
    bool timeline = false;
    std::size_t stacks = 3000, threads = 4;
    double hours = 1;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--timeline") == 0) timeline = true;
        if (std::strcmp(argv[i], "--stacks") == 0 && i + 1 < argc) stacks = std::stoul(argv[++i]);
        if (std::strcmp(argv[i], "--threads") == 0 && i + 1 < argc) threads = std::stoul(argv[++i]);
        if (std::strcmp(argv[i], "--hours") == 0 && i + 1 < argc) hours = std::stod(argv[++i]);
    }
    const long before = residentKiB();

    // 600 functions in 60 files, a few lines each; stacks 10-40 deep drawn from them.
    std::mt19937_64 rng(42);
    FrameTable frames;
    std::vector<FrameId> pool;
    for (int f = 0; f < 600; ++f) {
        for (int line = 0; line < 4; ++line) {
            pool.push_back(frames.intern({FrameKind::Python, "function_" + std::to_string(f),
                                          "/srv/app/package/module_" + std::to_string(f % 60) + ".py",
                                          10 + f * 7 + line}));
        }
    }
    std::vector<std::vector<FrameId>> distinct(stacks);
    for (auto& stack : distinct) {
        const std::size_t depth = 10 + rng() % 31;
        for (std::size_t d = 0; d < depth; ++d) stack.push_back(pool[rng() % pool.size()]);
    }
    std::vector<ProfiledThread> threadTable(threads);
    for (std::size_t t = 0; t < threads; ++t) threadTable[t].threadId = 0x1000 + t;

    SamplerOptions options;
    options.includeIdle = true;
    ProfileBuilder builder(options, timeline);
    const auto ticks = static_cast<std::uint64_t>(hours * 3600 * 100);
    std::geometric_distribution<std::size_t> popularity(0.002);  // a few hot stacks, a long tail
    Sample sample;
    for (std::uint64_t tick = 0; tick < ticks; ++tick) {
        sample.tick = tick;
        sample.time = static_cast<double>(tick) / 100.0;
        sample.threads.clear();
        for (std::uint32_t t = 0; t < threads; ++t) {
            ThreadSample ts;
            ts.thread = t;
            ts.active = true;
            ts.frames = distinct[popularity(rng) % distinct.size()];
            sample.threads.push_back(std::move(ts));
        }
        builder.onSample(sample, frames, threadTable);
    }
    const long after = residentKiB();
    std::printf("ticks %llu, threads %zu, distinct stacks %zu, timeline %s: resident %.1f MB (%.1f MB at start)%s\n",
                static_cast<unsigned long long>(ticks), threads, stacks, timeline ? "on" : "off",
                static_cast<double>(after) / 1024, static_cast<double>(before) / 1024,
                builder.timelineTruncated() ? ", timeline cut at its bound" : "");
    return 0;
}
