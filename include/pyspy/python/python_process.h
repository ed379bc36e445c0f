// PythonProcess: a live CPython process being inspected. Attaching locates the
// interpreter once; each snapshot() then reads every thread's stack.
#pragma once

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <unordered_map>

#include "pyspy/elf/core_modules.h"
#include "pyspy/native/core_stacks.h"
#include "pyspy/native/symbolizer.h"
#include "pyspy/native/unwinder.h"
#include "pyspy/process/core_file.h"
#include "pyspy/process/live_memory.h"
#include "pyspy/process/prefetched_memory.h"
#include "pyspy/process/process_handle.h"
#include "pyspy/process/speculative_memory.h"
#include "pyspy/process/thread_stats.h"
#include "pyspy/python/frame_walker.h"
#include "pyspy/python/interpreter.h"
#include "pyspy/python/objects.h"
#include "pyspy/python/stack.h"

namespace pyspy {

struct SnapshotOptions {
    bool pause = true;        // stop all threads while reading (consistent, costs the target a pause)
    bool threadNames = true;  // look up threading.Thread names
    std::size_t maxThreads = 4096;
    // I/O waits: look up what the descriptor is (FdKind; one readlink per waiting thread,
    // cached per descriptor), and with fdPeers a socket's peer address too (dump).
    bool fdKinds = false;
    bool fdPeers = false;
    int localsLevel = 0;  // > 0: read each frame's locals (PyFrame::locals) with ReprLimits::forLevel
    // Unwind each thread's native stack while paused, symbolize it after the pause and
    // merge it with the Python stack (ThreadStack::merged; docs/native.md). Needs pause.
    bool native = false;
    bool nativeAll = false;  // with native: keep the interpreter's own native frames
    // Fill ProcessSnapshot's command line, version and executable (dump prints them; a
    // sampler has them from the process and skips the copies every tick).
    bool processInfo = true;
    WalkLimits limits;
};

struct CoreOpenOptions {
    CoreFileSearch files;  // --executable, --lib-search-path
    LocateOptions locate;
};

class PythonProcess {
  public:
    // Checks access and locates the interpreter. Throws FatalError.
    static std::unique_ptr<PythonProcess> attach(pid_t pid, const LocateOptions& options = {});
    // Reads a core file instead (dump --core): every snapshot is of the moment it was
    // written. Throws FatalError: NoSuchProcess (no such file), PermissionDenied,
    // BadCore (not a core, truncated, or the interpreter's file does not match it),
    // NotPython, UnsupportedVersion.
    static std::unique_ptr<PythonProcess> openCore(const std::string& path, const CoreOpenOptions& options = {});

    // `handle` pins the process (see ProcessHandle); one is opened when none is given.
    PythonProcess(pid_t pid, std::unique_ptr<ProcessMemory> memory, PythonTarget target, ProcessHandle handle = {});
    // Its readers hold references to its own members: it stays where it was made.
    PythonProcess(const PythonProcess&) = delete;
    PythonProcess& operator=(const PythonProcess&) = delete;

    pid_t pid() const { return pid_; }
    bool fromCore() const { return core_ != nullptr; }
    const PythonTarget& target() const { return target_; }
    const ProcessMemory& memory() const { return *memory_; }
    const std::string& commandLine() const { return commandLine_; }
    const CodeCache& codeCache() const { return codes_; }

    // Whether the target has a GIL now: always, but on a free-threaded build only while
    // it has turned its GIL on (after importing a module not marked safe without it).
    bool gilEnabled() const;

    // Reads every thread's stack. Throws FatalError: TargetExited when the process is
    // gone — also when it exited at any point during the reads, so a snapshot never
    // holds memory of another process that was given its pid — PermissionDenied when it
    // cannot be paused. Per-thread read failures are reported in ThreadStack::error.
    ProcessSnapshot snapshot(const SnapshotOptions& options);

  private:
    // What reading a core keeps alive (declared before memory_, which reads through it).
    struct CoreState {
        std::shared_ptr<const CoreFile> file;
        std::unique_ptr<CoreMemory> bare;          // the core alone (no files): the build ids it kept
        std::unique_ptr<CoreModuleFiles> files;    // the local file of each file it names
        std::unique_ptr<CoreNativeStacks> native;  // made by the first --native snapshot
    };
    PythonProcess(std::unique_ptr<CoreState> core, std::unique_ptr<ProcessMemory> memory, PythonTarget target);
    // The thread ids and OS activities of a core's threads (from their registers).
    std::vector<pid_t> coreThreads(std::unordered_map<pid_t, ThreadActivity>& activities) const;
    // Orders the crashed thread first and fills ProcessSnapshot::core.
    void fillCoreCrash(ProcessSnapshot& snap);
    // --native of a core whose crash was in a thread without Python (a C thread): that
    // thread too, with its native stack only.
    void addCrashedNativeThread(ProcessSnapshot& snap, const std::unordered_map<pid_t, ThreadActivity>& activities,
                                const SnapshotOptions& options);

    struct ThreadStateInfo {
        std::uint64_t address = 0;
        std::uint64_t threadId = 0;
        std::optional<pid_t> nativeId;
        std::uint64_t frame = 0;
        std::uint64_t datastackChunk = 0;
        std::uint64_t datastackTop = 0;  // end of the used part of the newest chunk
    };
    Result<std::vector<ThreadStateInfo>> readThreadStates(std::size_t maxThreads) const;
    Result<ThreadStateInfo> readThreadState(std::uint64_t address) const;
    std::uint64_t gilHolder() const;   // the PyThreadState* holding the GIL, or 0
    bool gcCollecting() const;         // the GC's `collecting` flag is set (false when unknown)
    std::uint64_t gilAddress() const;  // the _gil_runtime_state in use (3.7+), or 0
    // The address ranges of the futexes a thread waiting for the GIL sleeps on: the
    // GIL's condition variable and mutex (3.6+), or its lock's semaphore (2.7).
    std::vector<std::pair<std::uint64_t, std::uint64_t>> gilWaitRanges() const;
    bool gilWaitsKnown() const;  // whether gilWaitRanges can say anything for this target
    std::unordered_map<std::uint64_t, std::string> threadNames() const;
    void resolveNativeIds(std::vector<ThreadStateInfo>& states, const std::vector<pid_t>& tids);
    Result<FrameChain> walkThread(const ThreadStateInfo& state, const WalkLimits& limits, FrameChain& partial);
    bool stacksReadable();                                     // some thread with a frame walks to at least one frame
    bool gone(const ReadError* error = nullptr) const;         // the target has exited or is exiting (see .cpp)
    void readLocals(std::vector<PyFrame>& frames, int level);  // fills PyFrame::locals / localsError
    // Sets thread.state / wait from its OS activity (`onGil`: whether a futex word is the GIL's).
    void setWaitState(ThreadStack& thread, const ThreadActivity& activity, bool onGil, const SnapshotOptions& options);
    void unwindNative(ThreadStack& thread);                         // while paused: ThreadStack::nativeFrames (pcs)
    void symbolizeAndMerge(ProcessSnapshot& snap, bool nativeAll);  // after the pause

    std::unique_ptr<CoreState> core_;  // set when reading a core file
    pid_t pid_;
    ProcessHandle handle_;
    std::unique_ptr<ProcessMemory> memory_;
    PythonTarget target_;
    SpeculativeMemory speculative_;  // every read of a snapshot goes through it
    ObjectReader reader_;
    CodeCache codes_;
    // Reused by every walk (the sampler walks each thread every tick): a 3.11+ thread's
    // frame chunks, and the walker's working buffers.
    PrefetchedMemory framePrefetch_{speculative_};
    FrameWalker::Scratch walkScratch_;
    std::string commandLine_;
    std::string versionText_;                       // target_.version.toString(), formatted once
    std::optional<std::int64_t> pthreadTidOffset_;  // where glibc's struct pthread keeps the tid (<3.8)
    ThreadStatReader threadStats_{pid_};            // OS thread states, with the stat files kept open
    bool relistThreads_ = false;                    // a thread state named a thread not listed yet
    // The thread that held the GIL at the last snapshot: its OS state is not read (it
    // most likely still holds it, and a GIL holder counts as active); read late if not.
    std::optional<pid_t> lastGilHolder_;
    FdDescriber fds_{pid_};                         // what an I/O wait's descriptor is
    std::unique_ptr<NativeUnwinder> unwinder_;      // created by the first --native snapshot
    std::unique_ptr<NativeSymbolizer> symbolizer_;  // likewise
};

}  // namespace pyspy
