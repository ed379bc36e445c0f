// Options every profile exporter (flamegraph, speedscope, raw, chrometrace, pprof) takes.
#pragma once

#include <string>

namespace pyspy {

struct ExportOptions {
    bool showThreads = false;    // -t: a root frame per thread (id and name)
    bool fullFilenames = false;  // --full-filenames: absolute paths, not shortFilename()
    bool showLines = true;       // false with --nolineno (frames then carry line 0 anyway)
    std::string title;           // e.g. "pyspy-cpp record: python app.py (pid 123)"
};

}  // namespace pyspy
