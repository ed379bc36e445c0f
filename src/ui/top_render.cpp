#include "pyspy/ui/top_render.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "pyspy/output/dump.h"

namespace pyspy {

namespace {

constexpr std::size_t kGaugeWidth = 20;
constexpr std::size_t kThreadColumn = 20;
constexpr std::size_t kProcessColumn = 8;
constexpr std::size_t kStateColumn = 7;         // "running"
constexpr std::size_t kMaxCommandColumn = 100;  // per-process table without a width
constexpr std::size_t kMinCommandColumn = 16;

// The per-process table's state columns: one per state, child and other together.
struct ProcessStateColumn {
    const char* title;
    std::vector<ThreadState> states;
};
const std::vector<ProcessStateColumn> kProcessStateColumns = {
    {"running", {ThreadState::Running}}, {"gil", {ThreadState::Gil}},
    {"lock", {ThreadState::Lock}},       {"io", {ThreadState::Io}},
    {"sleep", {ThreadState::Sleep}},     {"other", {ThreadState::Child, ThreadState::Other}},
};

// "Threads: 1.0 running, 0.3 gil, 2.0 lock (average per sample)": running always, then
// each other state whose average shows (0.05 or more), in the enum's order.
std::string threadStatesLine(const TopWindow& window) {
    std::string text = fmt::format("Threads: {:.1f} running", window.statePerTick(ThreadState::Running));
    for (std::size_t i = 1; i < kThreadStateCount; ++i) {
        const auto state = static_cast<ThreadState>(i);
        const double threads = window.statePerTick(state);
        if (threads >= 0.05) text += fmt::format(", {:.1f} {}", threads, stateName(state));
    }
    return text + " (average per sample)";
}

bool continuation(char c) {
    return (static_cast<unsigned char>(c) & 0xC0) == 0x80;
}

std::string gauge(double share) {
    share = std::clamp(share, 0.0, 1.0);
    const auto filled = static_cast<std::size_t>(std::lround(share * double(kGaugeWidth)));
    return "[" + std::string(filled, '#') + std::string(kGaugeWidth - filled, '-') + "]";
}

TopStyle gaugeStyle(double share) {
    if (share >= 0.9) return TopStyle::GaugeHot;
    if (share >= 0.5) return TopStyle::GaugeWarm;
    return TopStyle::GaugeGood;
}

// The last `width` columns of a UTF-8 string.
std::string lastColumns(const std::string& text, std::size_t width) {
    std::size_t cols = 0;
    std::size_t pos = text.size();
    while (pos > 0 && cols < width) {
        --pos;
        while (pos > 0 && continuation(text[pos])) --pos;
        ++cols;
    }
    return text.substr(pos);
}

class Lines {
  public:
    explicit Lines(const TopRenderOptions& options) : options_(options) {}
    bool full() const { return options_.height != 0 && lines_.size() >= options_.height; }
    void add(std::string text, TopStyle style) {
        if (full()) return;
        if (options_.width != 0) text = clipToWidth(text, options_.width);
        lines_.push_back(TopLine{std::move(text), style});
    }
    std::vector<TopLine> take() { return std::move(lines_); }

  private:
    const TopRenderOptions& options_;
    std::vector<TopLine> lines_;
};

}  // namespace

std::size_t displayWidth(const std::string& text) {
    std::size_t n = 0;
    for (char c : text) {
        if (!continuation(c)) ++n;
    }
    return n;
}

std::string clipToWidth(const std::string& text, std::size_t width) {
    std::size_t cols = 0;
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (continuation(text[i])) continue;
        if (cols == width) return text.substr(0, i);
        ++cols;
    }
    return text;
}

std::string formatSeconds(double seconds) {
    if (seconds < 100) return fmt::format("{:.2f}s", seconds);
    if (seconds < 1000) return fmt::format("{:.1f}s", seconds);
    return fmt::format("{:.0f}s", seconds);
}

const char* topViewDescription(ThreadState view) {
    switch (view) {
        case ThreadState::Running:
            return "functions of running threads";
        case ThreadState::Gil:
            return "functions where threads wait for the GIL";
        case ThreadState::Lock:
            return "functions where threads wait on a lock, condition, event or queue";
        case ThreadState::Io:
            return "functions where threads wait on I/O";
        case ThreadState::Sleep:
            return "functions where threads sleep";
        case ThreadState::Child:
            return "functions where threads wait for a child process";
        case ThreadState::Other:
            return "functions where threads wait in another system call";
    }
    return "?";
}

const char* topColumnTitle(TopColumn column) {
    switch (column) {
        case TopColumn::Own:
            return "%Own";
        case TopColumn::Total:
            return "%Total";
        case TopColumn::OwnTime:
            return "OwnTime";
        case TopColumn::TotalTime:
            return "TotalTime";
    }
    return "?";
}

std::string fitFunction(const std::string& name, const std::string& filename, int line, std::size_t width) {
    const std::string suffix = line > 0 ? fmt::format(":{})", line) : std::string(")");
    if (filename.empty()) return name;
    const std::string whole = name + " (" + filename + suffix;
    if (displayWidth(whole) <= width) return whole;
    const std::size_t fixed = displayWidth(name) + 2 + displayWidth(suffix) + 3;  // name, " (", suffix, "..."
    if (fixed < width) return name + " (..." + lastColumns(filename, width - fixed) + suffix;
    const std::string bare = name + " (..." + suffix;
    if (displayWidth(bare) <= width) return bare;
    return name;
}

std::vector<TopLine> renderTop(const TopSnapshot& snapshot, const TopHeader& header, const TopViewOptions& view,
                               const TopRenderOptions& options) {
    Lines out(options);
    const TopWindow& window = view.cumulative ? snapshot.cumulative : snapshot.interval;
    const double windowSeconds = double(window.ticks) * window.secondsPerTick(snapshot.rateHz);

    out.add(fmt::format("Process {}: {}", header.pid, terminalSafe(header.commandLine)), TopStyle::Title);
    const bool processes = snapshot.processes.size() > 1;
    const std::string processCount =
        processes ? fmt::format(" | {} processes", snapshot.processes.size()) : std::string();
    // Empty under a root that is not Python until one of its descendants is sampled.
    const std::string python =
        header.pythonVersion.empty() ? std::string("no Python process yet") : "Python v" + header.pythonVersion;
    out.add(fmt::format("{} | {} Hz | {} samples, {} errors | {} threads{} | {:.1f} s", python, header.rateHz,
                        header.samples, header.errors, snapshot.liveThreads, processCount, header.elapsedSeconds),
            TopStyle::Info);
    const double gil = window.gilShare(), active = window.activeShare();
    if (header.freeThreaded) {
        // No GIL to gauge: threads run Python code at the same time; only their OS state counts.
        out.add(fmt::format("free-threaded (no GIL)   Active: {:5.1f}% {}", 100 * active, gauge(active)),
                TopStyle::GaugeGood);
    } else {
        // One line, two gauges; the style follows the GIL (contention is what top is for).
        out.add(
            fmt::format("GIL: {:5.1f}% {}   Active: {:5.1f}% {}", 100 * gil, gauge(gil), 100 * active, gauge(active)),
            gaugeStyle(gil));
    }
    out.add(threadStatesLine(window), TopStyle::Info);
    out.add(fmt::format("Window: {} ({:.1f} s) | sort: {} {} | {} | {} | ? for keys",
                        view.cumulative ? "since start" : "last refresh", windowSeconds, topColumnTitle(view.sort),
                        view.reverse ? "ascending" : "descending", view.lineNumbers ? "by line" : "by function",
                        view.perProcess  ? "per process"
                        : view.perThread ? "per thread"
                                         : "all threads"),
            TopStyle::Info);
    out.add(fmt::format("View: {} ({}) | w: next view", stateName(view.state), topViewDescription(view.state)),
            TopStyle::Info);
    out.add(header.status, header.status.empty() ? TopStyle::Info : TopStyle::Status);
    if (view.perProcess) {
        for (TopLine& line : renderTopProcesses(snapshot, view, options)) out.add(std::move(line.text), line.style);
        return out.take();
    }

    std::string head = fmt::format("{:>7} {:>7} {:>8} {:>9}  ", "%Own", "%Total", "OwnTime", "TotalTime");
    if (processes) head += fmt::format("{:<{}} ", "Process", kProcessColumn);
    if (view.perThread) head += fmt::format("{:<{}} ", "Thread", kThreadColumn);
    const std::size_t prefix = head.size();
    head += view.lineNumbers ? "Function (filename:line)" : "Function (filename)";
    out.add(head, TopStyle::TableHeader);

    const std::vector<TopRow> rows = buildTopTable(snapshot, view);
    if (rows.empty()) {
        out.add(window.ticks == 0 ? "  (no samples yet)"
                : view.state == ThreadState::Running
                    ? "  (no Python frames in the window)"
                    : fmt::format("  (no thread in state {} in the window)", stateName(view.state)),
                TopStyle::Row);
    }
    const std::size_t functionWidth =
        options.width == 0 ? std::string::npos : (options.width > prefix ? options.width - prefix : 0);
    for (const TopRow& row : rows) {
        if (out.full()) break;
        std::string text = fmt::format("{:>6.1f}% {:>6.1f}% {:>8} {:>9}  ", row.ownPercent, row.totalPercent,
                                       formatSeconds(row.ownSeconds), formatSeconds(row.totalSeconds));
        if (processes) {
            // Which process: its pid, or how many ran it.
            const std::string where = row.process && *row.process < snapshot.processes.size()
                                          ? std::to_string(snapshot.processes[*row.process].pid)
                                          : fmt::format("{} procs", row.processCount);
            text += fmt::format("{:<{}} ", where, kProcessColumn);
        }
        if (row.thread) {
            std::string label = *row.thread < snapshot.threads.size()
                                    ? terminalSafe(topThreadLabel(snapshot.threads[*row.thread]))
                                    : std::to_string(*row.thread);
            label = clipToWidth(label, kThreadColumn);
            text += label + std::string(kThreadColumn - displayWidth(label), ' ') + " ";
        }
        const TopFunction& f = *row.function;
        const std::string filename = options.fullFilenames ? f.filename : shortFilename(f.filename);
        text += fitFunction(terminalSafe(f.name), terminalSafe(filename), view.lineNumbers ? f.line : 0, functionWidth);
        out.add(std::move(text), TopStyle::Row);
    }
    return out.take();
}

std::vector<TopLine> renderTopProcesses(const TopSnapshot& snapshot, const TopViewOptions& view,
                                        const TopRenderOptions& options) {
    Lines out(options);
    // The state columns follow the command, cut or padded to fit: a reader of the
    // table finds %CPU, %GIL, Samples, PID and Command where they always were. Without
    // a width (text mode), the command column is as wide as the longest (at most 100).
    const std::vector<TopProcessRow> rows = buildTopProcessTable(snapshot, view);
    std::vector<std::string> commands;
    std::size_t longest = displayWidth("Command");
    for (const TopProcessRow& row : rows) {
        commands.push_back((row.process->ended ? "(exited) " : "") + terminalSafe(row.process->commandLine));
        longest = std::max(longest, displayWidth(commands.back()));
    }
    constexpr std::size_t kFixed = 7 + 1 + 7 + 1 + 8 + 1 + 8 + 2;  // up to the command
    const std::size_t statesWidth = 2 + kProcessStateColumns.size() * (kStateColumn + 1);
    const std::size_t commandWidth =
        options.width == 0 ? std::min(longest, kMaxCommandColumn)
                           : std::max(kMinCommandColumn, options.width - std::min(options.width, kFixed + statesWidth));
    const auto fitted = [commandWidth](const std::string& text) {
        const std::string clipped = clipToWidth(text, commandWidth);
        return clipped + std::string(commandWidth - displayWidth(clipped), ' ');
    };
    std::string head = fmt::format("{:>7} {:>7} {:>8} {:>8}  {} ", "%CPU", "%GIL", "Samples", "PID", fitted("Command"));
    for (const auto& column : kProcessStateColumns) head += fmt::format(" {:>{}}", column.title, kStateColumn);
    out.add(std::move(head), TopStyle::TableHeader);
    for (std::size_t i = 0; i < rows.size() && !out.full(); ++i) {
        const TopProcessRow& row = rows[i];
        const std::string cpu = row.cpuPercent ? fmt::format("{:.1f}%", *row.cpuPercent) : std::string("-");
        std::string text = fmt::format("{:>7} {:>6.1f}% {:>8} {:>8}  {} ", cpu, row.gilPercent, row.samples,
                                       row.process->pid, fitted(commands[i]));
        for (const auto& column : kProcessStateColumns) {
            double threads = 0;
            for (ThreadState state : column.states) threads += row.perTick(state);
            text += fmt::format(" {:>{}.1f}", threads, kStateColumn);
        }
        out.add(std::move(text), TopStyle::Row);
    }
    return out.take();
}

std::vector<TopLine> renderTopHelp(const TopRenderOptions& options) {
    Lines out(options);
    out.add("pyspy-cpp top: keys", TopStyle::Title);
    out.add("", TopStyle::Help);
    const char* keys[][2] = {
        {"1", "sort by %Own (time in the function itself)"},
        {"2", "sort by %Total (time in the function and what it calls)"},
        {"3", "sort by OwnTime (since the start)"},
        {"4", "sort by TotalTime (since the start)"},
        {"r", "reverse the sort order"},
        {"l", "toggle line numbers (off: one row per function)"},
        {"c", "toggle the window: last refresh / since the start"},
        {"t", "toggle the per-thread breakdown"},
        {"w", "next view: functions running, then where threads wait (gil, lock, io, sleep, child, other)"},
        {"W", "previous view"},
        {"P", "toggle the per-process view (%CPU, %GIL, samples and thread states of each process)"},
        {"p", "pause / resume the display (sampling continues)"},
        {"?", "this help (any key returns)"},
        {"q", "quit (also Ctrl-C)"},
    };
    for (const auto& k : keys) out.add(fmt::format("  {}   {}", k[0], k[1]), TopStyle::Help);
    out.add("", TopStyle::Help);
    out.add("GIL: share of samples in which a thread held the GIL. Active: share of thread", TopStyle::Help);
    out.add("samples running. Threads: average threads per sample in each state: running,", TopStyle::Help);
    out.add("gil (waiting for the GIL), lock (a lock, condition, event or queue), io (a read,", TopStyle::Help);
    out.add("recv, accept, poll... on a descriptor), sleep, child (waiting for a child", TopStyle::Help);
    out.add("process), other. %CPU (per process): utime + stime from /proc/PID/stat over the", TopStyle::Help);
    out.add("window; 100% is one core; its state columns: threads per sample (other: child", TopStyle::Help);
    out.add("and other).", TopStyle::Help);
    return out.take();
}

}  // namespace pyspy
