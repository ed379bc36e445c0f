// LoadedModule and module discovery: group a process's file mappings by file, open
// each wanted file once and compute its load bias.
#include "pyspy/elf/module.h"

#include <elf.h>
#include <sys/stat.h>

#include <algorithm>
#include <limits>
#include <map>

#include "pyspy/common/error.h"
#include "pyspy/process/process.h"

namespace pyspy {

namespace {

constexpr std::string_view kDeleted = " (deleted)";

std::string_view basename(std::string_view path) {
    if (path.ends_with(kDeleted)) path.remove_suffix(kDeleted.size());
    if (const auto slash = path.rfind('/'); slash != std::string_view::npos) path.remove_prefix(slash + 1);
    return path;
}

bool isDigit(char c) {
    return c >= '0' && c <= '9';
}

// Consumes one or more digits from the front of `s`.
bool eatDigits(std::string_view& s) {
    std::size_t n = 0;
    while (n < s.size() && isDigit(s[n])) ++n;
    s.remove_prefix(n);
    return n > 0;
}

// Consumes ABI flags (each of d, m, u, t at most once) from the front of `s`.
void eatAbiFlags(std::string_view& s) {
    std::string used;
    while (!s.empty() && std::string_view("dmut").find(s.front()) != std::string_view::npos &&
           used.find(s.front()) == std::string::npos) {
        used.push_back(s.front());
        s.remove_prefix(1);
    }
}

}  // namespace

std::optional<std::uint64_t> LoadedModule::symbolAddress(std::string_view name) const {
    if (!elf) return std::nullopt;
    const auto symbol = elf->findSymbol(name);
    if (!symbol) return std::nullopt;
    return symbol->value + bias;
}

std::optional<ElfSection> LoadedModule::section(std::string_view name) const {
    if (!elf) return std::nullopt;
    auto found = elf->findSection(name);
    if (!found) return std::nullopt;
    if ((found->flags & SHF_ALLOC) != 0) {
        found->address += bias;
    } else {
        found->address = 0;
    }
    return found;
}

std::optional<std::pair<std::uint64_t, std::uint64_t>> LoadedModule::sectionRange(std::string_view name) const {
    const auto found = section(name);
    if (!found || (found->flags & SHF_ALLOC) == 0) return std::nullopt;
    if (found->address > std::numeric_limits<std::uint64_t>::max() - found->size) return std::nullopt;
    return std::make_pair(found->address, found->address + found->size);
}

bool isPythonBinaryPath(std::string_view path) {
    std::string_view name = basename(path);
    if (!name.starts_with("python")) return false;
    name.remove_prefix(6);
    if (name.empty()) return true;  // "python"
    if (!eatDigits(name)) return false;
    if (!name.empty() && name.front() == '.') {
        name.remove_prefix(1);
        if (!eatDigits(name)) return false;
    }
    eatAbiFlags(name);
    return name.empty();
}

bool isLibPythonPath(std::string_view path) {
    std::string_view name = basename(path);
    if (!name.starts_with("libpython")) return false;
    name.remove_prefix(9);
    if (!eatDigits(name)) return false;
    if (name.empty() || name.front() != '.') return false;
    name.remove_prefix(1);
    if (!eatDigits(name)) return false;  // major.minor required: not libpython3.so
    eatAbiFlags(name);
    if (!name.starts_with(".so")) return false;
    name.remove_prefix(3);
    // Optional ".N" version components: .so, .so.1, .so.1.0
    while (!name.empty()) {
        if (name.front() != '.') return false;
        name.remove_prefix(1);
        if (!eatDigits(name)) return false;
    }
    return true;
}

std::vector<LoadedModule> findModules(pid_t pid, const std::vector<MemoryMapping>& maps,
                                      const std::function<bool(std::string_view path)>& wanted,
                                      std::vector<std::string>* skipped) {
    return findModules(
        maps, [pid](const MemoryMapping& mapping) { return targetFilePath(pid, mapping); }, wanted, skipped);
}

std::vector<LoadedModule> findModules(const std::vector<MemoryMapping>& maps,
                                      const std::function<std::string(const MemoryMapping&)>& filePath,
                                      const std::function<bool(std::string_view path)>& wanted,
                                      std::vector<std::string>* skipped) {
    // Group by (path, inode), keeping first-seen order for a stable result.
    std::vector<std::vector<const MemoryMapping*>> groups;
    std::map<std::pair<std::string, std::uint64_t>, std::size_t> groupOf;
    for (const auto& mapping : maps) {
        if (mapping.path.empty() || mapping.path.front() != '/') continue;
        if (!wanted(mapping.path)) continue;
        const auto key = std::make_pair(mapping.path, mapping.inode);
        auto [it, inserted] = groupOf.try_emplace(key, groups.size());
        if (inserted) groups.emplace_back();
        groups[it->second].push_back(&mapping);
    }

    std::vector<LoadedModule> modules;
    for (auto& group : groups) {
        std::stable_sort(group.begin(), group.end(),
                         [](const MemoryMapping* a, const MemoryMapping* b) { return a->offset < b->offset; });
        const MemoryMapping& first = *group.front();
        LoadedModule module;
        module.path = first.path;
        module.start = std::numeric_limits<std::uint64_t>::max();
        for (const MemoryMapping* mapping : group) {
            module.start = std::min(module.start, mapping->start);
            module.end = std::max(module.end, mapping->end);
        }
        // Open through the first mapping whose file we can reach (map_files needs
        // privileges; /proc/PID/root works across mount namespaces).
        try {
            module.openPath = filePath(first);
            if (module.openPath.empty()) throw FatalError(ErrorKind::NotPython, first.path + ": no file to open");
            module.elf = std::make_shared<const ElfFile>(ElfFile::open(module.openPath));
        } catch (const FatalError& error) {
            if (error.kind() == ErrorKind::PermissionDenied) throw;
            if (skipped != nullptr) skipped->push_back(first.path + ": " + error.what());
            continue;
        }
        std::optional<std::uint64_t> bias;
        for (const MemoryMapping* mapping : group) {  // lowest offset first
            bias = module.elf->loadBias(mapping->start, mapping->offset);
            if (bias) break;
        }
        if (!bias) {
            if (skipped != nullptr) skipped->push_back(first.path + ": no PT_LOAD segment matches its mappings");
            continue;
        }
        module.bias = *bias;
        modules.push_back(std::move(module));
    }
    return modules;
}

std::optional<LoadedModule> findExecutableModule(pid_t pid, const std::vector<MemoryMapping>& maps,
                                                 std::vector<std::string>* skipped) {
    const std::string exePath = readExecutablePath(pid);
    std::optional<std::uint64_t> exeInode;
    struct stat st {};
    if (::stat(("/proc/" + std::to_string(pid) + "/exe").c_str(), &st) == 0) {
        exeInode = static_cast<std::uint64_t>(st.st_ino);
    }
    // Prefer the exact path (as the target sees it); fall back to the inode when the
    // path differs (e.g. the link was read in another mount namespace).
    std::string chosen;
    for (const auto& mapping : maps) {
        if (!exePath.empty() && mapping.path == exePath) {
            chosen = mapping.path;
            break;
        }
    }
    if (chosen.empty() && exeInode) {
        for (const auto& mapping : maps) {
            if (!mapping.path.empty() && mapping.path.front() == '/' && mapping.inode == *exeInode) {
                chosen = mapping.path;
                break;
            }
        }
    }
    if (chosen.empty()) return std::nullopt;
    auto modules = findModules(
        pid, maps, [&](std::string_view path) { return path == chosen; }, skipped);
    if (modules.empty()) return std::nullopt;
    // Several inodes under one path (a replaced file): prefer the exe's inode.
    if (exeInode) {
        for (auto& module : modules) {
            for (const auto& mapping : maps) {
                if (mapping.path == module.path && mapping.start == module.start && mapping.inode == *exeInode) {
                    return std::move(module);
                }
            }
        }
    }
    return std::move(modules.front());
}

}  // namespace pyspy
