#include "pyspy/output/collapsed.h"

#include <cstddef>
#include <string_view>
#include <vector>

#include "pyspy/output/dump.h"

namespace pyspy {

namespace {

constexpr std::string_view kReplacement = "\xef\xbf\xbd";  // U+FFFD

// The length of the well-formed UTF-8 sequence at text[i], or 0 when there is none
// (overlong forms, surrogates and code points above U+10FFFF are not well formed).
std::size_t utf8SequenceLength(std::string_view text, std::size_t i) {
    const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(text[k]); };
    const unsigned char c = byte(i);
    if (c < 0x80) return 1;
    std::size_t length = 0;
    unsigned char low = 0x80, high = 0xbf;  // the range of the second byte
    if (c >= 0xc2 && c <= 0xdf) {
        length = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        length = 3;
        if (c == 0xe0) low = 0xa0;
        if (c == 0xed) high = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        length = 4;
        if (c == 0xf0) low = 0x90;
        if (c == 0xf4) high = 0x8f;
    } else {
        return 0;
    }
    if (i + length > text.size()) return 0;
    if (byte(i + 1) < low || byte(i + 1) > high) return 0;
    for (std::size_t k = 2; k < length; ++k) {
        if (byte(i + k) < 0x80 || byte(i + k) > 0xbf) return 0;
    }
    return length;
}

// Appends `text` with what would break a collapsed line escaped: ';' and control
// characters become \xNN, bytes that are not UTF-8 become U+FFFD.
void appendEscaped(std::string& out, std::string_view text) {
    static constexpr char kHex[] = "0123456789abcdef";
    for (std::size_t i = 0; i < text.size();) {
        const auto c = static_cast<unsigned char>(text[i]);
        if (c < 0x20 || c == 0x7f || c == ';') {
            out += "\\x";
            out += kHex[c >> 4];
            out += kHex[c & 0xf];
            ++i;
        } else if (const std::size_t length = utf8SequenceLength(text, i); length == 0) {
            out += kReplacement;
            ++i;
        } else {
            out.append(text.substr(i, length));
            i += length;
        }
    }
}

bool isDigit(char c) {
    return c >= '0' && c <= '9';
}

// A frame ending in " 123" or " 1.5" would make the line look like one of
// flamegraph.pl's two-count (differential) lines: the space becomes '_'.
void guardTrailingNumber(std::string& text) {
    std::size_t end = text.size();
    std::size_t i = end;
    while (i > 0 && isDigit(text[i - 1])) --i;
    if (i > 0 && text[i - 1] == '.') {  // a decimal part: digits before the dot too
        const std::size_t dot = i - 1;
        i = dot;
        while (i > 0 && isDigit(text[i - 1])) --i;
        if (i == dot) return;  // ".5" is not a number to flamegraph.pl
    } else if (i == end) {
        return;  // no trailing digits
    }
    if (i > 0 && text[i - 1] == ' ') text[i - 1] = '_';
}

}  // namespace

std::string collapsedText(std::string_view label) {
    std::string text;
    appendEscaped(text, label.empty() ? std::string_view("?") : label);
    guardTrailingNumber(text);
    return text;
}

std::string collapsedFrameText(const FrameKey& frame, const ExportOptions& options) {
    std::string text;
    appendEscaped(text, frame.name.empty() ? std::string_view("?") : std::string_view(frame.name));
    if (frame.kind != FrameKind::Thread && !frame.filename.empty()) {
        text += " (";
        appendEscaped(text, options.fullFilenames ? frame.filename : shortFilename(frame.filename));
        if (options.showLines && frame.line != 0) {
            text += ':';
            text += std::to_string(frame.line);
        }
        text += ')';
    }
    guardTrailingNumber(text);
    return text;
}

void writeCollapsed(const RecordedProfile& profile, const ExportOptions& options, std::ostream& out) {
    const StackTrie merged = options.showThreads ? StackTrie{} : profile.trie.withoutFirstLevel();
    const StackTrie& trie = options.showThreads ? profile.trie : merged;

    std::vector<std::string> texts(profile.frames.size());
    std::vector<bool> known(profile.frames.size(), false);
    std::string line;
    trie.forEachStack([&](std::span<const FrameId> stack, std::uint64_t count) {
        line.clear();
        for (const FrameId id : stack) {
            if (!line.empty()) line += ';';
            if (id >= texts.size()) {  // not in the table: still one parseable frame
                line += "?";
                continue;
            }
            if (!known[id]) {
                texts[id] = collapsedFrameText(profile.frames[id], options);
                known[id] = true;
            }
            line += texts[id];
        }
        // A sample with no frames (a thread seen without Python frames, threads merged).
        if (stack.empty()) line += "(no frames)";
        line += ' ';
        line += std::to_string(count);
        line += '\n';
        out.write(line.data(), static_cast<std::streamsize>(line.size()));
    });
}

}  // namespace pyspy
