// Sampler: reads every thread's stack of one PythonProcess at a fixed rate, on the
// calling thread (which must be the thread that owns the PythonProcess: ptrace pauses
// belong to the thread that made them), and hands each tick to a SampleSink.
//
// Timing: a steady clock with jittered intervals (so periodic work in the target is
// not aliased). When the sampler falls more than an interval behind, it skips the
// missed ticks instead of bursting, counts the lag, and warns once.
//
// Errors: a tick whose thread list cannot be read, or a thread whose walk fails, is
// counted in SamplerStats::errors and its stack is dropped, never passed on. The run
// ends when stop is requested, the duration is reached, or the target exits; another
// fatal error (e.g. ptrace refused) ends it too: thrown if no tick succeeded yet, else
// kept in SamplerStats::failure.
//
// run() is a loop over begin() / tick() / finish(); a scheduler that samples several
// processes on one thread (TreeRecording's shared threads) calls them itself, always from
// the same thread for a given Sampler.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <optional>
#include <random>
#include <regex>
#include <string>
#include <vector>

#include "pyspy/python/frame_walker.h"
#include "pyspy/python/python_process.h"
#include "pyspy/sampling/profile.h"
#include "pyspy/sampling/stack_trie.h"

namespace pyspy {

// --thread-name / --tid: which threads a sampler keeps. A thread is kept when its
// name (threading.Thread's, once known) contains a match of any pattern, or its OS
// thread id is one of `tids`. An empty filter keeps every thread.
class ThreadFilter {
  public:
    ThreadFilter() = default;
    // Throws FatalError(Usage) naming a pattern that is not a valid (ECMAScript) regex.
    ThreadFilter(const std::vector<std::string>& namePatterns, std::vector<pid_t> tids);

    bool empty() const { return patterns_.empty() && tids_.empty(); }
    bool keeps(const ProfiledThread& thread) const;

  private:
    std::vector<std::regex> patterns_;
    std::vector<pid_t> tids_;
};

struct SamplerOptions {
    double rateHz = 100;
    std::optional<double> durationSeconds;  // none: until stopped or the target exits
    bool pause = true;                      // false with --nonblocking
    bool gilOnly = false;                   // -g: keep only threads holding the GIL
    bool includeIdle = false;               // -i: keep idle threads too
    // --wait (record): keep every thread's samples (as includeIdle) and end each stack with
    // a FrameKind::State leaf naming the thread's state (waitLeafName), the descriptor's
    // kind looked up for I/O waits.
    bool waitStates = false;
    bool aggregateByFunction = false;  // -F: a frame's line is its function's first line
    bool lineNumbers = true;           // false with --nolineno: line 0
    double jitter = 0.2;               // each interval is drawn from (1 ± jitter) / rateHz
    // --native: native frames merged with the Python ones (needs pause; docs/native.md).
    // A thread whose stacks do not merge keeps its Python stack and counts a merge error.
    bool native = false;
    bool nativeAll = false;  // --native-all: also the interpreter's own native frames
    ThreadFilter threads;    // --thread-name, --tid: other threads are left out of every Sample
    WalkLimits limits;
};

// One thread in one tick.
struct ThreadSample {
    std::uint32_t thread = 0;  // index into Sampler::threads()
    bool active = false;       // the OS thread was running
    bool holdsGil = false;
    ThreadState state = ThreadState::Other;  // running, or why it waits (wait_state.h)
    FdKind ioKind = FdKind::Unknown;         // state Io: what the descriptor is, when known
    std::int64_t syscall = -1;               // the system call it was blocked in, or -1
    std::vector<FrameId> frames;             // Python (and with --native, native) frames, outermost first (no
                                             // thread frame); a stack cut at the depth bound starts with a
                                             // "(truncated stack)" frame
};

struct Sample {
    std::uint64_t tick = 0;             // sequence number of the tick, from 0
    double time = 0;                    // seconds since the sampler started (steady clock)
    std::vector<ThreadSample> threads;  // every thread read in this tick that the ThreadFilter keeps,
                                        // whether keepThread keeps it or not
};

// The leaf frame --wait gives a sample: "[running]", "[gil]", "[lock]", "[sleep]",
// "[child]", "[io: socket]" ("[io]" when the descriptor is not known), "[other: SYSCALL]".
std::string waitLeafName(ThreadState state, FdKind ioKind, std::int64_t syscall);

// Whether a thread's sample counts under the options (idle / GIL filters).
bool keepThread(const ThreadSample& sample, const SamplerOptions& options);

struct SamplerStats {
    std::uint64_t ticks = 0;        // ticks that read the process
    std::uint64_t errors = 0;       // failed ticks + failed thread walks
    std::uint64_t mergeErrors = 0;  // --native: thread samples whose native and Python stacks did not merge
    std::uint64_t lateTicks = 0;    // ticks that started more than one interval late
    double maxLagSeconds = 0;
    double elapsedSeconds = 0;
    double pausedSeconds = 0;  // total time the target's threads were stopped (blocking mode)
    bool targetExited = false;
    // A fatal error (e.g. ptrace refused) after some ticks: the run stopped there and
    // returned what it had, so the caller can keep the samples and then report it.
    std::exception_ptr failure;
};

class SampleSink {
  public:
    virtual ~SampleSink() = default;
    // Called on the sampler's thread for every tick; `frames` and `threads` are the
    // sampler's tables as of this tick (stable references until the sampler is gone).
    virtual void onSample(const Sample& sample, const FrameTable& frames,
                          const std::vector<ProfiledThread>& threads) = 0;
};

class Sampler {
  public:
    Sampler(PythonProcess& process, SamplerOptions options);

    // Samples until `stop` becomes true, the duration passes, or the target exits.
    // `warn` receives one-off warnings (falling behind), at most once each.
    // `betweenTicks`, when given, is called on this thread between ticks, at least every
    // 50 ms (a caller's own work that must not race the sink: a profile checkpoint).
    SamplerStats run(SampleSink& sink, const std::atomic<bool>& stop,
                     const std::function<void(const std::string&)>& warn = {},
                     const std::function<void()>& betweenTicks = {});

    // The steps of run(), for a caller that drives several samplers from one thread.
    // begin() starts the clock (call once, first); tick() samples once if due and returns
    // whether sampling goes on (false once the duration has passed, the target exited or
    // a fatal error was kept in the stats; a fatal error before any successful tick is
    // thrown); nextDue() is when tick() should next be called (a tick called early does
    // nothing; the duration's end counts as due); finish() ends the run and returns its
    // stats (call once, last).
    void begin(std::function<void(const std::string&)> warn = {});
    bool tick(SampleSink& sink);
    std::chrono::steady_clock::time_point nextDue() const;
    SamplerStats finish();

    // The stats of the run so far, elapsed time included (on the sampler's thread, or
    // after the run).
    SamplerStats statsSoFar() const;

    const SamplerOptions& options() const { return options_; }
    const FrameTable& frames() const { return frames_; }
    const std::vector<ProfiledThread>& threads() const { return threads_; }
    double startEpochSeconds() const { return startEpoch_; }
    // Live counters, readable from another thread while run() is going.
    std::uint64_t ticksSoFar() const { return ticks_.load(std::memory_order_relaxed); }
    std::uint64_t errorsSoFar() const { return errors_.load(std::memory_order_relaxed); }
    double lagSoFar() const { return lag_.load(std::memory_order_relaxed); }

  private:
    std::uint32_t threadIndex(const ThreadStack& stack);
    bool threadSelected(std::uint32_t index);  // the ThreadFilter's verdict, cached per name
    FrameId internFrame(const PyFrame& frame);
    // Appends a native frame, outermost first: its function, then the functions inlined into it.
    void appendNativeFrames(const NativeFrame& frame, std::vector<FrameId>& out);
    // Appends a thread's stack, outermost first, to `out`: the merged stack when there is
    // one, else the Python frames.
    void appendFrames(const ThreadStack& thread, std::vector<FrameId>& out);
    FrameId stateFrame(const ThreadSample& sample);  // --wait's leaf, interned once per name

    PythonProcess& process_;
    SamplerOptions options_;
    FrameTable frames_;
    std::vector<ProfiledThread> threads_;
    std::unordered_map<std::uint64_t, std::uint32_t> threadByIdent_;
    struct Selection {
        std::string name;  // the name the verdict was made for
        bool decided = false;
        bool keep = false;
    };
    std::vector<Selection> selected_;  // per thread index
    struct CodeFrames {
        std::shared_ptr<const CodeInfo> code;        // keeps the key's address alive
        std::vector<std::pair<int, FrameId>> lines;  // line -> frame
    };
    std::unordered_map<const CodeInfo*, CodeFrames> codeFrames_;
    struct NativeFrames {
        std::shared_ptr<const NativeSymbol> symbol;  // keeps the key's address alive
        std::vector<FrameId> ids;                    // the function, then its inlined calls outermost first
    };
    std::unordered_map<const NativeSymbol*, NativeFrames> nativeFrames_;
    std::unordered_map<std::uint64_t, FrameId> stateFrames_;  // (state, fd kind, syscall) -> leaf
    double startEpoch_ = 0;
    // The state of a run, between begin() and finish().
    std::function<void(const std::string&)> warn_;
    SamplerStats stats_;
    std::mt19937_64 rng_;
    std::chrono::steady_clock::time_point start_;
    std::chrono::steady_clock::time_point next_;
    std::uint64_t attempts_ = 0;  // ticks tried, failed ones included
    double lastNames_ = 0;
    bool unnamedThread_ = false;
    bool warnedLag_ = false;
    Sample sample_;
    std::atomic<std::uint64_t> ticks_{0};
    std::atomic<std::uint64_t> errors_{0};
    std::atomic<double> lag_{0};
};

// Aggregates samples into a RecordedProfile (`record`): a thread frame then the
// Python frames, per kept thread; the timeline only when asked (chrometrace), and
// bounded.
class ProfileBuilder : public SampleSink {
  public:
    ProfileBuilder(const SamplerOptions& options, bool keepTimeline, std::size_t maxTimelineSpans = 500'000);
    void onSample(const Sample& sample, const FrameTable& frames, const std::vector<ProfiledThread>& threads) override;

    // Moves the result out; thread frames are labelled `Thread <id> "<name>"` here,
    // once their names are known. Call once, after the sampler has returned. After
    // cut()s, the result holds what was sampled since the last one.
    RecordedProfile finish(const Sampler& sampler, const SamplerStats& stats, const PythonProcess& process);

    // Checkpoints of a running recording (record --period, SIGUSR1), on the sampler's
    // thread between ticks (Sampler::run's betweenTicks), or after the run. `stats` is
    // the run's so far (Sampler::statsSoFar). snapshot() copies everything since the
    // last cut; cut() moves it out and starts a new trie and timeline, so memory stays
    // bounded by one period: the frame table is kept (each result holds a copy).
    RecordedProfile snapshot(const Sampler& sampler, const SamplerStats& stats, const PythonProcess& process) const;
    RecordedProfile cut(const Sampler& sampler, const SamplerStats& stats, const PythonProcess& process);

    bool timelineTruncated() const { return timelineTruncated_; }

  private:
    // The profile's metadata and thread list for the samples since the last cut, with
    // `frames` (a copy of frames_, or frames_ moved out) and its thread frames labelled.
    RecordedProfile describe(const Sampler& sampler, const SamplerStats& stats, const PythonProcess& process,
                             FrameTable frames) const;

    SamplerOptions options_;
    bool keepTimeline_;
    std::size_t maxTimelineSpans_;
    bool timelineTruncated_ = false;
    StackTrie trie_;
    std::vector<TimelineSpan> timeline_;
    struct Open {
        std::size_t span = 0;
        std::uint64_t tick = 0;
        bool valid = false;
    };
    std::vector<Open> open_;                   // per thread: its last span
    std::vector<StackTrie::PathCache> paths_;  // per thread: its last stack in trie_
    std::vector<FrameId> threadFrame_;         // per thread: its thread frame (interned locally)
    FrameTable frames_;                        // sampler frames copied, plus thread frames
    std::vector<FrameId> frameMap_;            // sampler FrameId -> frames_ id
    std::vector<FrameId> scratch_;
    // Where the last cut() left the run: the samples before it are in an earlier result.
    std::uint64_t cutTicks_ = 0, cutErrors_ = 0;
    double cutSeconds_ = 0;
};

// A thread's label in profiles: `Thread 12345 "name"` (the OS id when known, else the
// interpreter's ident in hex).
std::string threadLabel(const ProfiledThread& thread);

}  // namespace pyspy
