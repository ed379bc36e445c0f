// PLACEHOLDER until scripts/gen_layouts.py writes this file.
#include "pyspy/python/layout.h"

namespace pyspy {
std::span<const PyLayout> generatedLayouts() { return {}; }
}  // namespace pyspy
