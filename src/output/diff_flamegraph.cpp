#include "pyspy/output/diff_flamegraph.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <span>
#include <unordered_map>

#include "pyspy/output/collapsed.h"
#include "pyspy/output/flamegraph_svg.h"

namespace pyspy {

namespace {

constexpr std::size_t kMaxListedOnlyInBase = 30;  // lines under the graph; the rest are counted
constexpr std::size_t kMaxPathChars = 4096;       // a listed frame's callers, cut after this

double ratio(std::uint64_t part, std::uint64_t whole) {
    return whole == 0 ? 0.0 : static_cast<double>(part) / static_cast<double>(whole);
}

std::string samplesText(std::uint64_t n) {
    return fmt::format("{} sample{}", n, n == 1 ? "" : "s");
}

// How a node's share changed, in words and in a colour.
class DiffFrames : public FlameGraphFrames {
  public:
    explicit DiffFrames(const ProfileDiff& diff) : diff_(diff), labels_(diff.frames().size()) {
        for (NodeId id = 1; id < diff.next().size(); ++id) {
            if (diff.next().node(id).total == 0) continue;
            const ShareChange c = diff.change(id);
            if (c.significant) largest_ = std::max(largest_, std::fabs(c.delta));
        }
    }

    const StackTrie& trie() const override { return diff_.next(); }
    const std::string& label(FrameId frame) override {
        auto& slot = labels_[frame];
        if (!slot) slot = svgSafeText(diff_.frames()[frame]);
        return *slot;
    }
    std::string fill(NodeId node) override {
        const ShareChange c = diff_.change(node);
        if (!c.significant || largest_ <= 0) return "#d4d4d4";
        // Saturation by the size of the change, relative to the largest one shown; a
        // change beyond noise is never paler than a quarter.
        const double s = 0.25 + 0.75 * std::min(1.0, std::fabs(c.delta) / largest_);
        const int pale = static_cast<int>(std::lround(225 - 185 * s));
        return c.delta > 0 ? fmt::format("#ff{0:02x}{0:02x}", pale) : fmt::format("#{0:02x}{0:02x}ff", pale);
    }
    std::string details(NodeId node) override {
        const ShareChange c = diff_.change(node);
        const std::uint64_t b = diff_.base().node(node).total, n = diff_.next().node(node).total;
        return fmt::format(
            "BASE: {:.2f}% ({} of {})\nNEW: {:.2f}% ({} of {})\n{:+.2f} points: {} (3 sigma = {:.2f} points)",
            100 * c.base, b, samplesText(diff_.base().totalSamples()), 100 * c.next, n,
            samplesText(diff_.next().totalSamples()), 100 * c.delta, verdict(c), 100 * c.threshold);
    }
    std::string attributes(NodeId node) override {
        const ShareChange c = diff_.change(node);
        return fmt::format(R"( data-base="{}" data-delta="{:.4f}" data-change="{}")", diff_.base().node(node).total,
                           100 * c.delta,
                           !c.significant ? "noise"
                           : c.delta > 0  ? "grew"
                                          : "shrank");
    }

    static const char* verdict(const ShareChange& c) {
        if (!c.significant) return "within sampling noise";
        return c.delta > 0 ? "grew beyond sampling noise" : "shrank beyond sampling noise";
    }

  private:
    const ProfileDiff& diff_;
    std::vector<std::optional<std::string>> labels_;
    double largest_ = 0;  // the largest |delta| beyond noise
};

// "frame < caller < caller's caller ...", cut after kMaxPathChars.
std::string callers(const ProfileDiff& diff, NodeId node) {
    std::string path;
    for (NodeId n = node; n != kRootNode && n != kNoNode; n = diff.base().node(n).parent) {
        if (!path.empty()) path += " < ";
        if (path.size() > kMaxPathChars) {
            path += "...";
            break;
        }
        path += diff.frames()[diff.base().node(n).frame];
    }
    return path;
}

}  // namespace

ShareChange shareChange(std::uint64_t base, std::uint64_t baseTotal, std::uint64_t next, std::uint64_t nextTotal) {
    ShareChange c;
    c.base = ratio(base, baseTotal);
    c.next = ratio(next, nextTotal);
    c.delta = c.next - c.base;
    if (baseTotal == 0 || nextTotal == 0) return c;  // nothing to test against
    const double p = ratio(base + next, baseTotal + nextTotal);
    const double variance =
        std::max(0.0, p * (1 - p)) * (1.0 / static_cast<double>(baseTotal) + 1.0 / static_cast<double>(nextTotal));
    c.threshold = kDiffNoiseSigmas * std::sqrt(variance);
    c.significant = std::fabs(c.delta) > c.threshold;
    return c;
}

ProfileDiff::ProfileDiff(const LoadedProfile& base, const LoadedProfile& next) {
    std::unordered_map<std::string, FrameId> index;
    auto frameIds = [&](const LoadedProfile& profile) {
        std::vector<FrameId> ids;
        ids.reserve(profile.frames.size());
        for (const std::string& label : profile.frames) {
            const auto [it, added] = index.try_emplace(label, static_cast<FrameId>(frames_.size()));
            if (added) frames_.push_back(label);
            ids.push_back(it->second);
        }
        return ids;
    };
    const std::vector<FrameId> baseIds = frameIds(base), nextIds = frameIds(next);

    // Every stack goes into both tries, with a zero count in the other one, in one order:
    // the tries then have the same nodes under the same ids.
    std::vector<FrameId> stack;
    auto add = [&](const LoadedProfile& profile, const std::vector<FrameId>& ids, bool isBase) {
        profile.trie.forEachStack([&](std::span<const FrameId> frames, std::uint64_t count) {
            stack.clear();
            for (const FrameId f : frames) stack.push_back(ids[f]);
            const NodeId node = base_.insert(stack, isBase ? count : 0);
            next_.insert(stack, isBase ? 0 : count);
            if (isBase || base_.node(node).self == 0) stacks_.push_back(node);
        });
    };
    add(base, baseIds, true);
    add(next, nextIds, false);
}

ShareChange ProfileDiff::change(NodeId node) const {
    return shareChange(base_.node(node).total, base_.totalSamples(), next_.node(node).total, next_.totalSamples());
}

std::vector<NodeId> ProfileDiff::onlyInBase() const {
    std::vector<NodeId> nodes;
    for (NodeId id = 1; id < base_.size(); ++id) {
        const NodeId parent = base_.node(id).parent;
        if (next_.node(id).total == 0 && base_.node(id).total > 0 &&
            (parent == kRootNode || next_.node(parent).total > 0)) {
            nodes.push_back(id);
        }
    }
    std::stable_sort(nodes.begin(), nodes.end(),
                     [&](NodeId a, NodeId b) { return base_.node(a).total > base_.node(b).total; });
    return nodes;
}

void writeDiffFlameGraph(const ProfileDiff& diff, const DiffOptions& options, std::ostream& out) {
    DiffFrames frames(diff);
    FlameGraphPage page;
    const std::uint64_t baseTotal = diff.base().totalSamples(), nextTotal = diff.next().totalSamples();
    page.title = options.title.empty() ? std::string("Differential Flame Graph") : svgSafeText(options.title);
    page.subtitle = svgSafeText(fmt::format("BASE {} ({}) -> NEW {} ({})", options.baseName, samplesText(baseTotal),
                                            options.nextName, samplesText(nextTotal)));
    page.notes.emplace_back(
        "Red: the share of samples grew from BASE to NEW, blue: it shrank (deeper: a larger change); grey: within "
        "sampling noise (|change| <= 3 sigma, z-test).");

    const std::vector<NodeId> lost = diff.onlyInBase();
    std::uint64_t lostSamples = 0;
    for (const NodeId n : lost) lostSamples += diff.base().node(n).total;
    if (lost.empty()) {
        page.notes.emplace_back("Only in BASE: nothing (every frame of BASE is in NEW).");
    } else {
        page.notes.push_back(
            fmt::format("Only in BASE (not drawn, each with what it called): {} frame{}, {:.2f}% of BASE's "
                        "samples; the frame, then its callers:",
                        lost.size(), lost.size() == 1 ? "" : "s", 100 * ratio(lostSamples, baseTotal)));
    }
    for (std::size_t i = 0; i < lost.size() && i < kMaxListedOnlyInBase; ++i) {
        const ShareChange c = diff.change(lost[i]);
        page.notes.push_back(svgSafeText(fmt::format("  {:.2f}% of BASE ({}), {}: {}", 100 * c.base,
                                                     samplesText(diff.base().node(lost[i]).total),
                                                     DiffFrames::verdict(c), callers(diff, lost[i]))));
    }
    if (lost.size() > kMaxListedOnlyInBase) {
        page.notes.push_back(fmt::format("  ... and {} more", lost.size() - kMaxListedOnlyInBase));
    }
    writeFlameGraphSvg(frames, page, out);
}

void writeDiffCollapsed(const ProfileDiff& diff, std::ostream& out) {
    std::vector<std::optional<std::string>> texts(diff.frames().size());
    std::string line;
    for (const NodeId node : diff.stacks()) {
        line.clear();
        for (const FrameId f : diff.base().path(node)) {
            if (!texts[f]) texts[f] = collapsedText(diff.frames()[f]);
            if (!line.empty()) line += ';';
            line += *texts[f];
        }
        if (line.empty()) line = "(no frames)";  // a sample without frames
        line += fmt::format(" {} {}\n", diff.base().node(node).self, diff.next().node(node).self);
        out.write(line.data(), static_cast<std::streamsize>(line.size()));
    }
}

}  // namespace pyspy
