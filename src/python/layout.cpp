#include "pyspy/python/layout.h"

#include <tuple>

namespace pyspy {

const PyLayout* findGeneratedLayout(int major, int minor, bool freeThreaded) {
    for (const auto& layout : generatedLayouts()) {
        if (layout.major == major && layout.minor == minor && (layout.free_threaded != 0) == freeThreaded) {
            return &layout;
        }
    }
    return nullptr;
}

const PyLayout* newestGeneratedLayout(bool freeThreaded) {
    const PyLayout* newest = nullptr;
    for (const auto& layout : generatedLayouts()) {
        if ((layout.free_threaded != 0) != freeThreaded) continue;
        if (newest == nullptr || std::tie(layout.major, layout.minor) > std::tie(newest->major, newest->minor)) {
            newest = &layout;
        }
    }
    return newest;
}

}  // namespace pyspy
