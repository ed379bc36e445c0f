// Discovery: finds the CPython interpreter inside a process — which binary or
// libpython holds it, its version, its layout, and the addresses we start from.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "pyspy/process/maps.h"
#include "pyspy/process/memory.h"
#include "pyspy/python/layout.h"
#include "pyspy/python/objects.h"
#include "pyspy/python/version.h"

namespace pyspy {

struct PythonTarget {
    pid_t pid = 0;
    PythonVersion version;
    PyLayout layout;
    std::string executable;    // the python binary as mapped in the target
    std::string libpython;     // the libpython as mapped, or "" for a static build
    std::string layoutSource;  // "generated table 3.11", "_Py_DebugOffsets 3.13 + table 3.13"
    std::string warning;       // one line for the user, or "" (a version newer than every table)

    std::uint64_t runtime = 0;           // &_PyRuntime (3.7+)
    std::uint64_t interpHeadVar = 0;     // &interp_head (<=3.6), when the symbol exists
    std::uint64_t tstateCurrentVar = 0;  // &_PyThreadState_Current (<=3.6)
    // <=3.6 keep the GC flag and the GIL in statics of gcmodule.c and ceval.c: found in
    // .symtab (zero when stripped, and then not reported).
    std::uint64_t gcCollectingVar = 0;                // &collecting (an int)
    std::uint64_t gilCondVar = 0, gilCondSize = 0;    // 3.6: gil_cond (a pthread_cond_t)
    std::uint64_t gilMutexVar = 0, gilMutexSize = 0;  // 3.6: gil_mutex (a pthread_mutex_t)
    // 3.6: switch_cond / switch_mutex, where a thread that was made to drop the GIL waits
    // until another has taken it (FORCE_SWITCHING)
    std::uint64_t gilSwitchCondVar = 0, gilSwitchCondSize = 0;
    std::uint64_t gilSwitchMutexVar = 0, gilSwitchMutexSize = 0;
    std::uint64_t gilLockVar = 0;   // 2.7: &interpreter_lock, a PyThread_type_lock (sem_t*)
    std::uint64_t interpreter = 0;  // the main PyInterpreterState*, validated
    bool foundByScan = false;       // located by scanning .data/.bss, not through a symbol
    TypeAddresses types;
    std::vector<MemoryMapping> maps;
};

struct LocateOptions {
    bool ignoreSymbols = false;  // find the interpreter by scanning only (tests the stripped-binary path)
};

// What discovery needs to know of a target besides its memory: for a live process its
// /proc files (TargetImage::live), for a core what the core records.
struct TargetImage {
    pid_t pid = 0;
    std::string name;  // how errors name it: "process 123", "core FILE"
    std::vector<MemoryMapping> maps;
    std::string executablePath;  // as mapped (may end with " (deleted)"), or ""
    std::string commandLine;
    // Where to open the file behind a mapping ("" when it cannot be: the module is then
    // left out, as a file that cannot be opened is).
    std::function<std::string(const MemoryMapping&)> filePath;
    // Whether the target still runs: false turns a failed read into TargetExited. A
    // core's is always true.
    std::function<bool()> alive;

    // Reads /proc/PID: maps, exe, cmdline. Throws FatalError (NoSuchProcess, PermissionDenied).
    static TargetImage live(pid_t pid);
};

// Finds and validates the interpreter. Throws FatalError: NotPython (saying what was
// looked for), UnsupportedVersion (naming it), NoSuchProcess, PermissionDenied,
// TargetExited (when `image.alive()` turns false).
PythonTarget locatePython(const TargetImage& image, const ProcessMemory& memory, const LocateOptions& options = {});
inline PythonTarget locatePython(pid_t pid, const ProcessMemory& memory, const LocateOptions& options = {}) {
    return locatePython(TargetImage::live(pid), memory, options);
}

// Checks that `interp` looks like a PyInterpreterState of this layout: its thread
// list is readable and every thread state in it points back to it.
bool validateInterpreter(const ProcessMemory& memory, const PyLayout& layout, std::uint64_t interp);

}  // namespace pyspy
