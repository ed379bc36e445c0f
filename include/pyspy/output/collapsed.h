// The "raw" collapsed-stack format (flamegraph.pl, inferno, speedscope, py-spy --format
// raw): one line per distinct stack, `frame;frame;...;frame COUNT`, outermost first.
// A Python frame reads `function (file:line)` (`function (file)` without a line); the
// thread frame leads each stack only with showThreads. Every line matches
// `^(.+) (\d+)$` and splits into non-empty frames on ';' (docs/formats.md).
#pragma once

#include <ostream>
#include <string>
#include <string_view>

#include "pyspy/output/export_options.h"
#include "pyspy/sampling/profile.h"

namespace pyspy {

void writeCollapsed(const RecordedProfile& profile, const ExportOptions& options, std::ostream& out);

// The text of one frame in a collapsed line: ';', control characters and bytes that
// are not UTF-8 cannot appear in it, and it never ends in whitespace and a number.
std::string collapsedFrameText(const FrameKey& frame, const ExportOptions& options);

// A frame's whole label (e.g. a frame read back by profile_reader.h) as one frame of a
// collapsed line, by the same rules ("?" when empty).
std::string collapsedText(std::string_view label);

}  // namespace pyspy
