#include "pyspy/elf/core_modules.h"

#include <elf.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include <fmt/format.h>

#include "pyspy/common/fd.h"
#include "pyspy/elf/build_id.h"

namespace pyspy {

namespace {

constexpr std::string_view kDeleted = " (deleted)";

std::string withoutDeleted(std::string path) {
    if (std::string_view(path).ends_with(kDeleted)) path.resize(path.size() - kDeleted.size());
    return path;
}

std::string baseName(const std::string& path) {
    const auto slash = path.rfind('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

bool isRegularFile(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// A file read as if it were mapped at address 0 in one piece: enough for the headers
// and notes of the first segment, where the build id is, at the same offsets as in a
// mapping (buildIdInMemory turns p_vaddr into an offset from the first PT_LOAD).
class FileBytes : public ProcessMemory {
  public:
    explicit FileBytes(const std::string& path) : fd_(::open(path.c_str(), O_RDONLY | O_CLOEXEC)) {}
    bool valid() const { return fd_.valid(); }
    Status read(std::uint64_t address, void* out, std::size_t size) const override {
        const auto got = ::pread(fd_.get(), out, size, static_cast<off_t>(address));
        if (got != static_cast<ssize_t>(size))
            return Err{ReadError{ReadErrorKind::Fault, address, "beyond the end of the file"}};
        return {};
    }

  private:
    FD fd_;
};

}  // namespace

std::optional<std::string> buildIdOfFile(const std::string& path) {
    const FileBytes file(path);
    if (!file.valid()) return std::nullopt;
    return buildIdInMemory(file, 0);
}

CoreModuleFiles::CoreModuleFiles(const CoreFile& core, const ProcessMemory& coreMemory, CoreFileSearch search)
    : core_(core), coreMemory_(coreMemory), search_(std::move(search)) {}

std::string CoreModuleFiles::locate(const std::string& corePath) const {
    auto it = resolved_.find(corePath);
    if (it == resolved_.end()) it = resolved_.emplace(corePath, resolve(corePath)).first;
    return it->second.file;
}

CoreFileLocator CoreModuleFiles::locator() const {
    return [this](const std::string& corePath) { return locate(corePath); };
}

std::optional<std::string> CoreModuleFiles::problem(const std::string& corePath) const {
    locate(corePath);
    return resolved_.at(corePath).problem;
}

std::vector<std::string> CoreModuleFiles::problems() const {
    std::vector<std::string> out;
    for (const auto& [path, resolution] : resolved_) {
        if (resolution.problem) out.push_back(*resolution.problem);
    }
    return out;
}

CoreModuleFiles::Resolution CoreModuleFiles::resolve(const std::string& corePath) const {
    // What the core kept of the file: its headers at the mapping of file offset 0.
    std::optional<std::uint64_t> headerAt;
    for (const auto& mapping : core_.fileMappings()) {
        if (mapping.path == corePath && mapping.fileOffset == 0) {
            headerAt = mapping.start;
            break;
        }
    }
    bool elf = false;
    std::optional<std::string> wanted;
    if (headerAt) {
        char magic[SELFMAG];
        elf = coreMemory_.read(*headerAt, magic, SELFMAG).ok() && std::memcmp(magic, ELFMAG, SELFMAG) == 0;
        if (elf) wanted = buildIdInMemory(coreMemory_, *headerAt);
    }
    const std::string plain = withoutDeleted(corePath);
    std::vector<std::string> candidates;
    if (!search_.executable.empty() && plain == withoutDeleted(core_.executablePath())) {
        candidates.push_back(search_.executable);  // said explicitly: the only one tried
    } else {
        for (const auto& dir : search_.libSearchPath) candidates.push_back(dir + "/" + baseName(plain));
        candidates.push_back(plain);
    }

    std::vector<std::string> tried;
    for (const auto& candidate : candidates) {
        if (!isRegularFile(candidate)) {
            tried.push_back(candidate + ": not found");
            continue;
        }
        if (!wanted) return {candidate, std::nullopt};  // nothing to check it against
        const auto id = buildIdOfFile(candidate);
        if (id == wanted) return {candidate, std::nullopt};
        tried.push_back(fmt::format("{}: build id {}", candidate, id.value_or("none")));
    }
    if (!elf && !wanted) return {"", std::nullopt};  // a data file: its pages are simply unknown
    std::string why;
    for (const auto& line : tried) why += (why.empty() ? "" : "; ") + line;
    return {"", wanted ? fmt::format("{}: no file matches the core's build id {} ({})", corePath, *wanted, why)
                       : fmt::format("{}: not found ({})", corePath, why)};
}

}  // namespace pyspy
