// The flame graph exporter: one self-contained, interactive SVG (classic bottom-up
// layout, the root "all" frame at the bottom). Format notes in docs/formats.md.
//
// Every string from the target (function names, filenames, thread names, the command
// line) is treated as hostile: made valid UTF-8, control characters spelled out, then
// XML-escaped, and only ever written into text nodes that the embedded script reads
// from the DOM (never into the script itself).
#pragma once

#include <ostream>
#include <string>
#include <string_view>

#include "pyspy/output/export_options.h"
#include "pyspy/sampling/profile.h"

namespace pyspy {

void writeFlameGraph(const RecordedProfile& profile, const ExportOptions& options, std::ostream& out);

// What the flame graph does to a string from the target before writing it as XML
// character data: invalid UTF-8 (and U+FFFE/U+FFFF) becomes U+FFFD, control characters
// (C0, DEL, C1) become the text \xNN, and & < > " ' become entity references.
std::string flameGraphXmlText(std::string_view raw);

}  // namespace pyspy
