// The layout of `pyspy-cpp top`: the header, the thread-state line and the table as
// lines of text with a style each. The terminal screen (terminal.h) draws them with
// attributes; without a terminal they are printed as they are, one snapshot per
// refresh (like `top -b`).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "pyspy/ui/top_model.h"

namespace pyspy {

struct TopHeader {
    pid_t pid = 0;
    std::string commandLine;
    std::string pythonVersion;
    bool freeThreaded = false;  // no GIL: the GIL gauge gives way to a note saying so
    double rateHz = 100;
    std::uint64_t samples = 0;  // sampler ticks so far
    std::uint64_t errors = 0;
    double elapsedSeconds = 0;  // since sampling started
    std::string status;         // shown on its own line when not empty (paused, exited...)
};

enum class TopStyle { Title, Info, GaugeGood, GaugeWarm, GaugeHot, Status, TableHeader, Row, HotRow, Help };

struct TopLine {
    std::string text;
    TopStyle style = TopStyle::Info;
};

struct TopRenderOptions {
    std::size_t width = 0;   // columns; 0: no limit (lines are never cut)
    std::size_t height = 0;  // lines; 0: no limit (every row)
    bool fullFilenames = false;
};

// Header then table, at most `height` lines, none wider than `width` columns.
std::vector<TopLine> renderTop(const TopSnapshot& snapshot, const TopHeader& header, const TopViewOptions& view,
                               const TopRenderOptions& options);

// The per-process table (view.perProcess, and under `top -s` without a terminal):
// its header line and one row per process, sorted by %CPU (buildTopProcessTable):
// %CPU, %GIL, Samples, PID, Command (cut or padded to a column), then the average
// threads per sample in each state (running, gil, lock, io, sleep; child and other
// together as "other").
std::vector<TopLine> renderTopProcesses(const TopSnapshot& snapshot, const TopViewOptions& view,
                                        const TopRenderOptions& options);

// The key list (the `?` screen).
std::vector<TopLine> renderTopHelp(const TopRenderOptions& options);

// "name (filename:line)" in at most `width` columns: the filename is cut from the
// left ("...ckages/x/y.py"), then dropped; the function name is never cut (a name
// wider than `width` is returned whole: the screen clips it at its edge).
std::string fitFunction(const std::string& name, const std::string& filename, int line, std::size_t width);

// Columns a UTF-8 string takes (one per code point; good enough for names and paths).
std::size_t displayWidth(const std::string& text);
// The first `width` columns of a UTF-8 string.
std::string clipToWidth(const std::string& text, std::size_t width);

// "0.45s", "12.3s", "1234s".
std::string formatSeconds(double seconds);

const char* topColumnTitle(TopColumn column);

// What a view of the function table shows (TopViewOptions::state): "functions where
// threads wait on I/O".
const char* topViewDescription(ThreadState view);

}  // namespace pyspy
