#include "pyspy/output/flamegraph_svg.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <iterator>

#include "pyspy/output/flamegraph.h"

namespace pyspy {

namespace {

// Layout, in SVG user units (pixels).
constexpr double kImageWidth = 1200;
constexpr double kSidePad = 10;
constexpr double kFramesWidth = kImageWidth - 2 * kSidePad;
constexpr double kFrameHeight = 16;  // one level, including a 1 px gap
constexpr double kRectHeight = 15;
constexpr double kTextDy = 11;                  // baseline of a label below its rect's top
constexpr double kCharWidth = 7.2;              // 12 px monospace: 0.6 em
constexpr double kFramesTop = 76;               // below title, subtitle and buttons
constexpr double kBottomPad = 30;               // the details line
constexpr double kMinFrameWidth = 0.1;          // narrower frames are not drawn (their samples stay in the parent)
constexpr std::size_t kMaxLineChars = 160;      // subtitle and notes: what fits the width
constexpr std::size_t kMaxTooltipChars = 4096;  // the whole of a shortened line, up to this

// ---- text safety ---------------------------------------------------------------------

void appendUtf8(std::string& out, char32_t cp) {
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
}

constexpr char32_t kReplacement = 0xFFFD;

// Decodes `text` as UTF-8 and calls f(codepoint) for each character; a malformed
// sequence (its maximal valid prefix) yields one U+FFFD.
template <typename F>
void forEachCodepoint(std::string_view text, F&& f) {
    const auto* p = reinterpret_cast<const unsigned char*>(text.data());
    const std::size_t n = text.size();
    std::size_t i = 0;
    while (i < n) {
        const unsigned char b = p[i];
        if (b < 0x80) {
            f(static_cast<char32_t>(b));
            ++i;
            continue;
        }
        int need = 0;
        char32_t cp = 0;
        unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
        if (b >= 0xC2 && b <= 0xDF) {
            need = 1, cp = b & 0x1F;
        } else if (b >= 0xE0 && b <= 0xEF) {
            need = 2, cp = b & 0x0F;
            if (b == 0xE0) lo = 0xA0;  // no overlongs
            if (b == 0xED) hi = 0x9F;  // no surrogates
        } else if (b >= 0xF0 && b <= 0xF4) {
            need = 3, cp = b & 0x07;
            if (b == 0xF0) lo = 0x90;  // no overlongs
            if (b == 0xF4) hi = 0x8F;  // nothing above U+10FFFF
        } else {
            f(kReplacement);
            ++i;
            continue;
        }
        std::size_t j = i + 1;
        bool ok = true;
        for (int k = 0; k < need; ++k, ++j) {
            const unsigned char c = j < n ? p[j] : 0;
            const unsigned char min = k == 0 ? lo : 0x80, max = k == 0 ? hi : 0xBF;
            if (j >= n || c < min || c > max) {
                ok = false;
                break;
            }
            cp = (cp << 6) | (c & 0x3F);
        }
        f(ok ? cp : kReplacement);
        i = j;  // past the sequence, or past its valid prefix
    }
}

}  // namespace

std::string svgSafeText(std::string_view raw) {
    std::string out;
    out.reserve(raw.size());
    forEachCodepoint(raw, [&](char32_t cp) {
        if (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F)) {
            out += fmt::format("\\x{:02x}", static_cast<unsigned>(cp));
        } else if (cp == 0xFFFE || cp == 0xFFFF) {
            appendUtf8(out, kReplacement);
        } else {
            appendUtf8(out, cp);
        }
    });
    return out;
}

namespace {

// Escapes markup in text that svgSafeText already made safe.
void appendEscaped(std::string& out, std::string_view safe) {
    for (const char c : safe) {
        switch (c) {
            case '&':
                out += "&amp;";
                break;
            case '<':
                out += "&lt;";
                break;
            case '>':
                out += "&gt;";
                break;
            case '"':
                out += "&quot;";
                break;
            case '\'':
                out += "&apos;";
                break;
            default:
                out += c;
        }
    }
}

std::string escaped(std::string_view safe) {
    std::string out;
    out.reserve(safe.size() + 16);
    appendEscaped(out, safe);
    return out;
}

std::size_t codepointCount(std::string_view safe) {
    return static_cast<std::size_t>(
        std::count_if(safe.begin(), safe.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

// The first `count` characters of valid UTF-8.
std::string_view firstCodepoints(std::string_view safe, std::size_t count) {
    std::size_t seen = 0;
    for (std::size_t i = 0; i < safe.size(); ++i) {
        if ((static_cast<unsigned char>(safe[i]) & 0xC0) != 0x80) {
            if (seen == count) return safe.substr(0, i);
            ++seen;
        }
    }
    return safe;
}

// What fits in `width` pixels of a frame: the label, its head and "..", or nothing.
// The embedded script applies the same rule when zooming.
std::string fittedLabel(std::string_view safe, double width) {
    const double room = (width - 6) / kCharWidth;
    if (room < 3) return {};
    const auto chars = static_cast<std::size_t>(room);
    if (codepointCount(safe) <= chars) return std::string(safe);
    return std::string(firstCodepoints(safe, chars - 2)) + "..";
}

constexpr const char* kStyle = R"CSS(
text { font-family: monospace; font-size: 12px; fill: #000; }
#title { font-size: 17px; text-anchor: middle; }
#subtitle { text-anchor: middle; fill: #555; }
.btn { fill: #2a4f9a; cursor: pointer; }
.btn:hover { text-decoration: underline; }
#frames g { cursor: pointer; }
#frames g:hover rect { stroke: #000; stroke-width: 0.5; }
#frames text { pointer-events: none; }
#frames .anc rect { fill-opacity: 0.55; }
#matched { text-anchor: end; }
.note { fill: #333; }
)CSS";

// The interactive part. It holds no data: everything it shows comes from the DOM (the
// <title> of each frame, data-* attributes), and it only writes textContent.
constexpr const char* kScript = R"JS(
(function () {
  "use strict";
  var NS = "http://www.w3.org/2000/svg";
  var HIGHLIGHT = "#e63ce6";
  var root = document.getElementById("frames");
  if (!root) return;
  var num = function (el, name) { return parseFloat(el.getAttribute(name)); };
  var total = num(root, "data-total"), X0 = num(root, "data-x"), W = num(root, "data-width");
  var CW = num(root, "data-charw"), TOP = num(root, "data-top"), FH = num(root, "data-fh");
  var TDY = num(root, "data-tdy"), MAXD = num(root, "data-maxdepth");
  var details = document.getElementById("details"), matched = document.getElementById("matched");
  var unzoomBtn = document.getElementById("unzoom"), searchBtn = document.getElementById("search");
  var resetSearchBtn = document.getElementById("resetsearch");
  var frames = [], zoomed = null, searching = false;

  var gs = root.getElementsByTagName("g");
  for (var i = 0; i < gs.length; i++) {
    var g = gs[i], rect = g.getElementsByTagName("rect")[0], title = g.getElementsByTagName("title")[0];
    if (!rect || !title) continue;
    var t = title.textContent, nl = t.indexOf("\n");
    var y = num(rect, "y");
    var f = {
      g: g, rect: rect, text: g.getElementsByTagName("text")[0] || null,
      label: nl < 0 ? t : t.substring(0, nl), info: t.split("\n").join(", "), chars: null,
      s: num(g, "data-s"), n: num(g, "data-n"), d: Math.round(MAXD - (y - TOP) / FH),
      x: num(rect, "x"), w: num(rect, "width"), y: y, fill: rect.getAttribute("fill")
    };
    g.fgFrame = f;
    frames.push(f);
  }

  function pct(n) { return total > 0 ? (100 * n / total).toFixed(2) : "0.00"; }
  function samples(n) { return n + (n === 1 ? " sample" : " samples"); }
  function show(el, on) { el.setAttribute("visibility", on ? "visible" : "hidden"); }

  function fit(f, x, w) {
    var room = Math.floor((w - 6) / CW), s = "";
    if (room >= 3) {
      if (!f.chars) f.chars = Array.from(f.label);
      s = f.chars.length <= room ? f.label : f.chars.slice(0, room - 2).join("") + "..";
    }
    if (!f.text) {
      if (s === "") return;
      f.text = document.createElementNS(NS, "text");
      f.text.setAttribute("y", (f.y + TDY).toFixed(2));
      f.g.appendChild(f.text);
    }
    f.text.setAttribute("x", (x + 3).toFixed(2));
    f.text.textContent = s;
  }

  function place(f, x, w, ancestor) {
    f.rect.setAttribute("x", x.toFixed(2));
    f.rect.setAttribute("width", w.toFixed(2));
    f.g.removeAttribute("display");
    f.g.setAttribute("class", ancestor ? "anc" : "");
    fit(f, x, w);
  }

  function unzoom() {
    zoomed = null;
    for (var i = 0; i < frames.length; i++) place(frames[i], frames[i].x, frames[i].w, false);
    show(unzoomBtn, false);
  }

  function zoom(z) {
    if (z.d === 0) { unzoom(); return; }
    zoomed = z;
    for (var i = 0; i < frames.length; i++) {
      var f = frames[i];
      if (f.d < z.d && f.s <= z.s && f.s + f.n >= z.s + z.n) {
        place(f, X0, W, true);  // an ancestor: full width, dimmed
      } else if (f.d >= z.d && f.s >= z.s && f.s + f.n <= z.s + z.n) {
        place(f, X0 + (f.s - z.s) / z.n * W, f.n / z.n * W, false);
      } else {
        f.g.setAttribute("display", "none");
      }
    }
    show(unzoomBtn, true);
  }

  function resetSearch() {
    for (var i = 0; i < frames.length; i++) frames[i].rect.setAttribute("fill", frames[i].fill);
    matched.textContent = " ";
    searching = false;
    show(resetSearchBtn, false);
  }

  // A regular expression when the term is one, otherwise a plain substring.
  function search(term) {
    if (term === null || term === undefined || term === "") return;
    var re = null;
    try { re = new RegExp(term); } catch (e) { re = null; }
    var hits = [];
    for (var i = 0; i < frames.length; i++) {
      var f = frames[i];
      var hit = f.d > 0 && (re ? re.test(f.label) : f.label.indexOf(term) >= 0);
      f.rect.setAttribute("fill", hit ? HIGHLIGHT : f.fill);
      if (hit) hits.push(f);
    }
    // Nested matches (a recursive function) must not count twice: merge the intervals.
    hits.sort(function (a, b) { return a.s - b.s || b.n - a.n; });
    var sum = 0, end = -Infinity;
    for (var j = 0; j < hits.length; j++) {
      var h = hits[j], e = h.s + h.n;
      if (h.s >= end) { sum += h.n; end = e; } else if (e > end) { sum += e - end; end = e; }
    }
    matched.textContent = "Matched: " + pct(sum) + "% (" + sum + " of " + samples(total) + ", " +
        hits.length + (hits.length === 1 ? " frame)" : " frames)");
    searching = true;
    show(resetSearchBtn, true);
  }

  function askSearch() {
    var term = window.prompt("Search frames (regular expression or text):", "");
    if (term) search(term);
  }

  function frameOf(el) {
    for (; el && el !== root; el = el.parentNode) if (el.fgFrame) return el.fgFrame;
    return null;
  }

  root.addEventListener("mouseover", function (e) {
    var f = frameOf(e.target);
    if (f) details.textContent = f.info;
  });
  root.addEventListener("mouseout", function () { details.textContent = " "; });
  root.addEventListener("click", function (e) {
    var f = frameOf(e.target);
    if (f) zoom(f);
  });
  unzoomBtn.addEventListener("click", unzoom);
  searchBtn.addEventListener("click", askSearch);
  resetSearchBtn.addEventListener("click", resetSearch);
  window.addEventListener("keydown", function (e) {
    if ((e.ctrlKey || e.metaKey) && (e.key === "f" || e.key === "F" || e.keyCode === 70)) {
      e.preventDefault();
      askSearch();
    } else if (e.key === "Escape") {
      if (searching) resetSearch(); else if (zoomed) unzoom();
    }
  });
})();
)JS";

template <typename... Args>
void add(std::string& buf, fmt::format_string<Args...> format, Args&&... args) {
    fmt::format_to(std::back_inserter(buf), format, std::forward<Args>(args)...);
}

struct Placed {
    NodeId node;
    std::uint64_t start;  // in samples, from the left edge of the root
};

// Text shortened to `chars` characters with "..", and its whole (up to a bound) in a
// <title> child when it was cut.
void addShortened(std::string& buf, std::string_view safe, std::size_t chars) {
    if (codepointCount(safe) <= chars) {
        appendEscaped(buf, safe);
        return;
    }
    appendEscaped(buf, firstCodepoints(safe, chars - 2));
    buf += "..<title>";
    appendEscaped(buf, firstCodepoints(safe, kMaxTooltipChars));
    buf += "</title>";
}

}  // namespace

std::string flameGraphXmlText(std::string_view raw) {
    return escaped(svgSafeText(raw));
}

void writeFlameGraphSvg(FlameGraphFrames& frames, const FlameGraphPage& page, std::ostream& out) {
    const StackTrie& trie = frames.trie();
    const std::uint64_t total = trie.totalSamples();
    static const std::string kAll = "all";
    auto labelOf = [&](NodeId id) -> const std::string& {
        return id == kRootNode ? kAll : frames.label(trie.node(id).frame);
    };

    // Which nodes are drawn, and where: an explicit stack, never recursion (stacks can be
    // thousands of frames deep). Children sorted by label, so the picture does not depend
    // on the order samples arrived in.
    std::vector<Placed> placed;
    std::uint32_t maxDepth = 0;
    if (total > 0) {
        const double pxPerSample = kFramesWidth / static_cast<double>(total);
        std::vector<Placed> pending{{kRootNode, 0}};
        std::vector<NodeId> children;
        while (!pending.empty()) {
            const Placed p = pending.back();
            pending.pop_back();
            placed.push_back(p);
            maxDepth = std::max(maxDepth, trie.node(p.node).depth);
            children.clear();
            trie.forEachChild(p.node, [&](NodeId c) {
                if (static_cast<double>(trie.node(c).total) * pxPerSample >= kMinFrameWidth) children.push_back(c);
            });
            std::sort(children.begin(), children.end(), [&](NodeId a, NodeId b) {
                const int cmp = labelOf(a).compare(labelOf(b));
                return cmp != 0 ? cmp < 0 : trie.node(a).frame < trie.node(b).frame;
            });
            std::uint64_t offset = p.start;
            const std::size_t first = pending.size();
            for (const NodeId c : children) {
                pending.push_back({c, offset});
                offset += trie.node(c).total;
            }
            std::reverse(pending.begin() + static_cast<std::ptrdiff_t>(first), pending.end());  // visit in order
        }
    }

    const double framesBottom = kFramesTop + (maxDepth + 1) * kFrameHeight;
    const double notesHeight = page.notes.empty() ? 0 : static_cast<double>(page.notes.size()) * kFrameHeight + 8;
    const double height = framesBottom + notesHeight + kBottomPad;

    std::string buf;
    buf.reserve(1 << 16);
    auto flush = [&] {
        out.write(buf.data(), static_cast<std::streamsize>(buf.size()));
        buf.clear();
    };

    add(buf, "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\n");
    add(buf,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"{0:g}\" height=\"{1:g}\" "
        "viewBox=\"0 0 {0:g} {1:g}\">\n",
        kImageWidth, height);
    add(buf, "<style type=\"text/css\"><![CDATA[{}]]></style>\n", kStyle);
    add(buf,
        "<defs><linearGradient id=\"bg\" x1=\"0\" y1=\"0\" x2=\"0\" y2=\"1\">"
        "<stop offset=\"0\" stop-color=\"#f4f4f4\"/><stop offset=\"1\" "
        "stop-color=\"#e6e6f2\"/></linearGradient></defs>\n");
    add(buf, "<rect x=\"0\" y=\"0\" width=\"{:g}\" height=\"{:g}\" fill=\"url(#bg)\"/>\n", kImageWidth, height);
    add(buf, "<text id=\"title\" x=\"{:g}\" y=\"24\">{}</text>\n", kImageWidth / 2, escaped(page.title));
    add(buf, "<text id=\"subtitle\" x=\"{:g}\" y=\"44\">", kImageWidth / 2);
    addShortened(buf, page.subtitle, kMaxLineChars);
    buf += "</text>\n";
    add(buf, "<text id=\"unzoom\" class=\"btn\" x=\"{:g}\" y=\"64\" visibility=\"hidden\">Reset Zoom</text>\n",
        kSidePad);
    add(buf, "<text id=\"search\" class=\"btn\" x=\"{:g}\" y=\"64\" text-anchor=\"end\">Search</text>\n",
        kImageWidth - kSidePad);
    add(buf,
        "<text id=\"resetsearch\" class=\"btn\" x=\"{:g}\" y=\"64\" text-anchor=\"end\" visibility=\"hidden\">Reset "
        "Search</text>\n",
        kImageWidth - kSidePad - 70);
    add(buf, "<text id=\"details\" x=\"{:g}\" y=\"{:g}\"> </text>\n", kSidePad, height - 10);
    add(buf, "<text id=\"matched\" x=\"{:g}\" y=\"{:g}\"> </text>\n", kImageWidth - kSidePad, height - 10);
    if (total == 0) {
        add(buf, "<text x=\"{:g}\" y=\"{:g}\" text-anchor=\"middle\">No samples</text>\n", kImageWidth / 2,
            kFramesTop + 12);
    }
    for (std::size_t i = 0; i < page.notes.size(); ++i) {
        add(buf, "<text class=\"note\" x=\"{:g}\" y=\"{:g}\">", kSidePad,
            framesBottom + static_cast<double>(i + 1) * kFrameHeight);
        addShortened(buf, page.notes[i], kMaxLineChars);
        buf += "</text>\n";
        if (buf.size() > (1 << 16)) flush();
    }
    add(buf,
        "<g id=\"frames\" data-total=\"{}\" data-x=\"{:g}\" data-width=\"{:g}\" data-charw=\"{:g}\" data-top=\"{:g}\" "
        "data-fh=\"{:g}\" data-tdy=\"{:g}\" data-maxdepth=\"{}\">\n",
        total, kSidePad, kFramesWidth, kCharWidth, kFramesTop, kFrameHeight, kTextDy, maxDepth);

    for (const Placed& p : placed) {
        const StackTrie::Node& node = trie.node(p.node);
        const std::string& label = labelOf(p.node);
        const double x = kSidePad + kFramesWidth * static_cast<double>(p.start) / static_cast<double>(total);
        const double w = kFramesWidth * static_cast<double>(node.total) / static_cast<double>(total);
        const double y = kFramesTop + (maxDepth - node.depth) * kFrameHeight;
        add(buf, "<g data-s=\"{}\" data-n=\"{}\"{}><title>", p.start, node.total, frames.attributes(p.node));
        appendEscaped(buf, label);
        buf += "&#10;";
        for (const char c : frames.details(p.node)) {
            if (c == '\n') {
                buf += "&#10;";
            } else {
                appendEscaped(buf, std::string_view(&c, 1));
            }
        }
        add(buf, "</title><rect x=\"{:.2f}\" y=\"{:g}\" width=\"{:.2f}\" height=\"{:g}\" fill=\"{}\"/>", x, y, w,
            kRectHeight, frames.fill(p.node));
        const std::string fitted = fittedLabel(label, w);
        if (!fitted.empty()) {
            add(buf, "<text x=\"{:.2f}\" y=\"{:g}\">", x + 3, y + kTextDy);
            appendEscaped(buf, fitted);
            buf += "</text>";
        }
        buf += "</g>\n";
        if (buf.size() > (1 << 16)) flush();
    }
    add(buf, "</g>\n<script type=\"text/ecmascript\"><![CDATA[{}]]></script>\n</svg>\n", kScript);
    flush();
}

}  // namespace pyspy
