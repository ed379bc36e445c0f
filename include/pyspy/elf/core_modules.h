// CoreModuleFiles: which file on this machine stands for each file a core names. A core
// holds the process's writable memory but, of its read-only file mappings (code, and
// constants such as a module's symbol tables), only the first page: the rest is read
// from the files, which must be the very ones the process ran — checked by build id
// against the copy of the headers the core keeps.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "pyspy/process/core_file.h"

namespace pyspy {

struct CoreFileSearch {
    std::string executable;                  // --executable: the file to use for the core's executable
    std::vector<std::string> libSearchPath;  // --lib-search-path: directories tried first, by base name
};

class CoreModuleFiles {
  public:
    // `coreMemory` reads the core alone (its locator finds no file): where the build
    // ids the core kept are read from. Both must outlive this object.
    CoreModuleFiles(const CoreFile& core, const ProcessMemory& coreMemory, CoreFileSearch search);

    // The local file for `corePath` (as in NT_FILE), or "" when none is found or none
    // matches the core's build id. For the executable with --executable, that file alone;
    // else, first match wins, each --lib-search-path directory + the base name, then the
    // path itself.
    // Resolved on first use and cached.
    std::string locate(const std::string& corePath) const;
    // A CoreFileLocator over this object (which must outlive it).
    CoreFileLocator locator() const;

    // Why a file the core names has no local file, for the files asked about so far:
    // "PATH: not found (tried …)", "PATH: build id differs from the core's (…)". Only
    // ELF files (the ones whose build id the core kept or whose headers it holds) are
    // reported; a missing data file (a locale archive) is not a problem.
    std::vector<std::string> problems() const;
    // The problem of one file, or nullopt.
    std::optional<std::string> problem(const std::string& corePath) const;

  private:
    struct Resolution {
        std::string file;                    // "" when none
        std::optional<std::string> problem;  // set when an ELF file has no trusted local file
    };
    Resolution resolve(const std::string& corePath) const;

    const CoreFile& core_;
    const ProcessMemory& coreMemory_;
    CoreFileSearch search_;
    mutable std::map<std::string, Resolution> resolved_;
};

// The build id of the ELF file at `path` (its PT_NOTE segments, read with pread), or
// nullopt when it is not an ELF file or has none.
std::optional<std::string> buildIdOfFile(const std::string& path);

}  // namespace pyspy
