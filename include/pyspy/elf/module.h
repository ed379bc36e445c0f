// LoadedModule: one ELF file mapped into a target process (the python executable or a
// libpython), with the load bias that turns the file's virtual addresses into the
// target's runtime addresses. findModules groups a process's mappings by file.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pyspy/elf/elf_file.h"
#include "pyspy/process/maps.h"

namespace pyspy {

struct LoadedModule {
    std::string path;      // as in /proc/PID/maps (may end with " (deleted)")
    std::string openPath;  // how we opened it (targetFilePath: map_files or /proc/PID/root)
    // Lowest start / highest end over the file-backed mappings of the file. The
    // anonymous mapping the loader adds for the rest of .bss is not included: use
    // sectionRange(".bss") for it.
    std::uint64_t start = 0, end = 0;
    std::uint64_t bias = 0;  // runtime address = file vaddr + bias (0 for a non-PIE executable)
    std::shared_ptr<const ElfFile> elf;

    // st_value + bias of a defined symbol (see ElfFile::findSymbol).
    std::optional<std::uint64_t> symbolAddress(std::string_view name) const;
    // The section with its address already biased: `address` is the RUNTIME address
    // (sh_addr + bias) for an allocated (SHF_ALLOC) section and stays 0 for the others;
    // offset, size, type and flags are the file's.
    std::optional<ElfSection> section(std::string_view name) const;
    // Runtime [begin, end) of an allocated section; nullopt when absent, not SHF_ALLOC,
    // or the range would overflow.
    std::optional<std::pair<std::uint64_t, std::uint64_t>> sectionRange(std::string_view name) const;
    // Whether a runtime address lies in [start, end).
    bool contains(std::uint64_t address) const { return address >= start && address < end; }
};

// The basename of an interpreter executable: python, python2, python2.7, python3,
// python3.11, python3.13t, python3.11d, python3.6m, python3.6dm ... (ABI flags d, m, u,
// t each at most once, only after a version). Not python-config, python3.11-config,
// pythonw, python3.11.py, ... A trailing " (deleted)" is ignored.
bool isPythonBinaryPath(std::string_view path);

// The basename of a shared libpython with an interpreter in it: libpython2.7.so.1.0,
// libpython3.11.so.1.0, libpython3.6m.so.1.0, libpython3.13t.so, libpython3.12.so ...
// It needs major.minor: libpython3.so (the stable-ABI shim, which only forwards to the
// real library and has no interpreter state) is NOT a match; neither is a static
// libpython3.11.a. A trailing " (deleted)" is ignored.
bool isLibPythonPath(std::string_view path);

// The modules of `pid` whose maps path satisfies `wanted`: one per file (the mappings
// with the same path and inode are grouped), opened through targetFilePath, with the
// bias computed from the mapping with the lowest file offset (normally offset 0).
// Anonymous and pseudo ([heap], ...) mappings are never passed to `wanted`.
// A file that cannot be opened or parsed is left out; when `skipped` is given, one line
// per such file ("path: reason") is appended to it. A PermissionDenied FatalError from
// opening is rethrown, since it means the target is not readable by us at all.
std::vector<LoadedModule> findModules(pid_t pid, const std::vector<MemoryMapping>& maps,
                                      const std::function<bool(std::string_view path)>& wanted,
                                      std::vector<std::string>* skipped = nullptr);
// The same over any mappings (a core's): `filePath` says where to open a mapping's file
// ("" when there is none: the module is then skipped).
std::vector<LoadedModule> findModules(const std::vector<MemoryMapping>& maps,
                                      const std::function<std::string(const MemoryMapping&)>& filePath,
                                      const std::function<bool(std::string_view path)>& wanted,
                                      std::vector<std::string>* skipped = nullptr);

// The module of the file /proc/PID/exe points at (matched by inode, else by path),
// or nullopt when it is not mapped or cannot be opened. Same error policy as findModules.
std::optional<LoadedModule> findExecutableModule(pid_t pid, const std::vector<MemoryMapping>& maps,
                                                 std::vector<std::string>* skipped = nullptr);

}  // namespace pyspy
