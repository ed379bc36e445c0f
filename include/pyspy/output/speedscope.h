// The speedscope file format (https://www.speedscope.app/file-format-schema.json):
// one "sampled" profile per thread, named after its thread frame's label; frames are
// shared; each distinct stack is one sample (outermost frame first) weighted by its
// number of samples (unit "none"). Format notes in docs/formats.md.
#pragma once

#include <ostream>

#include "pyspy/output/export_options.h"
#include "pyspy/sampling/profile.h"

namespace pyspy {

void writeSpeedscope(const RecordedProfile& profile, const ExportOptions& options, std::ostream& out);

}  // namespace pyspy
