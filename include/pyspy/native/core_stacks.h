// CoreNativeStacks: the native (C/C++) stacks of the threads of a core dump, unwound and
// symbolized with elfutils' libdwfl (no ptrace, no libunwind). The stacks come out as the
// live path (NativeUnwinder + NativeSymbolizer) gives them, so the merge with Python
// frames (python/native_merge.h) is the same.
//
// A core holds the process's writable memory (stacks, heap) but usually not the text and
// unwind tables of its modules: those are read from the files the locator names. A file
// that is not the one the process ran (rebuilt, moved) would give wrong symbols and a
// wrong unwind: a file whose build id differs from the one in the core is not used, and
// moduleProblems() lists such modules and those without a file. Modules are named by the
// core's NT_FILE paths (the vDSO "[vdso]"), as /proc/PID/maps names them for the live path. Everything read from
// the core is untrusted: libdwfl bounds its own reads, and every loop here is bounded.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "pyspy/common/fd.h"
#include "pyspy/common/result.h"
#include "pyspy/native/native_frame.h"
#include "pyspy/native/symbolizer.h"
#include "pyspy/native/unwinder.h"

struct Elf;          // libelf's descriptor (libelf.h)
struct Dwfl_Thread;  // libdwfl's thread of a session (libdwfl.h)

namespace pyspy {

// The local file to read for a module the core names (its path in the core: NT_FILE or
// the dynamic linker's list); "" when there is none. Same contract as CoreFileLocator
// (process/core_file.h).
using CoreModuleLocator = std::function<std::string(const std::string& pathInCore)>;

class CoreNativeStacks {
  public:
    // Opens and reports the core at `corePath`; each module's file is asked of `locator`
    // once, here (the locator is not kept). Throws FatalError: NoSuchProcess when the core does not exist,
    // PermissionDenied when it cannot be read, BadCore when libelf/libdwfl cannot read it
    // as a core (not ELF, not ET_CORE, no thread in it).
    CoreNativeStacks(const std::string& corePath, CoreModuleLocator locator, NativeUnwindLimits limits = {});
    ~CoreNativeStacks();
    CoreNativeStacks(const CoreNativeStacks&) = delete;
    CoreNativeStacks& operator=(const CoreNativeStacks&) = delete;

    // The stack of thread `tid` of the core, as NativeUnwinder::unwind gives a live one:
    // innermost first, at most limits.maxFrames, a stop part-way in NativeStack::stop
    // (also when it stopped in a module without a file: no unwind tables there). Fails
    // only when not even the first frame can be read (no such thread in the core).
    Result<NativeStack> unwind(pid_t tid);

    // The symbol of `address` (a NativeFrame::lookupAddress), by NativeSymbolizer's code
    // over the core's session; frames in a module without a file are "module+0xOFFSET".
    std::shared_ptr<const NativeSymbol> symbolize(std::uint64_t address);

    // One line per module of the core whose file is missing ("" from the locator, or it
    // cannot be read) or is not the file the process ran (its build id differs from the
    // one recorded in the core). Empty when every module was found and matches.
    const std::vector<std::string>& moduleProblems() const { return problems_; }

  private:
    struct ElfDeleter {
        void operator()(Elf* elf) const noexcept;  // elf_end
    };
    struct Module {  // a module the core names, with what became of its file
        std::string name;
        std::uint64_t start = 0, end = 0;
        bool hasElf = false;
    };

    // Fills modules_ and problems_, opening every module's file (libdwfl's find_elf) now,
    // while `locate` (the locator, asked once per module) can be reached.
    void inspectModules(const std::function<std::string(const std::string&)>& locate);
    const Module* moduleAt(std::uint64_t address) const;
    // Unwinds every thread of the core in one pass over them (the first unwind() does):
    // libdwfl frees its per-pass state for a core only when a pass runs out of threads,
    // so looking up one thread (dwfl_getthread_frames) leaks 16 bytes each time.
    void unwindAll();
    Result<NativeStack> unwindThread(Dwfl_Thread* thread);

    NativeUnwindLimits limits_;
    FD fd_;                                         // the core, read by libelf
    std::unique_ptr<Elf, ElfDeleter> elf_;          // must outlive the session (dwfl_core_file_attach)
    std::unique_ptr<NativeSymbolizer> symbolizer_;  // owns the libdwfl session (a fixed one: session() stays)
    std::vector<Module> modules_;
    std::vector<std::string> problems_;
    bool unwound_ = false;                                   // unwindAll() ran
    std::unordered_map<pid_t, Result<NativeStack>> stacks_;  // its results, by thread id
};

}  // namespace pyspy
