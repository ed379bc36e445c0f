// RecordedProfile: what `record` hands to the exporters (include/pyspy/output/*).
//
// Every stack in `trie` starts with a FrameKind::Thread frame (one per thread, see
// `threads`); exporters that do not show threads use trie.withoutFirstLevel().
// Python frames are stored with full filenames and, unless aggregated away, lines;
// exporters shorten filenames for display (output/dump.h shortFilename) unless told
// to keep them full.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "pyspy/sampling/stack_trie.h"

namespace pyspy {

struct ProfiledThread {
    std::uint64_t threadId = 0;      // the interpreter's thread id (pthread_self)
    std::optional<pid_t> nativeId;   // the OS thread id, when known
    std::string name;                // threading.Thread name, or "" when unknown
    FrameId frame = 0;               // its FrameKind::Thread root frame in `frames`
};

// A run of consecutive samples of one thread with the same stack: the timeline that
// chrometrace draws (and a stall detector will read). Times in seconds since start.
struct TimelineSpan {
    std::uint32_t thread = 0;  // index into RecordedProfile::threads
    NodeId leaf = kRootNode;   // the stack (its innermost node in `trie`)
    double start = 0;
    double end = 0;            // the time of the last sample of the run plus one interval
    std::uint64_t samples = 0;
};

struct RecordedProfile {
    pid_t pid = 0;
    std::string commandLine;
    std::string pythonVersion;
    double rateHz = 100;       // requested sampling rate
    double startTime = 0;      // seconds since the Unix epoch, first sample
    double duration = 0;       // seconds from the first to the last sample
    std::uint64_t samples = 0;  // sampling ticks that read the process
    std::uint64_t errors = 0;   // ticks or thread stacks that could not be read
    bool gilOnly = false, includeIdle = false;  // what was kept (for titles / metadata)

    FrameTable frames;
    StackTrie trie;  // counts are thread-samples
    std::vector<ProfiledThread> threads;
    std::vector<TimelineSpan> timeline;

    double interval() const { return rateHz > 0 ? 1.0 / rateHz : 0.01; }
};

}  // namespace pyspy
