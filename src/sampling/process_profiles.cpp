#include "pyspy/sampling/process_profiles.h"

#include <algorithm>
#include <span>
#include <unordered_map>

#include <fmt/format.h>

namespace pyspy {

namespace {

// Command lines are bounded (readCommandLine) but can still be long: a frame label
// keeps the first part.
constexpr std::size_t kMaxCommandLineInLabel = 200;

}  // namespace

std::string processFrameLabel(pid_t pid, const std::string& commandLine) {
    std::string shown = commandLine.substr(0, kMaxCommandLineInLabel);
    if (shown.size() < commandLine.size()) shown += "...";
    return fmt::format("process {}: {}", pid, shown);
}

RecordedProfile mergeProcessProfiles(std::vector<RecordedProfile> processes) {
    RecordedProfile merged;
    if (processes.empty()) return merged;
    const RecordedProfile& root = processes.front();
    merged.pid = root.pid;
    merged.commandLine = root.commandLine;
    merged.pythonVersion = root.pythonVersion;
    merged.rateHz = root.rateHz;
    merged.gilOnly = root.gilOnly;
    merged.includeIdle = root.includeIdle;
    merged.startTime = root.startTime;
    for (const auto& p : processes) merged.startTime = std::min(merged.startTime, p.startTime);
    double end = merged.startTime;
    for (const auto& p : processes) {
        end = std::max(end, p.startTime + p.duration);
        merged.samples += p.samples;
        merged.errors += p.errors;
    }
    merged.duration = end - merged.startTime;

    std::vector<FrameId> stack;
    for (const RecordedProfile& p : processes) {
        FrameKey processKey;
        processKey.kind = FrameKind::Python;
        processKey.name = processFrameLabel(p.pid, p.commandLine);
        const FrameId processFrame = merged.frames.intern(processKey);

        std::vector<FrameId> frameMap(p.frames.size());
        for (std::size_t id = 0; id < p.frames.size(); ++id) {
            FrameKey key = p.frames[static_cast<FrameId>(id)];
            if (key.kind == FrameKind::Thread) key.name = fmt::format("process {} {}", p.pid, key.name);
            frameMap[id] = merged.frames.intern(key);
        }
        const auto threadBase = static_cast<std::uint32_t>(merged.threads.size());
        for (ProfiledThread thread : p.threads) {
            const std::string name =
                thread.name.empty() ? (thread.nativeId ? fmt::format("thread {}", *thread.nativeId) : std::string())
                                    : thread.name;
            thread.name = name.empty() ? fmt::format("pid {}", p.pid) : fmt::format("pid {}: {}", p.pid, name);
            if (thread.frame < frameMap.size()) thread.frame = frameMap[thread.frame];
            merged.threads.push_back(std::move(thread));
        }
        // [thread frame, process frame, rest...]; a stack without a thread frame (the
        // trie's contract says never) gets the process frame first.
        const auto remap = [&](std::span<const FrameId> outermostFirst) {
            stack.clear();
            std::size_t i = 0;
            if (!outermostFirst.empty() && p.frames[outermostFirst[0]].kind == FrameKind::Thread) {
                stack.push_back(frameMap[outermostFirst[0]]);
                i = 1;
            }
            stack.push_back(processFrame);
            for (; i < outermostFirst.size(); ++i) stack.push_back(frameMap[outermostFirst[i]]);
        };
        p.trie.forEachStack([&](std::span<const FrameId> outermostFirst, std::uint64_t self) {
            remap(outermostFirst);
            merged.trie.insert(stack, self);
        });
        const double shift = p.startTime - merged.startTime;
        for (const TimelineSpan& span : p.timeline) {
            remap(p.trie.path(span.leaf));
            TimelineSpan moved = span;
            moved.thread = threadBase + span.thread;
            moved.leaf = merged.trie.insert(stack, 0);
            moved.start += shift;
            moved.end += shift;
            merged.timeline.push_back(moved);
        }
    }
    return merged;
}

}  // namespace pyspy
