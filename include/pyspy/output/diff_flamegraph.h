// `pyspy-cpp diff`: two profiles read back (profile_reader.h) compared frame by frame,
// written as a differential flame graph (SVG) or as difffolded lines (raw).
//
// A frame is a node of the stack tree: the same function under the same callers. Its
// share is its samples over the profile's total. A change of share counts only when it
// exceeds what sampling noise allows: a two-proportion z-test with the pooled share
// p = (b + n) / (B + N), se = sqrt(p (1 - p) (1/B + 1/N)), significant when
// |n/N - b/B| > 3 se (docs/formats.md, "diff").
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "pyspy/output/profile_reader.h"
#include "pyspy/sampling/stack_trie.h"

namespace pyspy {

inline constexpr double kDiffNoiseSigmas = 3;

struct ShareChange {
    double base = 0;           // share in BASE, 0..1
    double next = 0;           // share in NEW, 0..1
    double delta = 0;          // next - base
    double threshold = 0;      // kDiffNoiseSigmas standard errors of the difference
    bool significant = false;  // |delta| > threshold
};

// The z-test of `base` samples of `baseTotal` against `next` samples of `nextTotal`.
ShareChange shareChange(std::uint64_t base, std::uint64_t baseTotal, std::uint64_t next, std::uint64_t nextTotal);

// BASE and NEW on one set of frames: two tries with the same nodes (a node id means the
// same stack in both; a stack only one profile has has zero counts in the other).
class ProfileDiff {
  public:
    ProfileDiff(const LoadedProfile& base, const LoadedProfile& next);

    const std::vector<std::string>& frames() const { return frames_; }  // FrameId -> label
    const StackTrie& base() const { return base_; }
    const StackTrie& next() const { return next_; }  // NEW
    ShareChange change(NodeId node) const;
    // Every node with samples of its own in either profile (a stack of one of them), in
    // the order BASE's stacks were read, then NEW's.
    const std::vector<NodeId>& stacks() const { return stacks_; }
    // The nodes only BASE has (no samples in NEW) whose caller NEW has: the frames
    // NEW lost, each with everything above it. Most BASE samples first.
    std::vector<NodeId> onlyInBase() const;

  private:
    std::vector<std::string> frames_;
    StackTrie base_, next_;
    std::vector<NodeId> stacks_;
};

struct DiffOptions {
    std::string baseName;  // how BASE and NEW are named (file names)
    std::string nextName;
    std::string title;  // default "Differential Flame Graph"
};

// The differential flame graph: NEW's frames, coloured by the change of their share
// (red grew, blue shrank, grey within sampling noise), the frames only BASE has listed
// under the graph.
void writeDiffFlameGraph(const ProfileDiff& diff, const DiffOptions& options, std::ostream& out);

// One line per stack, `frame;frame;... BASE_COUNT NEW_COUNT` (flamegraph.pl's
// difffolded.pl form), frames escaped as raw output escapes them.
void writeDiffCollapsed(const ProfileDiff& diff, std::ostream& out);

}  // namespace pyspy
