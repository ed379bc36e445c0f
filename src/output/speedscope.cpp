#include "pyspy/output/speedscope.h"

#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "pyspy/output/dump.h"

namespace pyspy {

namespace {

using nlohmann::json;

struct ThreadProfile {
    std::string name;
    json samples = json::array();
    json weights = json::array();
    std::uint64_t total = 0;
};

std::string defaultName(const RecordedProfile& profile) {
    std::string name = "pyspy-cpp";
    if (!profile.commandLine.empty()) name += ": " + profile.commandLine;
    if (profile.pid != 0) name += " (pid " + std::to_string(profile.pid) + ")";
    return name;
}

}  // namespace

void writeSpeedscope(const RecordedProfile& profile, const ExportOptions& options, std::ostream& out) {
    // Speedscope frames in order of first use; one per FrameId so that two functions
    // whose shortened filenames coincide stay apart.
    json frames = json::array();
    std::unordered_map<FrameId, std::size_t> frameIndex;
    const auto indexOf = [&](FrameId id) -> std::size_t {
        if (auto it = frameIndex.find(id); it != frameIndex.end()) return it->second;
        json frame;
        if (id < profile.frames.size()) {
            const FrameKey& key = profile.frames[id];
            frame["name"] = key.name.empty() ? std::string("?") : key.name;
            if (!key.filename.empty()) {
                frame["file"] = options.fullFilenames ? key.filename : shortFilename(key.filename);
            }
            if (options.showLines && key.line > 0) frame["line"] = key.line;
        } else {
            frame["name"] = "?";
        }
        frames.push_back(std::move(frame));
        return frameIndex[id] = frames.size() - 1;
    };

    // The first level of the trie splits the profiles: one per thread frame.
    std::vector<ThreadProfile> threads;
    std::unordered_map<FrameId, std::size_t> threadIndex;
    profile.trie.forEachStack([&](std::span<const FrameId> stack, std::uint64_t count) {
        if (stack.empty()) return;  // not under any thread: the trie's contract says never
        const FrameId root = stack.front();
        const bool isThread = root < profile.frames.size() && profile.frames[root].kind == FrameKind::Thread;
        auto [it, added] = threadIndex.try_emplace(root, threads.size());
        if (added) {
            ThreadProfile thread;
            if (isThread) thread.name = profile.frames[root].name;
            if (thread.name.empty()) thread.name = "thread " + std::to_string(threads.size());
            threads.push_back(std::move(thread));
        }
        ThreadProfile& thread = threads[it->second];
        json sample = json::array();
        for (std::size_t i = isThread ? 1 : 0; i < stack.size(); ++i) sample.push_back(indexOf(stack[i]));
        thread.samples.push_back(std::move(sample));
        thread.weights.push_back(count);
        thread.total += count;
    });

    json profiles = json::array();
    std::size_t active = 0;
    for (std::size_t i = 0; i < threads.size(); ++i) {
        if (threads[i].total > threads[active].total) active = i;  // open on the busiest thread
        profiles.push_back({{"type", "sampled"},
                            {"name", threads[i].name},
                            {"unit", "none"},
                            {"startValue", 0},
                            {"endValue", threads[i].total},
                            {"samples", std::move(threads[i].samples)},
                            {"weights", std::move(threads[i].weights)}});
    }

    json doc = {{"$schema", "https://www.speedscope.app/file-format-schema.json"},
                {"exporter", "pyspy-cpp"},
                {"name", options.title.empty() ? defaultName(profile) : options.title},
                {"activeProfileIndex", active},
                {"shared", {{"frames", std::move(frames)}}},
                {"profiles", std::move(profiles)}};
    // Bytes from the target that are not valid UTF-8 become U+FFFD, never raw output.
    out << doc.dump(-1, ' ', false, json::error_handler_t::replace) << '\n';
}

}  // namespace pyspy
