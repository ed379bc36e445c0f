// Reading back the profiles `record` writes, for `pyspy-cpp diff`: raw (collapsed),
// speedscope and pprof (gzip-compressed or not). The format is told by the content,
// never by the file name: gzip is decompressed first, then a JSON object is speedscope,
// binary data (control bytes) is pprof and text is collapsed stacks.
//
// The bytes are untrusted: the input, the decompressed data, the depth of a stack and
// the frames of all stacks are bounded (ProfileReadLimits), every index and length is
// checked, and a malformed profile is an error, never a crash.
//
// A frame read back is its label, `function (file:line)` (`function (file)` without a
// line, `function` alone for a thread or a frame without a file): what raw output
// writes, with its \xNN escapes of ';' and control characters undone. Speedscope's
// per-thread profiles are merged, as the other formats merge threads without -t.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "pyspy/common/result.h"
#include "pyspy/sampling/stack_trie.h"

namespace pyspy {

enum class ProfileInput { Collapsed, Speedscope, Pprof };

const char* profileInputName(ProfileInput format);  // "raw", "speedscope", "pprof"

struct ProfileReadLimits {
    std::size_t maxBytes = std::size_t{256} << 20;      // the file, and a pprof once decompressed
    std::size_t maxStackDepth = 65536;                  // frames in one stack
    std::uint64_t maxFramesTotal = 100'000'000;         // frames over all stacks read
    std::uint64_t maxSamples = std::uint64_t{1} << 53;  // the sum of all counts
};

// A profile read back: frames by label, stacks outermost first with their counts.
struct LoadedProfile {
    ProfileInput format = ProfileInput::Collapsed;
    bool compressed = false;          // it was gzip-compressed
    std::vector<std::string> frames;  // FrameId -> label
    StackTrie trie;                   // counts are samples

    std::uint64_t samples() const { return trie.totalSamples(); }
};

// The label of a frame: "?" for an empty name; the file and line in parentheses when
// there is a file (a line <= 0 is left out).
std::string profileFrameLabel(std::string_view name, std::string_view file, std::int64_t line);

// Parses a whole profile (any of the three formats). A profile without samples is not
// an error here.
Result<LoadedProfile> parseProfile(std::string_view bytes, const ProfileReadLimits& limits = {});

// Reads and parses the file at `path`. `role` names it in errors ("BASE", "NEW").
// Throws FatalError: Io when it cannot be read, Usage when it is not a profile this
// reads or holds no samples. Messages are one line.
LoadedProfile readProfileFile(const std::string& path, std::string_view role, const ProfileReadLimits& limits = {});

}  // namespace pyspy
