// NativeSymbolizer: function, module and source line of an address in a target
// process, from its ELF symbol tables and DWARF (elfutils' libdwfl, reading the
// target's files through /proc/PID). Results are cached per address, so a long
// `record --native` symbolizes each distinct address once.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <unordered_map>

#include "pyspy/native/native_frame.h"

struct Dwfl;  // elfutils' session (libdwfl.h)

namespace pyspy {

class NativeSymbolizer {
  public:
    // Reports the modules mapped in `pid` now. Throws FatalError(Internal) if libdwfl
    // cannot start a session.
    explicit NativeSymbolizer(pid_t pid);
    ~NativeSymbolizer();
    NativeSymbolizer(const NativeSymbolizer&) = delete;
    NativeSymbolizer& operator=(const NativeSymbolizer&) = delete;

    // Never fails: an address in no known module becomes "0x…" with module "".
    // An address outside every module makes the module list be read again (a library
    // loaded since), at most once a second.
    std::shared_ptr<const NativeSymbol> symbolize(std::uint64_t address);

    std::size_t cacheSize() const { return cache_.size(); }

  private:
    struct DwflDeleter {
        void operator()(Dwfl* dwfl) const noexcept;
    };
    void report();  // (re)reads the target's modules into a new session, clearing the cache
    std::shared_ptr<const NativeSymbol> lookup(std::uint64_t address) const;

    static constexpr std::size_t kMaxCacheEntries = 65536;
    pid_t pid_;
    std::unique_ptr<Dwfl, DwflDeleter> dwfl_;
    std::chrono::steady_clock::time_point reportedAt_{};
    std::unordered_map<std::uint64_t, std::shared_ptr<const NativeSymbol>> cache_;
};

// A demangled C++ name; the name itself when it is not a mangled one or fails to demangle.
std::string demangle(const std::string& name);

}  // namespace pyspy
