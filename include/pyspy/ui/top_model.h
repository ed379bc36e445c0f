// The model behind `pyspy-cpp top`: TopAggregator is the SampleSink that counts, per
// thread and per function, the samples of the last refresh interval and of the whole
// run; buildTopTable turns a snapshot of those counts into the sorted rows a view shows.
// Pure logic, no terminal: see top_render.h for the layout and terminal.h for ncurses.
//
// Under -s the aggregator is fed by one sampler per process (onProcessSample): rows
// are keyed by frame (name, file, line), so a function run in several processes is one
// row; each row also counts the processes it was seen in.
//
// Definitions (per window: the last interval or everything since the start):
//   ticks          sampler ticks in the window: one per sample of the whole process;
//                  with several processes, the ticks of the process sampled most often
//                  (each process has its own sampler at the same rate, so this is the
//                  number of sampling instants: a function busy in 3 workers shows 300%)
//   %Own  (row)    thread-samples whose innermost frame is the row's, per tick, x100
//                  (so a function run by two threads at once can show 200%, as top's CPU%)
//   %Total (row)   thread-samples with the row's frame anywhere on the stack, per tick
//   OwnTime/TotalTime  the same counts as seconds (count x seconds per tick), always
//                  since the start unless the view is cumulative anyway
//   GIL            share of ticks in which some thread held the GIL; with several
//                  processes, of all processes' ticks (the mean over processes)
//   Active         share of thread-samples in which the thread was running or held the GIL
//   states         thread-samples per tick in each ThreadState (process/wait_state.h:
//                  running, gil, lock, io, sleep, child, other), from the sampler's
//                  ThreadSample::state; a thread running per the OS (or holding the GIL)
//                  is running whatever its state says
//   tables         per view (TopViewOptions::state): the running view counts the
//                  thread-samples the filters keep (keepThread: running threads, with
//                  --idle every thread, with --gil the holder); each wait view counts
//                  the thread-samples in that state, whatever the filters
//   per process    its ticks (Samples), the share of them in which one of its threads
//                  held the GIL (%GIL), its thread-samples per tick in each state, and
//                  its CPU share (%CPU: utime + stime from
//                  /proc/PID/stat over the window's wall time, measured by TopCpuMeter;
//                  100% = one core). The sampler's "active" flag is not used for CPU: a
//                  thread waiting for a core is also in state R.
// The gauges and thread states count every thread.
#pragma once

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "pyspy/process/wait_state.h"
#include "pyspy/sampling/sampler.h"

namespace pyspy {

// Thread-samples per ThreadState, indexed by the state's value.
using TopStateCounts = std::array<std::uint64_t, kThreadStateCount>;

// The state a thread sample counts in: running when the OS says so (or it holds the
// GIL: ThreadSample::active), else the sampler's state.
ThreadState topSampleState(const ThreadSample& sample);

struct TopCounts {
    std::uint64_t own = 0;
    std::uint64_t total = 0;
};

// One process's counts in one window.
struct TopProcessCounts {
    std::uint64_t ticks = 0;
    std::uint64_t gilTicks = 0;
    TopStateCounts states{};             // its thread-samples per state
    double firstTime = 0, lastTime = 0;  // its sampler's clock
};

// The counts behind one view's rows. Keys: (thread index << 32) | id, where id is a
// FrameId (with lines) in `byLine` and a function id (name and filename) in `byFunction`.
struct TopTable {
    std::unordered_map<std::uint64_t, TopCounts> byLine;
    std::unordered_map<std::uint64_t, TopCounts> byFunction;
};

// Counts of one window.
struct TopWindow {
    std::uint64_t ticks = 0;             // of the process sampled most often (see above)
    std::uint64_t processTicks = 0;      // summed over processes
    std::uint64_t gilTicks = 0;          // process ticks in which some thread held the GIL
    std::uint64_t threadSamples = 0;     // every thread of every tick
    TopStateCounts states{};             // thread-samples per state (topSampleState)
    std::uint64_t active = 0;            // running per the OS, or holding the GIL (Active)
    std::uint64_t kept = 0;              // thread-samples the filters kept (the running view's rows)
    double firstTime = 0, lastTime = 0;  // sampler clock of the first and last tick of `ticks`
    // By view (TopViewOptions::state): [Running] the thread-samples the filters keep,
    // [any other state] the thread-samples in that state.
    std::array<TopTable, kThreadStateCount> tables;
    std::vector<TopProcessCounts> processes;  // by process index

    // Seconds one tick stands for: measured over the window, else 1 / rate.
    double secondsPerTick(double rateHz) const;
    double gilShare() const { return processTicks ? double(gilTicks) / double(processTicks) : 0.0; }
    double activeShare() const { return threadSamples ? double(active) / double(threadSamples) : 0.0; }
    double perTick(std::uint64_t n) const { return ticks ? double(n) / double(ticks) : 0.0; }
    // Average threads per tick in `state`.
    double statePerTick(ThreadState state) const { return perTick(states[static_cast<std::size_t>(state)]); }
    const TopTable& table(ThreadState view) const { return tables[static_cast<std::size_t>(view)]; }
};

struct TopFunction {
    std::string name;
    std::string filename;
    int line = 0;  // 0 for functions (lines aggregated) and unknown lines
};

struct TopThread {
    std::uint64_t threadId = 0;
    std::optional<int> nativeId;
    std::string name;
    std::uint32_t process = 0;  // index into TopSnapshot::processes
    pid_t pid = 0;
};

struct TopProcess {
    pid_t pid = 0;
    std::string commandLine;
    bool ended = false;  // its sampling ended (it exited, or could not be read any more)
    // CPU time and steady-clock time (seconds) when it was added: TopCpuMeter's start.
    double startCpuSeconds = 0, startTime = 0;
    // Filled by TopCpuMeter: CPU share (1 = one core) over the last interval and since
    // it was added; none when it could not be measured.
    std::optional<double> cpuInterval, cpuCumulative;
};

// A copy of everything a view needs, taken under the aggregator's lock.
struct TopSnapshot {
    TopWindow interval;                  // since the previous snapshot that ended an interval
    TopWindow cumulative;                // since the start
    std::vector<TopFunction> lines;      // FrameId -> frame (with its line)
    std::vector<TopFunction> functions;  // function id -> function (line 0)
    std::vector<TopThread> threads;      // thread index -> thread
    std::vector<TopProcess> processes;   // process index -> process (the root first)
    std::size_t liveThreads = 0;         // threads in the last tick
    double rateHz = 100;
};

class TopAggregator : public SampleSink {
  public:
    explicit TopAggregator(const SamplerOptions& options);

    // One process (index 0, no pid): what `top` without -s feeds.
    void onSample(const Sample& sample, const FrameTable& frames, const std::vector<ProfiledThread>& threads) override;

    // Under -s: a process joins (returns its index), its samples, its end. `frames` and
    // the thread indices are its own sampler's. Safe to call from any thread.
    std::uint32_t addProcess(pid_t pid, std::string commandLine, double startCpuSeconds, double startTime);
    void onProcessSample(std::uint32_t process, const Sample& sample, const FrameTable& frames,
                         const std::vector<ProfiledThread>& threads);
    void processEnded(std::uint32_t process);

    // A copy of the counts; with endInterval the current interval is then started
    // afresh. Safe to call from any thread.
    TopSnapshot snapshot(bool endInterval);

  private:
    // What a process's own sampler ids mean here.
    struct ProcessState {
        std::vector<std::uint32_t> lines;    // its FrameId -> line id
        std::vector<std::uint32_t> threads;  // its thread index -> thread index
        std::size_t liveThreads = 0;
    };
    std::uint32_t lineId(const FrameKey& key);
    void count(TopTable& table, std::uint32_t thread, const std::vector<std::uint32_t>& stack);

    SamplerOptions options_;
    std::mutex mutex_;
    TopWindow interval_, cumulative_;
    std::vector<TopFunction> lines_;
    std::vector<TopFunction> functions_;
    std::vector<std::uint32_t> lineToFunction_;
    std::unordered_map<std::string, std::uint32_t> functionIndex_;
    std::unordered_map<std::string, std::uint32_t> lineIndex_;
    std::vector<TopThread> threads_;
    std::vector<TopProcess> processes_;
    std::vector<ProcessState> processStates_;
    std::vector<std::uint32_t> stack_;  // scratch: one thread's stack in line ids
    std::size_t liveThreads_ = 0;
    std::vector<std::uint32_t> seenLine_, seenFunction_;  // per id: last stamp counted
    std::uint32_t stamp_ = 0;
};

// --- the table ------------------------------------------------------------------

enum class TopColumn { Own = 0, Total = 1, OwnTime = 2, TotalTime = 3 };

struct TopViewOptions {
    TopColumn sort = TopColumn::Own;
    bool reverse = false;
    bool lineNumbers = true;  // false: one row per function
    bool cumulative = false;  // percentages over the whole run instead of the last interval
    bool perThread = false;   // one row per (thread, function)
    bool perProcess = false;  // the per-process table instead of functions (key P)
    // Which functions (key w, --view): Running, the functions of running threads (the
    // filters apply); any other state, the functions where threads wait in it.
    ThreadState state = ThreadState::Running;
};

struct TopRow {
    const TopFunction* function = nullptr;    // points into the snapshot
    std::optional<std::uint32_t> thread;      // with perThread
    double ownPercent = 0, totalPercent = 0;  // over the view's window
    double ownSeconds = 0, totalSeconds = 0;  // since the start
    std::size_t processCount = 0;             // processes it ran in, in the window
    std::optional<std::uint32_t> process;     // the one process, when processCount is 1
};

struct TopProcessRow {
    const TopProcess* process = nullptr;  // points into the snapshot
    std::optional<double> cpuPercent;     // over the view's window (100 = one core)
    double gilPercent = 0;                // of its ticks in the window
    std::uint64_t samples = 0;            // its ticks in the window
    TopStateCounts states{};              // its thread-samples per state in the window
    // Average threads of the process per tick in `state`.
    double perTick(ThreadState state) const {
        return samples ? double(states[static_cast<std::size_t>(state)]) / double(samples) : 0.0;
    }
};

// Rows of the functions seen in the view's window, sorted by the chosen column
// (descending; ties by the other columns, then by name), reversed on request.
std::vector<TopRow> buildTopTable(const TopSnapshot& snapshot, const TopViewOptions& view);

// Every process of the snapshot, by %CPU (descending; processes without a figure
// last), then samples, then pid.
std::vector<TopProcessRow> buildTopProcessTable(const TopSnapshot& snapshot, const TopViewOptions& view);

// A thread's label in the per-thread view: its name and OS id when known.
std::string topThreadLabel(const TopThread& thread);

// Fills the CPU shares of a snapshot's processes from their CPU time, read by
// `cpuSeconds(pid)` (utime + stime of /proc/PID/stat; none when gone) at `now` (a
// steady clock, seconds). Call once per refresh, with the snapshot that ends the
// interval: the interval share is measured since the previous call (or since the
// process was added).
class TopCpuMeter {
  public:
    using CpuReader = std::function<std::optional<double>(pid_t)>;
    void measure(TopSnapshot& snapshot, double now, const CpuReader& cpuSeconds);

  private:
    struct Reading {
        double cpuSeconds = 0, time = 0;
    };
    std::vector<std::optional<Reading>> last_;  // by process index
};

}  // namespace pyspy
