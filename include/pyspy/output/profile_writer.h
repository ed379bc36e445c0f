// The profile formats `record` writes, by name, and writing one atomically.
#pragma once

#include <optional>
#include <ostream>
#include <string>
#include <string_view>

#include "pyspy/output/export_options.h"
#include "pyspy/sampling/profile.h"

namespace pyspy {

enum class ProfileFormat { FlameGraph, Speedscope, Raw, ChromeTrace, Pprof };

std::optional<ProfileFormat> parseProfileFormat(std::string_view name);  // "flamegraph", "speedscope", ...
const char* formatName(ProfileFormat format);
const char* defaultExtension(ProfileFormat format);  // "svg", "speedscope.json", "txt", "trace.json", "pb.gz"
bool needsTimeline(ProfileFormat format);             // chrometrace draws samples over time

void writeProfile(ProfileFormat format, const RecordedProfile& profile, const ExportOptions& options,
                  std::ostream& out);
// Writes `path` completely or not at all (AtomicFile). Throws FatalError(Io).
void writeProfileFile(ProfileFormat format, const RecordedProfile& profile, const ExportOptions& options,
                      const std::string& path);

}  // namespace pyspy
