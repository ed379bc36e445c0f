#include "pyspy/python/version.h"

#include <cctype>
#include <cstdint>

#include <fmt/format.h>

namespace pyspy {

std::string PythonVersion::toString() const { return fmt::format("{}.{}.{}", major, minor, micro); }

std::optional<PythonVersion> parsePythonVersion(std::string_view text) {
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (!std::isdigit(static_cast<unsigned char>(text[i]))) continue;
        if (i > 0 && std::isdigit(static_cast<unsigned char>(text[i - 1]))) continue;
        int parts[3] = {0, 0, 0};
        int count = 0;
        std::size_t j = i;
        while (count < 3 && j < text.size() && std::isdigit(static_cast<unsigned char>(text[j]))) {
            int value = 0;
            int digits = 0;
            while (j < text.size() && std::isdigit(static_cast<unsigned char>(text[j])) && digits < 4) {
                value = value * 10 + (text[j] - '0');
                ++j;
                ++digits;
            }
            parts[count++] = value;
            if (j + 1 < text.size() && text[j] == '.' && std::isdigit(static_cast<unsigned char>(text[j + 1]))) {
                ++j;
            } else {
                break;
            }
        }
        if (count >= 2 && (parts[0] == 2 || parts[0] == 3)) return PythonVersion{parts[0], parts[1], parts[2]};
    }
    return std::nullopt;
}

PythonVersion versionFromHex(std::uint32_t hex) {
    return PythonVersion{static_cast<int>((hex >> 24) & 0xff), static_cast<int>((hex >> 16) & 0xff),
                         static_cast<int>((hex >> 8) & 0xff)};
}

}  // namespace pyspy
