#include "pyspy/native/native_frame.h"

namespace pyspy {

std::string moduleBaseName(const std::string& modulePath) {
    if (modulePath.empty()) return "?";
    const auto slash = modulePath.rfind('/');
    return slash == std::string::npos ? modulePath : modulePath.substr(slash + 1);
}

}  // namespace pyspy
