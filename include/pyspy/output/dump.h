// Formatting of `pyspy-cpp dump`: plain text (py-spy style) and one JSON document
// (schema in docs/dump-json.md).
#pragma once

#include <string>

#include "pyspy/python/stack.h"

namespace pyspy {

struct DumpFormatOptions {
    bool fullFilenames = false;  // otherwise shortened: see shortFilename
    bool locals = false;         // JSON: each frame gets "locals" and "locals_error" (text prints whatever was read)
};

std::string formatDumpText(const ProcessSnapshot& snapshot, const DumpFormatOptions& options);
std::string formatDumpJson(const ProcessSnapshot& snapshot, const DumpFormatOptions& options);

// "…/site-packages/requests/api.py" -> "requests/api.py"; "/usr/lib/python3.11/threading.py"
// -> "threading.py"; anything else -> its base name.
std::string shortFilename(const std::string& path);

// Makes a string from the target safe to print on a terminal: control characters
// (which could carry escape sequences) become \xNN.
std::string terminalSafe(const std::string& text);

}  // namespace pyspy
