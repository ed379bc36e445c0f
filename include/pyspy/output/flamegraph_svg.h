// The SVG document of a flame graph, shared by record's flame graph (flamegraph.h) and
// diff's differential one (diff_flamegraph.h): text safety, the layout of a StackTrie
// (classic bottom-up, widths by node totals, children sorted by label, frames narrower
// than 0.1 px left out with everything above them), title, buttons, notes under the
// graph and the embedded script (zoom, search, details line). Format notes in
// docs/formats.md.
//
// Text from a profile is hostile: whatever reaches the document goes through
// svgSafeText (valid UTF-8, control characters spelled out) and is then XML-escaped
// here, and only ever lands in text nodes; the script holds no data and reads the DOM.
#pragma once

#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "pyspy/sampling/stack_trie.h"

namespace pyspy {

// Valid UTF-8 holding only characters XML allows: malformed bytes, U+FFFE and U+FFFF
// become U+FFFD, control characters (C0, DEL, C1) the text \xNN. Not yet XML-escaped.
std::string svgSafeText(std::string_view raw);

// What a kind of flame graph decides about its frames; the document does the rest.
class FlameGraphFrames {
  public:
    virtual ~FlameGraphFrames() = default;
    // The frames: a node's width is its total.
    virtual const StackTrie& trie() const = 0;
    // The label of a frame (FrameId of the trie): safe text (svgSafeText), not escaped.
    virtual const std::string& label(FrameId frame) = 0;
    // The fill of a node ("#rrggbb"); `node` may be the root, "all".
    virtual std::string fill(NodeId node) = 0;
    // What its tooltip (<title>) says below the label, one or more lines separated by
    // '\n': safe text, not escaped. The details line at the bottom shows the label and
    // these lines joined by ", ".
    virtual std::string details(NodeId node) = 0;
    // More attributes of the frame's <g> (` name="value"`, values escaped), or "".
    virtual std::string attributes(NodeId) { return {}; }
};

struct FlameGraphPage {
    std::string title;               // safe text
    std::string subtitle;            // safe text, shortened to fit (whole in its tooltip)
    std::vector<std::string> notes;  // safe lines of text under the graph, each shortened to fit
};

void writeFlameGraphSvg(FlameGraphFrames& frames, const FlameGraphPage& page, std::ostream& out);

}  // namespace pyspy
