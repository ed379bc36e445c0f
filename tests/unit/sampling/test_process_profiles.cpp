#include <catch2/catch.hpp>

#include <map>
#include <span>
#include <string>
#include <vector>

#include "pyspy/sampling/process_profiles.h"

using namespace pyspy;

namespace {

// One thread (its Thread frame first), stacks of named functions with counts.
RecordedProfile profileOf(pid_t pid, const std::string& command, double start,
                          const std::map<std::vector<std::string>, std::uint64_t>& stacks) {
    RecordedProfile p;
    p.pid = pid;
    p.commandLine = command;
    p.startTime = start;
    p.duration = 1;
    p.samples = 10;
    p.errors = 1;
    ProfiledThread thread;
    thread.threadId = 1;
    thread.nativeId = pid;
    thread.name = "MainThread";
    thread.frame = p.frames.intern({FrameKind::Thread, "Thread " + std::to_string(pid) + " \"MainThread\"", "", 0});
    p.threads.push_back(thread);
    for (const auto& [names, count] : stacks) {
        std::vector<FrameId> ids{thread.frame};
        for (const auto& name : names) ids.push_back(p.frames.intern({FrameKind::Python, name, "/t.py", 1}));
        const NodeId leaf = p.trie.insert(ids, count);
        p.timeline.push_back(TimelineSpan{0, leaf, 0.5, 0.6, count});
    }
    return p;
}

std::map<std::vector<std::string>, std::uint64_t> stacksOf(const RecordedProfile& p) {
    std::map<std::vector<std::string>, std::uint64_t> out;
    p.trie.forEachStack([&](std::span<const FrameId> frames, std::uint64_t self) {
        std::vector<std::string> names;
        for (FrameId f : frames) names.push_back(p.frames[f].name);
        out[names] += self;
    });
    return out;
}

}  // namespace

TEST_CASE("mergeProcessProfiles puts a process frame under each thread frame", "[process_profiles]") {
    std::vector<RecordedProfile> processes;
    processes.push_back(profileOf(10, "python parent.py", 100.0, {{{"main", "work"}, 3}}));
    processes.push_back(profileOf(11, "python worker.py", 100.5, {{{"task"}, 5}, {{"task", "inner"}, 2}}));
    const RecordedProfile merged = mergeProcessProfiles(std::move(processes));

    CHECK(merged.pid == 10);
    CHECK(merged.commandLine == "python parent.py");
    CHECK(merged.samples == 20);
    CHECK(merged.errors == 2);
    CHECK(merged.startTime == 100.0);
    CHECK(merged.duration == Approx(1.5));
    const auto stacks = stacksOf(merged);
    using Stack = std::vector<std::string>;
    CHECK(stacks == std::map<Stack, std::uint64_t>{
                        {{"process 10 Thread 10 \"MainThread\"", "process 10: python parent.py", "main", "work"}, 3},
                        {{"process 11 Thread 11 \"MainThread\"", "process 11: python worker.py", "task"}, 5},
                        {{"process 11 Thread 11 \"MainThread\"", "process 11: python worker.py", "task", "inner"}, 2}});
    // Without the thread level (flame graph, raw, pprof) the process frame is the root.
    const StackTrie merged2 = merged.trie.withoutFirstLevel();
    std::vector<std::string> roots;
    merged2.forEachChild(kRootNode, [&](NodeId n) { roots.push_back(merged.frames[merged2.node(n).frame].name); });
    CHECK(roots == std::vector<std::string>{"process 10: python parent.py", "process 11: python worker.py"});

    REQUIRE(merged.threads.size() == 2);
    CHECK(merged.threads[0].name == "pid 10: MainThread");
    CHECK(merged.threads[1].name == "pid 11: MainThread");
    CHECK(merged.frames[merged.threads[1].frame].name == "process 11 Thread 11 \"MainThread\"");
    // Timelines: thread indices offset, times shifted onto the earliest start.
    REQUIRE(merged.timeline.size() == 3);
    CHECK(merged.timeline[0].thread == 0);
    CHECK(merged.timeline[1].thread == 1);
    CHECK(merged.timeline[1].start == Approx(1.0));
    CHECK(merged.frames[merged.trie.node(merged.timeline[2].leaf).frame].name == "inner");
}

TEST_CASE("processFrameLabel bounds the command line", "[process_profiles]") {
    CHECK(processFrameLabel(7, "python a.py") == "process 7: python a.py");
    const std::string label = processFrameLabel(7, std::string(1000, 'x'));
    CHECK(label.size() < 250);
    CHECK(label.substr(label.size() - 3) == "...");
}
