// Discovery of the interpreter inside a live process. See interpreter.h for the
// contract and docs/architecture.md ("The read path") for the order of the steps.
//
// Everything read from the target or from its files is untrusted: every scan is
// bounded and every candidate is validated before it is accepted.
#include "pyspy/python/interpreter.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <string_view>
#include <tuple>
#include <utility>

#include <fmt/format.h>

#include "pyspy/common/error.h"
#include "pyspy/elf/module.h"
#include "pyspy/process/process.h"
#include "pyspy/python/debug_offsets.h"

namespace pyspy {

namespace {

constexpr std::size_t kMaxThreadsToValidate = 4096;
constexpr std::size_t kMaxScanBytes = std::size_t{64} << 20;  // per section
constexpr std::size_t kMaxScanCandidates = 100000;            // validations per locate
constexpr std::size_t kMaxRodataBytes = std::size_t{64} << 20;

std::uint64_t at(std::uint64_t base, std::int64_t offset) {
    return base + static_cast<std::uint64_t>(offset);
}

std::string baseName(std::string_view path) {
    if (path.ends_with(" (deleted)")) path.remove_suffix(std::string_view(" (deleted)").size());
    const auto slash = path.rfind('/');
    return std::string(slash == std::string_view::npos ? path : path.substr(slash + 1));
}

std::string supportedList() {
    std::string out;
    for (const auto& layout : generatedLayouts()) {
        if (!out.empty()) out += ", ";
        out += fmt::format("{}.{}{}", layout.major, layout.minor, layout.free_threaded != 0 ? "t" : "");
    }
    return out.empty() ? "none (layout tables missing from this build)" : out;
}

// "python3.11", "libpython3.11.so.1.0", "python2.7" -> 3.11 / 2.7; nothing for "python".
std::optional<PythonVersion> versionFromFileName(std::string_view path) {
    const std::string name = baseName(path);
    const auto pos = name.find("python");
    if (pos == std::string::npos) return std::nullopt;
    const std::string_view rest = std::string_view(name).substr(pos + 6);
    if (rest.empty() || !std::isdigit(static_cast<unsigned char>(rest[0]))) return std::nullopt;
    auto version = parsePythonVersion(rest);
    if (!version || version->major < 2 || version->major > 3) return std::nullopt;
    // "python3" alone parses as 3.0: not a minor version.
    if (rest.size() < 3 || rest[1] != '.') return std::nullopt;
    version->micro = 0;
    return version;
}

// Py_VERSION strings ("3.9.18", "2.7.18+", "3.13.0rc1") among the NUL-terminated
// strings of .rodata. The compiler may merge a literal into the tail of a longer one,
// so a candidate is any run that ends at a NUL and starts after a non-version char.
std::vector<PythonVersion> versionStringsIn(const std::vector<std::uint8_t>& data) {
    std::vector<PythonVersion> found;
    const auto isVersionChar = [](std::uint8_t c) { return std::isalnum(c) || c == '.' || c == '+'; };
    std::size_t i = 0;
    while (i < data.size() && found.size() < 1000) {
        const auto nul = std::find(data.begin() + static_cast<std::ptrdiff_t>(i), data.end(), 0);
        const std::size_t end = static_cast<std::size_t>(nul - data.begin());
        std::size_t start = end;
        while (start > i && end - start < 16 && isVersionChar(data[start - 1])) --start;
        // Must start with "2." or "3." and be preceded by a non-version character.
        if (end - start >= 5 && (data[start] == '2' || data[start] == '3') && data[start + 1] == '.') {
            const std::string_view text(reinterpret_cast<const char*>(data.data()) + start, end - start);
            std::size_t dots = 0;
            for (char c : text) dots += c == '.' ? 1 : 0;
            if (dots == 2 && std::isdigit(static_cast<unsigned char>(text[2]))) {
                if (auto v = parsePythonVersion(text)) found.push_back(*v);
            }
        }
        i = end + 1;
    }
    return found;
}

struct VersionGuess {
    PythonVersion version;
    std::string source;
};

std::optional<VersionGuess> detectVersion(const LoadedModule& module) {
    const ElfFile& elf = *module.elf;
    if (auto symbol = elf.findSymbol("Py_Version"); symbol && symbol->size >= 4) {
        if (auto bytes = elf.readAtAddress(symbol->value, 4)) {
            std::uint32_t hex = 0;
            std::memcpy(&hex, bytes->data(), 4);
            const PythonVersion v = versionFromHex(hex);
            if (v.major == 3 && v.minor >= 11) return VersionGuess{v, "Py_Version"};
        }
    }
    const auto fromName = versionFromFileName(module.path);
    if (auto rodata = elf.findSection(".rodata"); rodata && rodata->size <= kMaxRodataBytes) {
        if (auto bytes = elf.readAtAddress(rodata->address, rodata->size)) {
            std::map<std::pair<int, int>, std::pair<int, PythonVersion>> counts;
            for (const auto& v : versionStringsIn(*bytes)) {
                if (fromName && (v.major != fromName->major || v.minor != fromName->minor)) continue;
                if (v.major == 2 && v.minor != 7) continue;
                auto& entry = counts[{v.major, v.minor}];
                ++entry.first;
                entry.second = v;
            }
            if (!counts.empty()) {
                const auto best = std::ranges::max_element(
                    counts, [](const auto& a, const auto& b) { return a.second.first < b.second.first; });
                return VersionGuess{best->second.second, "version string in .rodata"};
            }
        }
    }
    if (fromName) return VersionGuess{*fromName, "file name"};
    return std::nullopt;
}

bool hasInterpreterSymbols(const ElfFile& elf) {
    for (const char* name : {"_PyRuntime", "interp_head", "PyEval_EvalFrameEx", "_PyEval_EvalFrameDefault",
                             "Py_Initialize", "PyCode_Type"}) {
        if (elf.findSymbol(name)) return true;
    }
    return false;
}

// The module that holds the interpreter: a libpython when one is mapped and has
// interpreter symbols, else the executable (a static build), else any candidate.
const LoadedModule* chooseModule(const std::vector<LoadedModule>& modules, const std::string& exePath) {
    const LoadedModule* exe = nullptr;
    for (const auto& m : modules) {
        if (isLibPythonPath(m.path) && hasInterpreterSymbols(*m.elf)) return &m;
        if (m.path == exePath) exe = &m;
    }
    if (exe && hasInterpreterSymbols(*exe->elf)) return exe;
    for (const auto& m : modules) {
        if (isLibPythonPath(m.path)) return &m;  // stripped libpython: found by scanning
    }
    if (exe && (isPythonBinaryPath(exe->path) || versionFromFileName(exe->path))) return exe;
    for (const auto& m : modules) {
        if (isPythonBinaryPath(m.path)) return &m;
    }
    return nullptr;
}

void fillTypes(const LoadedModule& module, const PythonVersion& version, TypeAddresses& types) {
    const auto symbol = [&](const char* name) { return module.symbolAddress(name).value_or(0); };
    if (version.major == 2) {
        types.str = symbol("PyString_Type");
        types.bytes = types.str;
        types.unicode = symbol("PyUnicode_Type");
        types.integer = symbol("PyInt_Type");
        types.long2 = symbol("PyLong_Type");
    } else {
        types.str = symbol("PyUnicode_Type");
        types.bytes = symbol("PyBytes_Type");
        types.integer = symbol("PyLong_Type");
    }
    types.dict = symbol("PyDict_Type");
    types.code = symbol("PyCode_Type");
    types.module = symbol("PyModule_Type");
    types.frame = symbol("PyFrame_Type");
}

[[noreturn]] void throwExited(const TargetImage& image) {
    throw FatalError(ErrorKind::TargetExited, fmt::format("{} exited", image.name));
}

[[noreturn]] void failRead(const TargetImage& image, const std::string& what, const ReadError& error) {
    if (!image.alive()) throwExited(image);
    if (error.kind == ReadErrorKind::Permission) {
        throw FatalError(ErrorKind::PermissionDenied,
                         fmt::format("cannot read the memory of {}: run as the same user or root, or grant "
                                     "CAP_SYS_PTRACE",
                                     image.name));
    }
    throw FatalError(ErrorKind::NotPython, fmt::format("{}: {}: {}", image.name, what, error.describe()));
}

bool inWritableMapping(const std::vector<MemoryMapping>& maps, std::uint64_t address) {
    // maps is sorted by start address (the kernel lists it so).
    auto it = std::upper_bound(maps.begin(), maps.end(), address,
                               [](std::uint64_t a, const MemoryMapping& m) { return a < m.start; });
    if (it == maps.begin()) return false;
    --it;
    return it->contains(address) && it->readable && it->writable;
}

struct ScanHit {
    std::uint64_t slot = 0;         // where the pointer was found
    std::uint64_t interpreter = 0;  // its value, a validated PyInterpreterState*
    bool followedBySame = false;    // the next word holds the same pointer (interpreters.head, .main)
};

// Scans the module's .PyRuntime, .data and .bss for pointers to a valid interpreter.
std::vector<ScanHit> scanForInterpreter(const ProcessMemory& memory, const PyLayout& layout, const LoadedModule& module,
                                        const std::vector<MemoryMapping>& maps) {
    std::vector<ScanHit> hits;
    std::set<std::uint64_t> rejected;
    std::size_t validations = 0;
    for (const char* name : {".PyRuntime", ".data", ".bss"}) {
        const auto range = module.sectionRange(name);
        if (!range || range->second <= range->first) continue;
        const std::uint64_t begin = (range->first + 7) & ~std::uint64_t{7};
        const std::size_t size = std::min<std::size_t>(range->second - begin, kMaxScanBytes);
        auto bytes = readBytes(memory, begin, size);
        if (!bytes.ok()) continue;
        const auto& data = bytes.value();
        const std::size_t words = data.size() / 8;
        for (std::size_t i = 0; i < words; ++i) {
            std::uint64_t value = 0;
            std::memcpy(&value, data.data() + i * 8, 8);
            if (value == 0 || (value & 7) != 0 || rejected.count(value) != 0) continue;
            if (!inWritableMapping(maps, value)) continue;
            if (validations >= kMaxScanCandidates) return hits;
            ++validations;
            if (!validateInterpreter(memory, layout, value)) {
                rejected.insert(value);
                continue;
            }
            std::uint64_t next = 0;
            if (i + 1 < words) std::memcpy(&next, data.data() + (i + 1) * 8, 8);
            hits.push_back(ScanHit{begin + i * 8, value, next == value});
            if (hits.size() >= 16) return hits;
        }
    }
    return hits;
}

std::optional<ScanHit> bestHit(const std::vector<ScanHit>& hits) {
    for (const auto& hit : hits) {
        if (hit.followedBySame) return hit;
    }
    if (!hits.empty()) return hits.front();
    return std::nullopt;
}

}  // namespace

bool validateInterpreter(const ProcessMemory& memory, const PyLayout& layout, std::uint64_t interp) {
    if (interp == 0 || layout.interp_tstate_head == kAbsent || layout.tstate_interp == kAbsent ||
        layout.tstate_next == kAbsent) {
        return false;
    }
    auto tstate = readPointer(memory, at(interp, layout.interp_tstate_head));
    if (!tstate.ok() || tstate.value() == 0) return false;  // a running interpreter has a thread
    std::set<std::uint64_t> seen;
    std::uint64_t current = tstate.value();
    while (current != 0) {
        if (seen.size() >= kMaxThreadsToValidate || !seen.insert(current).second) return false;
        auto owner = readPointer(memory, at(current, layout.tstate_interp));
        if (!owner.ok() || owner.value() != interp) return false;
        auto next = readPointer(memory, at(current, layout.tstate_next));
        if (!next.ok()) return false;
        current = next.value();
    }
    return true;
}

TargetImage TargetImage::live(pid_t pid) {
    TargetImage image;
    image.pid = pid;
    image.name = fmt::format("process {}", pid);
    image.maps = readMaps(pid);
    image.executablePath = readExecutablePath(pid);
    image.commandLine = readCommandLine(pid);
    image.filePath = [pid](const MemoryMapping& mapping) { return targetFilePath(pid, mapping); };
    // An exiting process has released its memory (no mappings) before it is a zombie.
    image.alive = [pid] { return processAlive(pid) && !mapsEmpty(pid); };
    return image;
}

PythonTarget locatePython(const TargetImage& image, const ProcessMemory& memory, const LocateOptions& options) {
    PythonTarget target;
    target.pid = image.pid;
    target.maps = image.maps;
    std::string exePath = image.executablePath;
    if (exePath.ends_with(" (deleted)")) exePath.resize(exePath.size() - std::string_view(" (deleted)").size());

    const auto modules = findModules(target.maps, image.filePath, [&](std::string_view path) {
        std::string_view plain = path;
        if (plain.ends_with(" (deleted)")) plain.remove_suffix(std::string_view(" (deleted)").size());
        return isLibPythonPath(plain) || isPythonBinaryPath(plain) || plain == exePath;
    });
    const std::string comm = baseName(exePath.empty() ? image.commandLine : exePath);
    const LoadedModule* module = chooseModule(modules, exePath);
    if (module == nullptr) {
        if (target.maps.empty() || !image.alive()) throwExited(image);
        throw FatalError(ErrorKind::NotPython,
                         fmt::format("{} ({}) is not a Python process: no python binary or libpython is mapped "
                                     "into it",
                                     image.name, comm));
    }
    for (const auto& m : modules) {
        if (m.path == exePath) target.executable = m.path;
        if (isLibPythonPath(m.path)) target.libpython = m.path;
    }
    if (target.executable.empty()) target.executable = exePath;
    if (!isLibPythonPath(module->path)) target.libpython.clear();

    // --- version ---------------------------------------------------------------
    const auto guess = detectVersion(*module);
    if (!guess) {
        throw FatalError(ErrorKind::NotPython,
                         fmt::format("{} ({}): cannot tell the Python version of {} (no Py_Version symbol, no "
                                     "version string, no version in the file name)",
                                     image.name, comm, module->path));
    }
    target.version = guess->version;
    // The version's own table (a free-threaded build's is chosen once its debug offsets
    // say it is one). A version newer than every table may still be read through its
    // _Py_DebugOffsets, on top of the newest table: accepted below only if they validate.
    const PyLayout* table = findGeneratedLayout(target.version.major, target.version.minor);
    bool newerThanTables = false;
    if (table == nullptr) {
        const PyLayout* newest = newestGeneratedLayout();
        if (newest != nullptr && target.version.major == newest->major && target.version.minor > newest->minor &&
            newest->runtime_debug_offsets != kAbsent) {
            table = newest;
            newerThanTables = true;
        }
    }
    if (table == nullptr) {
        throw FatalError(ErrorKind::UnsupportedVersion,
                         fmt::format("{} runs Python {}, which pyspy-cpp does not support (supported: {})", image.name,
                                     target.version.toString(), supportedList()));
    }
    // The free-threaded counterpart of `table` (the same minor version), if there is one.
    const PyLayout* freeThreadedTable = findGeneratedLayout(table->major, table->minor, true);
    target.layout = *table;
    target.layoutSource = fmt::format("generated table {}.{}", table->major, table->minor);
    const bool useSymbols = !options.ignoreSymbols;
    fillTypes(*module, target.version, target.types);
    if (!useSymbols) target.types = TypeAddresses{};

    // --- the runtime (3.7+) -------------------------------------------------------
    const bool hasRuntime = target.layout.runtime_interpreters_head != kAbsent;
    if (hasRuntime) {
        if (useSymbols) target.runtime = module->symbolAddress("_PyRuntime").value_or(0);
        if (target.runtime == 0 && useSymbols) {
            // 3.11+ keep _PyRuntime in a section of its own, which it fills from the start.
            if (auto range = module->sectionRange(".PyRuntime"); range && range->second > range->first) {
                target.runtime = range->first;
            }
        }
    } else if (useSymbols) {
        target.interpHeadVar = module->symbolAddress("interp_head").value_or(0);
        target.tstateCurrentVar = module->symbolAddress("_PyThreadState_Current").value_or(0);
        // Statics (local symbols): accepted only with the size their C type has, so an
        // unrelated symbol of the same name is not taken for them.
        const auto staticOf = [&](std::string_view name, std::uint64_t minSize, std::uint64_t maxSize) {
            const auto symbol = module->elf ? module->elf->findSymbol(name) : std::nullopt;
            if (!symbol || symbol->size < minSize || symbol->size > maxSize)
                return std::pair<std::uint64_t, std::uint64_t>{};
            return std::pair{symbol->value + module->bias, symbol->size};
        };
        target.gcCollectingVar = staticOf("collecting", 4, 4).first;
        std::tie(target.gilCondVar, target.gilCondSize) = staticOf("gil_cond", 32, 64);
        std::tie(target.gilMutexVar, target.gilMutexSize) = staticOf("gil_mutex", 32, 64);
        std::tie(target.gilSwitchCondVar, target.gilSwitchCondSize) = staticOf("switch_cond", 32, 64);
        std::tie(target.gilSwitchMutexVar, target.gilSwitchMutexSize) = staticOf("switch_mutex", 32, 64);
        target.gilLockVar = staticOf("interpreter_lock", 8, 8).first;
    }

    // --- _Py_DebugOffsets (3.13+): the target's own description of its structs -----
    // Read with the table's description of the struct (`table`, the format); laid over
    // the table for the build the offsets name (free-threaded or not).
    bool offsetsApplied = false;
    std::string offsetsError;
    const auto applyTargetOffsets = [&] {
        if (target.runtime == 0 || table->runtime_debug_offsets == kAbsent) return;
        auto offsets = readDebugOffsets(memory, target.runtime, *table);
        if (!offsets.ok()) {
            if (!image.alive()) throwExited(image);
            offsetsError = offsets.error().describe();
            return;  // keep the generated table; the interpreter check below still applies
        }
        const PythonVersion fromOffsets = versionFromHex(static_cast<std::uint32_t>(offsets.value().version));
        if (fromOffsets.major != target.version.major || fromOffsets.minor != target.version.minor) {
            throw FatalError(ErrorKind::NotPython,
                             fmt::format("{}: _Py_DebugOffsets says Python {} but the {} says {}", image.name,
                                         fromOffsets.toString(), guess->source, target.version.toString()));
        }
        const PyLayout* base = table;
        if (offsets.value().freeThreaded) {
            base = freeThreadedTable;
            if (base == nullptr || base->runtime_debug_offsets == kAbsent) {
                throw FatalError(ErrorKind::UnsupportedVersion,
                                 fmt::format("{} runs a free-threaded Python {}, which pyspy-cpp does not "
                                             "support (supported: {})",
                                             image.name, fromOffsets.toString(), supportedList()));
            }
        }
        target.version = fromOffsets;
        target.layout = applyDebugOffsets(*base, offsets.value());
        target.layoutSource = fmt::format("_Py_DebugOffsets {} + generated table {}.{}{}", fromOffsets.toString(),
                                          base->major, base->minor, base->free_threaded != 0 ? "t" : "");
        if (newerThanTables) {
            target.warning =
                fmt::format("Python {}.{}{} is newer than this pyspy-cpp knows; reading it from its debug offsets",
                            fromOffsets.major, fromOffsets.minor, base->free_threaded != 0 ? "t" : "");
        }
        offsetsApplied = true;
    };
    applyTargetOffsets();
    // From 3.14 on, which table fits (free-threaded or not) is known only from the
    // offsets: a target whose offsets do not validate is refused, never guessed at.
    const bool offsetsRequired = newerThanTables || target.version.atLeast(3, 14);
    const auto requireOffsets = [&] {
        if (!offsetsRequired || offsetsApplied) return;
        const std::string why = offsetsError.empty() ? "_PyRuntime not found" : offsetsError;
        throw FatalError(ErrorKind::UnsupportedVersion,
                         newerThanTables
                             ? fmt::format("{} runs Python {}, newer than any layout table (supported: {}), and "
                                           "its _Py_DebugOffsets could not be used: {}",
                                           image.name, target.version.toString(), supportedList(), why)
                             : fmt::format("{} runs Python {}, whose _Py_DebugOffsets could not be used: {}",
                                           image.name, target.version.toString(), why));
    };
    if (target.runtime != 0 || newerThanTables) requireOffsets();  // a newer version is not scanned for

    // --- the interpreter state ------------------------------------------------------
    const PyLayout& layout = target.layout;
    std::uint64_t interp = 0;
    if (target.runtime != 0) {
        auto head = readPointer(memory, at(target.runtime, layout.runtime_interpreters_head));
        if (!head.ok()) failRead(image, "cannot read _PyRuntime.interpreters.head", head.error());
        interp = head.value();
    } else if (target.interpHeadVar != 0) {
        auto head = readPointer(memory, target.interpHeadVar);
        if (!head.ok()) failRead(image, "cannot read interp_head", head.error());
        interp = head.value();
    }
    if (interp != 0 && validateInterpreter(memory, layout, interp)) {
        target.interpreter = interp;
        return target;
    }
    if (!image.alive()) throwExited(image);

    // Stripped, or symbols ignored: look for a pointer to a valid interpreter, with the
    // table of each build kind of this version (a free-threaded build's thread states
    // are laid out differently).
    auto hit = bestHit(scanForInterpreter(memory, layout, *module, target.maps));
    if (!hit && freeThreadedTable != nullptr) {
        hit = bestHit(scanForInterpreter(memory, *freeThreadedTable, *module, target.maps));
    }
    if (!hit) {
        if (!image.alive()) throwExited(image);
        throw FatalError(ErrorKind::NotPython,
                         fmt::format("{} ({}, Python {}): no initialized interpreter found in {} (it may be "
                                     "starting up or shutting down)",
                                     image.name, comm, target.version.toString(), module->path));
    }
    target.interpreter = hit->interpreter;
    target.foundByScan = true;
    if (hasRuntime) {
        // interpreters.head sits at the same offset in both build kinds' runtime.
        target.runtime = hit->slot - static_cast<std::uint64_t>(layout.runtime_interpreters_head);
        applyTargetOffsets();
        requireOffsets();
        if (!validateInterpreter(memory, target.layout, target.interpreter)) {
            throw FatalError(ErrorKind::NotPython,
                             fmt::format("{}: the interpreter found by scanning does not match its "
                                         "_Py_DebugOffsets",
                                         image.name));
        }
    } else {
        target.interpHeadVar = hit->slot;
    }
    return target;
}

}  // namespace pyspy
