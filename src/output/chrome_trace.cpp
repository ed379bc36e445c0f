#include "pyspy/output/chrome_trace.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "pyspy/output/dump.h"

namespace pyspy {

namespace {

using nlohmann::json;

// One complete event: a frame on one thread's stack from ts for dur (microseconds).
struct FrameEvent {
    std::uint32_t thread;  // a TimelineSpan::thread
    std::uint32_t depth;   // 0 for the outermost frame under the thread
    FrameId frame;
    std::int64_t ts;
    std::int64_t dur;
};

// A frame on the stack while one thread's spans are walked.
struct OpenFrame {
    NodeId node;
    double start;
    double end;
};

std::string jsonText(const json& value) { return value.dump(-1, ' ', false, json::error_handler_t::replace); }

std::int64_t micros(double seconds) { return std::llround(seconds * 1e6); }

bool isThreadFrame(const RecordedProfile& profile, FrameId id) {
    return id < profile.frames.size() && profile.frames[id].kind == FrameKind::Thread;
}

// The trie nodes of the stack ending at `leaf`, outermost first, without the thread frame.
void stackNodes(const RecordedProfile& profile, NodeId leaf, std::vector<NodeId>& nodes) {
    nodes.clear();
    if (leaf == kNoNode || leaf >= profile.trie.size()) return;
    for (NodeId n = leaf; n != kRootNode && n != kNoNode; n = profile.trie.node(n).parent) nodes.push_back(n);
    std::reverse(nodes.begin(), nodes.end());
    if (!nodes.empty() && isThreadFrame(profile, profile.trie.node(nodes.front()).frame)) nodes.erase(nodes.begin());
}

// Walks the spans of every thread, keeping a frame open while consecutive spans (no
// sample missed between them) share the stack down to it.
std::vector<FrameEvent> frameEvents(const RecordedProfile& profile) {
    std::vector<const TimelineSpan*> spans;
    spans.reserve(profile.timeline.size());
    for (const auto& span : profile.timeline) spans.push_back(&span);
    std::stable_sort(spans.begin(), spans.end(), [](const TimelineSpan* a, const TimelineSpan* b) {
        return std::tie(a->thread, a->start) < std::tie(b->thread, b->start);
    });
    // A gap of half an interval or more between spans means a sample is missing.
    const double tolerance = profile.interval() / 2;

    std::vector<FrameEvent> events;
    std::vector<OpenFrame> open;
    std::vector<NodeId> nodes;
    std::uint32_t thread = 0;
    double lastEnd = 0;
    const auto closeFrom = [&](std::size_t depth) {
        while (open.size() > depth) {
            const OpenFrame& frame = open.back();
            const std::int64_t ts = micros(frame.start);
            events.push_back({thread, static_cast<std::uint32_t>(open.size() - 1), profile.trie.node(frame.node).frame,
                              ts, std::max<std::int64_t>(0, micros(frame.end) - ts)});
            open.pop_back();
        }
    };
    for (const TimelineSpan* span : spans) {
        if (span->thread != thread) {
            closeFrom(0);
            thread = span->thread;
        }
        stackNodes(profile, span->leaf, nodes);
        std::size_t kept = 0;
        if (span->start < lastEnd + tolerance) {
            while (kept < open.size() && kept < nodes.size() && open[kept].node == nodes[kept]) ++kept;
        }
        closeFrom(kept);
        for (auto& frame : open) frame.end = span->end;
        for (std::size_t i = kept; i < nodes.size(); ++i) open.push_back({nodes[i], span->start, span->end});
        lastEnd = span->end;
    }
    closeFrom(0);
    return events;
}

std::string threadLabel(const RecordedProfile& profile, std::size_t index) {
    if (index >= profile.threads.size()) return fmt::format("thread {}", index);
    const ProfiledThread& thread = profile.threads[index];
    if (!thread.name.empty()) return thread.name;
    if (thread.frame < profile.frames.size() && !profile.frames[thread.frame].name.empty()) {
        return profile.frames[thread.frame].name;
    }
    return fmt::format("thread {:#x}", thread.threadId);
}

std::int64_t tidOf(const RecordedProfile& profile, std::size_t index) {
    if (index < profile.threads.size() && profile.threads[index].nativeId) return *profile.threads[index].nativeId;
    return static_cast<std::int64_t>(index);
}

}  // namespace

void writeChromeTrace(const RecordedProfile& profile, const ExportOptions& options, std::ostream& out,
                      std::size_t maxEvents) {
    std::vector<FrameEvent> events = frameEvents(profile);
    const std::size_t dropped = events.size() > maxEvents ? events.size() - maxEvents : 0;
    if (dropped > 0) {
        // Keep the longest; on equal durations the outer frame first, so that every kept
        // event's parents (which last at least as long) are kept too.
        const auto longer = [](const FrameEvent& a, const FrameEvent& b) {
            return std::tie(b.dur, a.depth, a.thread, a.ts) < std::tie(a.dur, b.depth, b.thread, b.ts);
        };
        std::nth_element(events.begin(), events.begin() + static_cast<std::ptrdiff_t>(maxEvents), events.end(), longer);
        events.resize(maxEvents);
    }
    // Per thread by time, a parent before the children that start with it.
    std::sort(events.begin(), events.end(), [](const FrameEvent& a, const FrameEvent& b) {
        return std::tie(a.thread, a.ts, b.dur, a.depth) < std::tie(b.thread, b.ts, a.dur, b.depth);
    });

    const std::string pid = std::to_string(profile.pid);
    json otherData = {{"exporter", "pyspy-cpp"},
                      {"title", options.title},
                      {"pid", profile.pid},
                      {"command_line", profile.commandLine},
                      {"python_version", profile.pythonVersion},
                      {"rate_hz", profile.rateHz},
                      {"start_time", profile.startTime},
                      {"duration", profile.duration},
                      {"samples", profile.samples},
                      {"errors", profile.errors},
                      {"gil_only", profile.gilOnly},
                      {"include_idle", profile.includeIdle},
                      {"dropped_events", dropped}};
    out << "{\"displayTimeUnit\":\"ms\",\"otherData\":" << jsonText(otherData) << ",\"traceEvents\":[\n";

    const std::string processName =
        profile.commandLine.empty() ? fmt::format("pid {}", profile.pid) : profile.commandLine;
    out << R"({"ph":"M","name":"process_name","pid":)" << pid << R"(,"tid":0,"args":{"name":)"
        << jsonText(processName) << "}}";
    // Threads in the profile's order, whether or not they have spans.
    std::size_t threadCount = profile.threads.size();
    for (const auto& span : profile.timeline) threadCount = std::max<std::size_t>(threadCount, span.thread + 1);
    for (std::size_t i = 0; i < threadCount; ++i) {
        const std::int64_t tid = tidOf(profile, i);
        out << ",\n"
            << R"({"ph":"M","name":"thread_name","pid":)" << pid << R"(,"tid":)" << tid << R"(,"args":{"name":)"
            << jsonText(threadLabel(profile, i)) << "}}";
        out << ",\n"
            << R"({"ph":"M","name":"thread_sort_index","pid":)" << pid << R"(,"tid":)" << tid
            << R"(,"args":{"sort_index":)" << i << "}}";
    }

    // The name and args of each frame, made once.
    std::vector<std::string> frameText(profile.frames.size());
    for (const FrameEvent& event : events) {
        std::string unknown = R"("name":"?","args":{})";
        std::string* text = &unknown;
        if (event.frame < frameText.size()) {
            text = &frameText[event.frame];
            if (text->empty()) {
                const FrameKey& key = profile.frames[event.frame];
                json args = json::object();
                if (!key.filename.empty()) {
                    args["file"] = options.fullFilenames ? key.filename : shortFilename(key.filename);
                }
                if (options.showLines && key.line > 0) args["line"] = key.line;
                *text = "\"name\":" + jsonText(key.name.empty() ? std::string("?") : key.name) +
                        ",\"args\":" + jsonText(args);
            }
        }
        out << ",\n"
            << R"({"ph":"X","cat":"python","pid":)" << pid << R"(,"tid":)" << tidOf(profile, event.thread)
            << R"(,"ts":)" << event.ts << R"(,"dur":)" << event.dur << ',' << *text << '}';
    }
    out << "\n]}\n";
}

}  // namespace pyspy
