#include "pyspy/python/layout.h"

namespace pyspy {

const PyLayout* findGeneratedLayout(int major, int minor) {
    for (const auto& layout : generatedLayouts()) {
        if (layout.major == major && layout.minor == minor) return &layout;
    }
    return nullptr;
}

}  // namespace pyspy
