#include "pyspy/output/flamegraph.h"

#include <fmt/format.h>

#include <cstdint>
#include <ctime>
#include <optional>
#include <vector>

#include "pyspy/output/dump.h"
#include "pyspy/output/flamegraph_svg.h"

namespace pyspy {

namespace {

// ---- labels and colours ---------------------------------------------------------------

std::string frameLabel(const FrameKey& key, const ExportOptions& options) {
    if (key.kind == FrameKind::Thread) return key.name;
    std::string label = key.name;
    const std::string file = options.fullFilenames ? key.filename : shortFilename(key.filename);
    const bool line = options.showLines && key.line > 0;
    if (!file.empty() || line) {
        label += " (";
        label += file.empty() ? std::string("?") : file;
        if (line) label += fmt::format(":{}", key.line);
        label += ')';
    }
    return label;
}

std::uint32_t fnv1a(std::string_view s) {
    std::uint32_t h = 2166136261u;
    for (const char c : s) {
        h ^= static_cast<unsigned char>(c);
        h *= 16777619u;
    }
    return h;
}

std::string colourOf(const FrameKey* key) {
    if (key == nullptr) return "#c8c8c8";  // the root, "all"
    const std::uint32_t h = fnv1a(key->name);
    const double a = (h & 0x3FF) / 1023.0, b = ((h >> 10) & 0x3FF) / 1023.0, c = ((h >> 20) & 0x3FF) / 1023.0;
    int r = 0, g = 0, bl = 0;
    switch (key->kind) {
        case FrameKind::Python:  // warm: reds, oranges, yellows
            r = 205 + static_cast<int>(50 * a), g = 70 + static_cast<int>(150 * b), bl = 20 + static_cast<int>(45 * c);
            break;
        case FrameKind::Thread:  // blues
            r = 80 + static_cast<int>(50 * a), g = 140 + static_cast<int>(50 * b), bl = 205 + static_cast<int>(50 * c);
            break;
        case FrameKind::Native:  // greens
            r = 90 + static_cast<int>(60 * a), g = 185 + static_cast<int>(50 * b), bl = 80 + static_cast<int>(50 * c);
            break;
        case FrameKind::State:  // --wait's state leaves: greys with a violet cast
            r = 150 + static_cast<int>(40 * a), g = 140 + static_cast<int>(30 * b), bl = 185 + static_cast<int>(40 * c);
            break;
    }
    return fmt::format("#{:02x}{:02x}{:02x}", r, g, bl);
}

std::string samplesText(std::uint64_t n) {
    return fmt::format("{} sample{}", n, n == 1 ? "" : "s");
}

std::string subtitleOf(const RecordedProfile& profile, std::uint64_t threadSamples) {
    std::vector<std::string> parts;
    std::string who = profile.commandLine;
    if (profile.pid != 0) who += fmt::format("{}(pid {})", who.empty() ? "" : " ", profile.pid);
    if (!who.empty()) parts.push_back(who);
    if (!profile.pythonVersion.empty()) parts.push_back("Python " + profile.pythonVersion);
    parts.push_back(
        fmt::format("{}, {:g} Hz, {:.2f} s", samplesText(profile.samples), profile.rateHz, profile.duration));
    if (threadSamples != profile.samples) parts.push_back(fmt::format("{} thread-samples", threadSamples));
    parts.push_back(fmt::format("{} thread{}", profile.threads.size(), profile.threads.size() == 1 ? "" : "s"));
    parts.push_back(fmt::format("{} error{}", profile.errors, profile.errors == 1 ? "" : "s"));
    if (profile.gilOnly) parts.push_back("GIL holders only");
    if (profile.includeIdle) parts.push_back("idle included");
    if (profile.startTime > 0) {
        const auto t = static_cast<std::time_t>(profile.startTime);
        std::tm tm{};
        if (gmtime_r(&t, &tm) != nullptr) {
            char buf[32];
            if (std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm) > 0) parts.push_back(buf);
        }
    }
    std::string out;
    for (const auto& p : parts) {
        if (!out.empty()) out += " | ";
        out += p;
    }
    return out;
}

class Labels {
  public:
    Labels(const FrameTable& frames, const ExportOptions& options)
        : frames_(frames), options_(options), cache_(frames.size()) {}
    // The display label of a frame: safe text (valid UTF-8, no controls), not yet escaped.
    const std::string& of(FrameId id) {
        auto& slot = cache_[id];
        if (!slot) slot = svgSafeText(frameLabel(frames_[id], options_));
        return *slot;
    }

  private:
    const FrameTable& frames_;
    const ExportOptions& options_;
    std::vector<std::optional<std::string>> cache_;
};

// The frames of a recorded profile: colours by function name and kind, samples and
// their share in the tooltip.
class ProfileFrames : public FlameGraphFrames {
  public:
    ProfileFrames(const RecordedProfile& profile, const ExportOptions& options)
        : profile_(profile), labels_(profile.frames, options) {
        if (!options.showThreads) merged_ = profile.trie.withoutFirstLevel();
        trie_ = options.showThreads ? &profile.trie : &merged_;
    }
    const StackTrie& trie() const override { return *trie_; }
    const std::string& label(FrameId frame) override { return labels_.of(frame); }
    std::string fill(NodeId node) override {
        return colourOf(node == kRootNode ? nullptr : &profile_.frames[trie_->node(node).frame]);
    }
    std::string details(NodeId node) override {
        const std::uint64_t n = trie_->node(node).total;
        return fmt::format("{}, {:.2f}%", samplesText(n),
                           100.0 * static_cast<double>(n) / static_cast<double>(trie_->totalSamples()));
    }

  private:
    const RecordedProfile& profile_;
    StackTrie merged_;
    const StackTrie* trie_ = nullptr;
    Labels labels_;
};

}  // namespace

void writeFlameGraph(const RecordedProfile& profile, const ExportOptions& options, std::ostream& out) {
    ProfileFrames frames(profile, options);
    FlameGraphPage page;
    page.title = options.title.empty() ? std::string("Flame Graph") : svgSafeText(options.title);
    page.subtitle = svgSafeText(subtitleOf(profile, frames.trie().totalSamples()));
    writeFlameGraphSvg(frames, page, out);
}

}  // namespace pyspy
