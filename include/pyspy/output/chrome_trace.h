// The Trace Event Format (chrome://tracing, Perfetto, speedscope) as one JSON object:
// process_name / thread_name metadata, then per thread the timeline as nested
// complete ("X") events, one per frame for as long as it stays on the stack across
// consecutive spans. Times in microseconds since the first sample.
#pragma once

#include <cstddef>
#include <ostream>

#include "pyspy/output/export_options.h"
#include "pyspy/sampling/profile.h"

namespace pyspy {

// Above this many frame events only the longest are kept (a parent always outlasts
// its children, so the kept events still nest); the document says how many were dropped.
inline constexpr std::size_t kChromeTraceMaxEvents = 1'000'000;

void writeChromeTrace(const RecordedProfile& profile, const ExportOptions& options, std::ostream& out,
                      std::size_t maxEvents = kChromeTraceMaxEvents);

}  // namespace pyspy
