// TreeRecording: the samplers of `record` and `top`. Without -s, one Sampler on one
// thread for the target. With -s/--subprocesses, also one Sampler thread per Python descendant
// (ProcessTree, scanned by poll() from the main thread): each process is sampled
// independently, so a slow or dying child never stalls the others. Past the bound on
// those threads (kDefaultMaxSamplerThreads, or PYSPY_MAX_SAMPLER_THREADS), further
// processes are handed round-robin to a few shared sampler threads, each of which
// samples its processes earliest-due-first (a slow one there delays only the others on
// its thread, by at most one tick). A process is always sampled by the same thread, so
// its ptrace pauses stay on one thread (docs/subprocesses.md says why this split).
//
// A new child is pinned by a pidfd (ProcessHandle) as soon as it is seen, then its
// sampler thread (its own or a shared one) attaches to it (retrying while it is still exec'ing or loading its
// interpreter, up to kChildAttachSeconds, or kPythonAttachSeconds when its executable is
// named python); a child that is not Python by then gets one
// note and is left alone.
//
// Each process's samples go to a ProfileBuilder (record: finish() merges their profiles)
// or, given ProcessSinks, to a sink the caller makes per process (top).
//
// Under -s the root need not be Python (a shell script, `uv run`, a supervisor): then
// only its descendants are sampled, the root's thread watches it until it exits (so the
// tree is not over while it may still start Python), and the caller bounds the wait for
// the first Python process with checkPythonFound(). A root just started (launch mode)
// may still be loading its interpreter, and any root may exec a Python (`exec python
// app.py` ending a script): then it is attached as a new child is, and sampled if it
// turns out to be Python.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "pyspy/process/process_handle.h"
#include "pyspy/process/process_tree.h"
#include "pyspy/python/python_process.h"
#include "pyspy/sampling/profile.h"
#include "pyspy/sampling/sampler.h"

namespace pyspy {

class TreeRecording {
  public:
    // Processes (the root included) that get a sampler thread each; later ones go to
    // shared threads. PYSPY_MAX_SAMPLER_THREADS (1..4096) overrides it.
    static constexpr std::size_t kDefaultMaxSamplerThreads = 64;
    // Shared threads: one per this many sampler threads of the bound, at least one and at
    // most kMaxSharedSamplerThreads (4 at the default bound).
    static constexpr std::size_t kSamplerThreadsPerSharedThread = 16;
    static constexpr std::size_t kMaxSharedSamplerThreads = 4;
    static constexpr double kChildAttachSeconds = 1.0;
    static constexpr double kPythonAttachSeconds = 5.0;  // when its executable's path says python

    using Notify = std::function<void(const std::string&)>;

    // Sinks made by the caller, one per process: `open` is called on the process's
    // sampler thread once it is attached, before its first sample; `ended` on the same
    // thread when its sampling ends (exit, stop or failure). Both may run concurrently
    // for different processes.
    struct ProcessSinks {
        std::function<std::unique_ptr<SampleSink>(PythonProcess& process)> open;
        std::function<void(SampleSink& sink)> ended;  // the sink `open` made
    };

    // The sampled processes' stats, for summaries across the tree.
    struct ProcessStats {
        pid_t pid = 0;
        SamplerStats stats;
    };

    // The process the recording starts from. Without `process` (under -s only) it is not
    // Python: its descendants are sampled (and itself once it execs one); with
    // `mayBecomePython` it is first attached as a child is (a program just started,
    // perhaps still loading its interpreter), and the caller has not said it is not Python.
    struct Root {
        pid_t pid = 0;
        PythonProcess* process = nullptr;
        bool mayBecomePython = false;
    };

    // `warn` and `note` may be called from any sampler thread (the caller serializes).
    // Samples go to a ProfileBuilder per process (record).
    TreeRecording(Root root, const SamplerOptions& options, bool keepTimeline, bool subprocesses, Notify warn,
                  Notify note);
    // Samples go to the caller's sinks (top); finish() must not be called.
    TreeRecording(Root root, const SamplerOptions& options, bool subprocesses, ProcessSinks sinks, Notify warn,
                  Notify note);
    ~TreeRecording();  // stops and joins whatever still runs
    TreeRecording(const TreeRecording&) = delete;
    TreeRecording& operator=(const TreeRecording&) = delete;

    void start();
    void stop() { stop_.store(true); }
    // With -s: scans the tree and starts samplers for new children. Returns whether any
    // sampler is still running (or starting).
    bool poll();
    void join();

    std::uint64_t ticksSoFar() const;  // summed over processes
    std::uint64_t errorsSoFar() const;
    double lagSoFar() const;  // the worst
    std::size_t processCount() const { return recordings_.size(); }
    // How many processes are (or were) sampled: attached as Python, sampler made.
    std::size_t pythonProcesses() const;

    // Under -s with a root that is not Python: throws FatalError(NotPython) when no
    // process has been sampled yet although `waitSeconds` (if given) have passed since
    // start(), or the whole tree has ended (`ended`: poll() returned false). Call it from
    // the poll() loop and once after it.
    void checkPythonFound(std::optional<double> waitSeconds, bool ended);

    // After join(): the root's stats and failure (a thrown error or SamplerStats::failure),
    // and the profile (merged, with a process frame per process, under -s). A root that
    // is not Python has no failure, and stats with only elapsedSeconds and targetExited
    // (whether it exited by itself); the merged profile is headed by its pid and command.
    const SamplerStats& rootStats() const;
    std::exception_ptr rootFailure() const;
    bool timelineTruncated() const;
    std::size_t sampledProcesses() const;            // processes with at least one tick
    std::vector<ProcessStats> processStats() const;  // after join(): each process with at least one tick
    RecordedProfile finish();

    // A checkpoint of a running record (--period, SIGUSR1), from the thread that calls
    // poll(), while sampling goes on: the profile of every process since the last cut
    // (`cut`: each process then starts a new trie) or so far (a snapshot), merged as
    // finish() merges them. Each sampler thread serves the request between two ticks;
    // a process whose sampling has ended is read here. A sampler thread that has not
    // answered within `timeout` (a tick stuck on a dying target) is left out of this
    // checkpoint and does not cut when it answers late: its samples go to the next one.
    // Nothing when no process answered. Not with ProcessSinks.
    std::optional<RecordedProfile> checkpoint(bool cut,
                                              std::chrono::milliseconds timeout = std::chrono::milliseconds(2000));

  private:
    struct Recording {
        pid_t pid = 0;
        ProcessHandle handle;
        std::unique_ptr<PythonProcess> owned;  // children: attached on their own thread
        PythonProcess* process = nullptr;
        std::unique_ptr<ProfileBuilder> builder;  // without ProcessSinks
        std::unique_ptr<SampleSink> sink;         // with ProcessSinks
        std::unique_ptr<Sampler> sampler;
        std::atomic<Sampler*> live{nullptr};
        SamplerStats stats;
        std::exception_ptr failure;
        std::atomic<bool> done{false};
        std::thread thread;  // its own sampler thread; none on a shared thread
        // The child's attach (beginAttach, tryAttach).
        std::string command;
        std::chrono::steady_clock::time_point attachDeadline;
        // checkpoint(): the last request this process answered (read without the lock on
        // the sampler's path: no request pending costs one atomic load per tick), and its
        // answer (written under checkpointMutex_, which is held while it is made: pieces of
        // several processes are made one at a time).
        std::atomic<std::uint64_t> checkpointServed{0};
        std::optional<RecordedProfile> checkpointPiece;
    };

    // A sampler thread shared by the processes past the bound (runShared).
    struct SharedThread {
        std::mutex mutex;
        std::vector<Recording*> incoming;  // handed over by poll(), taken by the thread
        bool closed = false;               // the thread has ended: poll() marks new ones done
        std::thread thread;
    };

    void runRoot(Recording& recording);
    // A root that is not Python (or not yet): attaches it if it may become Python, else
    // (or failing that) notes it once and waits for its exit.
    void watchRoot(Recording& recording);
    // Merges the processes' profiles, headed by the root even when it was not sampled.
    RecordedProfile mergeTree(std::vector<RecordedProfile> profiles);
    // rootCommand_ again if it was read before the root's exec set its arguments up (the
    // thread that calls poll() only).
    void refreshRootCommand();
    void runChild(Recording& recording);
    // On the process's own thread: attaches (retrying, as beginAttach/tryAttach say) and
    // samples until the end; false when it was not attached (not Python, gone, stopped).
    bool attachAndSample(Recording& recording);
    void runShared(SharedThread& shared);
    void handToSharedThread(Recording& recording);
    void sample(Recording& recording, const SamplerOptions& options);
    // The steps of sample(), for the shared threads: openSampling makes the sink and the
    // sampler (may throw); endSampling takes the sampler's kept failure and closes the sink.
    SampleSink& openSampling(Recording& recording, const SamplerOptions& options);
    void endSampling(Recording& recording);
    Notify processWarn(pid_t pid) const;
    // A child's attach: beginAttach once, then tryAttach until it returns true (attached:
    // `owned` is set; or given up, with a note when that is worth one).
    void beginAttach(Recording& recording) const;
    bool tryAttach(Recording& recording) const;
    SamplerOptions childOptions() const;  // the duration left
    void endChild(Recording& recording);  // after its sampling: reports a failure, marks it done
    // On a process's sampler thread between ticks: answers a pending checkpoint().
    void serveCheckpoint(Recording& recording);

    SamplerOptions options_;
    bool rootIsPython_;  // a PythonProcess was given for the root
    bool rootMayBecomePython_;
    mutable bool rootNoted_;   // "not Python" said (by the caller, or once by tryAttach on the root's thread)
    std::string rootCommand_;  // a root that is not Python: heads the profile (the poll() thread's)
    bool keepTimeline_;
    bool subprocesses_;
    std::optional<ProcessSinks> sinks_;
    Notify warn_, note_;
    std::atomic<bool> stop_{false};
    std::optional<ProcessTree> tree_;
    std::chrono::steady_clock::time_point started_;
    std::vector<std::unique_ptr<Recording>> recordings_;  // root first
    std::size_t maxSamplerThreads_ = kDefaultMaxSamplerThreads;
    std::vector<std::unique_ptr<SharedThread>> shared_;
    std::size_t handedToShared_ = 0;
    std::atomic<bool> joining_{false};  // no more processes come: shared threads end when theirs are done
    std::mutex checkpointMutex_;
    std::condition_variable checkpointAnswered_;
    std::atomic<std::uint64_t> checkpointWanted_{0};  // the latest request (0: none yet)
    bool checkpointCut_ = false;                      // what it asks (guarded by checkpointMutex_)
    std::uint64_t checkpointCollecting_ = 0;          // the request checkpoint() waits for (0: none; guarded)
};

}  // namespace pyspy
