#include "pyspy/process/maps.h"

#include <fcntl.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <optional>

#include "pyspy/common/error.h"
#include "pyspy/common/fd.h"

namespace pyspy {

namespace detail {
// Defined in process.cpp: the one wording of "permission denied" for a target.
[[noreturn]] void throwPermissionDenied(pid_t pid);
}  // namespace detail

namespace {

constexpr std::string_view kDeletedSuffix = " (deleted)";

// A cursor over one maps line: hex numbers, words and the spaces between them.
class LineCursor {
  public:
    explicit LineCursor(std::string_view text) : text_(text) {}

    std::optional<std::uint64_t> hex() {
        std::uint64_t value = 0;
        const auto [end, ec] = std::from_chars(text_.data(), text_.data() + text_.size(), value, 16);
        if (ec != std::errc() || end == text_.data()) return std::nullopt;
        text_.remove_prefix(static_cast<std::size_t>(end - text_.data()));
        return value;
    }
    std::optional<std::uint64_t> decimal() {
        std::uint64_t value = 0;
        const auto [end, ec] = std::from_chars(text_.data(), text_.data() + text_.size(), value, 10);
        if (ec != std::errc() || end == text_.data()) return std::nullopt;
        text_.remove_prefix(static_cast<std::size_t>(end - text_.data()));
        return value;
    }
    bool literal(char c) {
        if (text_.empty() || text_.front() != c) return false;
        text_.remove_prefix(1);
        return true;
    }
    // A run of non-space characters (possibly empty).
    std::string_view word() {
        std::size_t n = 0;
        while (n < text_.size() && text_[n] != ' ' && text_[n] != '\t') ++n;
        std::string_view w = text_.substr(0, n);
        text_.remove_prefix(n);
        return w;
    }
    // Skips spaces; true when at least one was skipped.
    bool spaces() {
        std::size_t n = 0;
        while (n < text_.size() && (text_[n] == ' ' || text_[n] == '\t')) ++n;
        text_.remove_prefix(n);
        return n > 0;
    }
    std::string_view rest() const { return text_; }

  private:
    std::string_view text_;
};

// "START-END PERMS OFFSET MAJOR:MINOR INODE [PATH]"; the path is everything after the
// spaces that follow the inode, so it may itself contain spaces.
std::optional<MemoryMapping> parseLine(std::string_view line) {
    LineCursor cursor(line);
    MemoryMapping mapping;
    const auto start = cursor.hex();
    if (!start || !cursor.literal('-')) return std::nullopt;
    const auto end = cursor.hex();
    if (!end || *end < *start || !cursor.spaces()) return std::nullopt;

    const std::string_view perms = cursor.word();
    if (perms.size() != 4 || !cursor.spaces()) return std::nullopt;
    mapping.readable = perms[0] == 'r';
    mapping.writable = perms[1] == 'w';
    mapping.executable = perms[2] == 'x';
    mapping.shared = perms[3] == 's';

    const auto offset = cursor.hex();
    if (!offset || !cursor.spaces()) return std::nullopt;
    if (!cursor.hex() || !cursor.literal(':') || !cursor.hex() || !cursor.spaces()) return std::nullopt;  // device
    const auto inode = cursor.decimal();
    if (!inode) return std::nullopt;
    // The inode is the last field of an anonymous mapping; otherwise spaces then the path.
    if (!cursor.rest().empty() && !cursor.spaces()) return std::nullopt;

    mapping.start = *start;
    mapping.end = *end;
    mapping.offset = *offset;
    mapping.inode = *inode;
    mapping.path = std::string(cursor.rest());
    return mapping;
}

}  // namespace

std::vector<MemoryMapping> parseMaps(std::string_view text) {
    std::vector<MemoryMapping> mappings;
    while (!text.empty()) {
        const std::size_t newline = text.find('\n');
        std::string_view line = text.substr(0, newline);
        text.remove_prefix(newline == std::string_view::npos ? text.size() : newline + 1);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (auto mapping = parseLine(line)) mappings.push_back(std::move(*mapping));
    }
    return mappings;
}

namespace {

std::string mapsPath(pid_t pid) {
    return "/proc/" + std::to_string(pid) + "/maps";
}

}  // namespace

bool mapsEmpty(pid_t pid) {
    const std::string path = mapsPath(pid);
    FD fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) return errno == ENOENT || errno == ESRCH;
    char byte = 0;
    const ssize_t n = ::read(fd.get(), &byte, 1);
    return n == 0 || (n < 0 && errno == ESRCH);
}

std::vector<MemoryMapping> readMaps(pid_t pid) {
    const std::string path = mapsPath(pid);
    FD fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) {
        const int err = errno;
        if (err == ENOENT || err == ESRCH) {
            throw FatalError(ErrorKind::NoSuchProcess, "process " + std::to_string(pid) + " does not exist");
        }
        if (err == EACCES || err == EPERM) detail::throwPermissionDenied(pid);
        throw FatalError(ErrorKind::Internal, "cannot open " + path + ": " + std::strerror(err));
    }
    // The kernel builds the file as it is read; read it to the end in one pass.
    std::string text;
    char buffer[65536];
    for (;;) {
        const ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
        if (n > 0) {
            text.append(buffer, static_cast<std::size_t>(n));
            continue;
        }
        if (n == 0) break;
        if (errno == EINTR) continue;
        const int err = errno;
        if (err == ESRCH) {
            throw FatalError(ErrorKind::NoSuchProcess, "process " + std::to_string(pid) + " exited");
        }
        if (err == EACCES || err == EPERM) detail::throwPermissionDenied(pid);
        throw FatalError(ErrorKind::Internal, "cannot read " + path + ": " + std::strerror(err));
    }
    return parseMaps(text);
}

std::string targetFilePath(pid_t pid, const MemoryMapping& mapping) {
    // Pseudo mappings ([heap], [vdso], ...) and anonymous ones have no file behind them.
    if (mapping.path.empty() || mapping.path.front() != '/') return {};
    char range[64];
    std::snprintf(range, sizeof range, "%llx-%llx", static_cast<unsigned long long>(mapping.start),
                  static_cast<unsigned long long>(mapping.end));
    const std::string proc = "/proc/" + std::to_string(pid);
    std::string mapFile = proc + "/map_files/" + range;
    // map_files needs CAP_SYS_ADMIN (or the same user on newer kernels); probe by opening.
    if (FD probe(::open(mapFile.c_str(), O_RDONLY | O_CLOEXEC)); probe) return mapFile;

    std::string_view path = mapping.path;
    if (path.ends_with(kDeletedSuffix)) path.remove_suffix(kDeletedSuffix.size());
    return proc + "/root" + std::string(path);
}

}  // namespace pyspy
