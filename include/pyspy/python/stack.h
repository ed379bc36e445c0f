// What a stack walk produces: plain data, shared by dump, record and top.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "pyspy/native/native_frame.h"
#include "pyspy/process/wait_state.h"
#include "pyspy/python/line_table.h"

namespace pyspy {

// A decoded code object. Immutable once built and shared by every frame that runs
// it, so a sampler can intern frames by (CodeInfo*, line) without copying strings.
struct CodeInfo {
    std::string name;
    std::string qualname;  // 3.11+; equals name on older versions
    std::string filename;
    int firstLineNo = 0;
    int firstTraceable = 0;  // _co_firsttraceable (3.11+), in code units
    LineTableFormat lineTableFormat = LineTableFormat::Locations311;
    std::vector<std::uint8_t> lineTable;

    std::optional<int> lineForOffset(int byteOffset) const;
};

// One argument or local variable of a frame, with a short repr of its value
// (dump --locals; see locals.h).
struct LocalVariable {
    std::string name;
    std::string repr;
};

struct PyFrame {
    std::shared_ptr<const CodeInfo> code;
    std::optional<int> line;
    std::uint64_t address = 0;      // the frame in the target (PyFrameObject* or _PyInterpreterFrame*)
    std::uint64_t codeAddress = 0;  // its code object
    // Filled only when locals were asked for (SnapshotOptions::localsLevel).
    std::vector<LocalVariable> locals;
    std::optional<std::string> localsError;  // reading the locals failed; `locals` has what was read

    const std::string& function() const { return code->qualname; }
    const std::string& filename() const { return code->filename; }
};

// One frame of a merged native + Python stack (--native): an index into
// ThreadStack::frames (Python) or ThreadStack::nativeFrames (native).
struct MergedFrame {
    bool native = false;
    std::uint32_t index = 0;
};

struct ThreadStack {
    std::uint64_t threadId = 0;       // the Python thread ident (pthread_self())
    std::optional<pid_t> nativeId;    // the OS thread id, when known
    std::optional<std::string> name;  // threading.Thread name, when found
    bool active = false;              // the OS thread was running (not sleeping or waiting)
    bool holdsGil = false;
    bool waitingForGil = false;  // asleep on the GIL's condition variable or mutex (state == Gil)
    // What it was doing (process/wait_state.h): running, or why it waits. `wait` is set
    // when it was blocked in a system call: the call, and for I/O its descriptor (with
    // SnapshotOptions::fdDetail, the descriptor's kind and peer).
    ThreadState state = ThreadState::Other;
    std::optional<WaitReason> wait;
    bool collectingGarbage = false;    // the GC was collecting and this thread held the GIL (3.7+)
    std::vector<PyFrame> frames;       // innermost first
    bool truncated = false;            // the depth bound cut the stack
    std::optional<std::string> error;  // the walk failed part-way; frames holds what was read

    // --native only (SnapshotOptions::native): see native_merge.h and docs/native.md.
    bool nativeRequested = false;
    std::vector<NativeFrame> nativeFrames;  // every native frame unwound, innermost first, symbolized
    // How many of `frames` each C-level call of the eval loop was running, innermost
    // first (one per frame before 3.11; a run of frames up to an entry frame on 3.11+).
    std::vector<std::uint32_t> evalGroups;
    std::vector<MergedFrame> merged;         // the interleaved stack, innermost first; empty if not merged
    std::optional<std::string> nativeError;  // the unwind stopped early, or why the merge failed
    bool mergeFailed = false;  // the stacks did not line up: report `frames` and `nativeFrames` side by side

    bool crashed = false;  // read from a core: the thread that received the signal that ended the process
};

// What a core file says about the end of its process (dump --core).
struct CoreCrashInfo {
    std::string path;                           // the core file
    int signal = 0;                             // 0: none recorded (a gcore of a live process)
    int code = 0;                               // si_code, when codeKnown
    bool codeKnown = false;                     // the core recorded it (NT_SIGINFO)
    std::optional<std::uint64_t> faultAddress;  // for SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP
    pid_t tid = 0;                              // the thread that received it
    bool tidIsPython = false;                   // one of the snapshot's threads (else a C thread)
    std::vector<std::string> moduleProblems;    // files that are missing or do not match the core
};

struct ProcessSnapshot {
    pid_t pid = 0;
    std::string commandLine;
    std::string pythonVersion;
    std::string executable;
    bool paused = false;        // threads were stopped while reading
    bool freeThreaded = false;  // a build without a GIL (3.14t): no thread holds or waits for one
    bool gilEnabled = false;    // free-threaded, but it has turned its GIL on: holders are marked
    double pausedSeconds = 0;   // how long they were held stopped: first stop seen to last release
    double timestamp = 0;       // seconds since the Unix epoch, when the walk began
    std::vector<ThreadStack> threads;
    std::optional<CoreCrashInfo> core;  // read from a core file rather than a live process
};

}  // namespace pyspy
