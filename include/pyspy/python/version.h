#pragma once

#include <compare>
#include <optional>
#include <string>
#include <string_view>

namespace pyspy {

struct PythonVersion {
    int major = 0;
    int minor = 0;
    int micro = 0;

    auto operator<=>(const PythonVersion&) const = default;
    bool atLeast(int maj, int min) const { return major > maj || (major == maj && minor >= min); }
    std::string toString() const;  // "3.11.7"
};

// Parses "3.11.7", "3.11.7+", "3.11.0rc1", "2.7.18 (default, ...)" ...: the first X.Y[.Z].
std::optional<PythonVersion> parsePythonVersion(std::string_view text);

// Decodes a PY_VERSION_HEX value (Py_Version, _Py_DebugOffsets.version).
PythonVersion versionFromHex(std::uint32_t hex);

}  // namespace pyspy
