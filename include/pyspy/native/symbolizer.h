// NativeSymbolizer: function, module and source line of an address in a target
// process, from its ELF symbol tables and DWARF (elfutils' libdwfl, reading the
// target's files through /proc/PID, or the files a core dump names: core_stacks.h).
// Results are cached per address, so a long `record --native` symbolizes each
// distinct address once.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <unordered_map>

#include "pyspy/native/native_frame.h"

struct Dwfl;  // elfutils' session (libdwfl.h)

namespace pyspy {

class NativeSymbolizer {
  public:
    struct DwflDeleter {
        void operator()(Dwfl* dwfl) const noexcept;  // dwfl_end
    };
    using DwflPtr = std::unique_ptr<Dwfl, DwflDeleter>;

    // Reports the modules mapped in `pid` now. Throws FatalError(Internal) if libdwfl
    // cannot start a session.
    explicit NativeSymbolizer(pid_t pid);
    // Symbolizes in a session the caller reported (a core's: CoreNativeStacks), whose
    // module list is final: an address outside every module is not re-reported.
    // `dwfl` must not be null and must have ended its report (dwfl_report_end).
    explicit NativeSymbolizer(DwflPtr dwfl);
    ~NativeSymbolizer();
    NativeSymbolizer(const NativeSymbolizer&) = delete;
    NativeSymbolizer& operator=(const NativeSymbolizer&) = delete;

    // Never fails: an address in no known module becomes "0x…" with module "".
    // For a live process, an address outside every module makes the module list be
    // read again (a library loaded since), at most once a second.
    std::shared_ptr<const NativeSymbol> symbolize(std::uint64_t address);

    std::size_t cacheSize() const { return cache_.size(); }
    // The session symbols are looked up in (replaced when a live target's modules are
    // read again: do not keep it across symbolize() of a live symbolizer).
    Dwfl* session() const { return dwfl_.get(); }

  private:
    void report();  // (re)reads the target's modules into a new session, clearing the cache
    std::shared_ptr<const NativeSymbol> lookup(std::uint64_t address) const;

    static constexpr std::size_t kMaxCacheEntries = 65536;
    std::optional<pid_t> pid_;  // a live target, whose modules may change; none for a fixed session
    DwflPtr dwfl_;
    std::chrono::steady_clock::time_point reportedAt_{};
    std::unordered_map<std::uint64_t, std::shared_ptr<const NativeSymbol>> cache_;
};

// A demangled C++ name; the name itself when it is not a mangled one or fails to demangle.
std::string demangle(const std::string& name);

}  // namespace pyspy
