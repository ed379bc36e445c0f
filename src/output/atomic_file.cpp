#include "pyspy/output/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include <fmt/format.h>

#include "pyspy/common/error.h"

namespace pyspy {

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)) {
    // mkstemp in the destination's directory, so the final rename stays on one file system.
    std::string pattern = path_ + ".tmp.XXXXXX";
    const int fd = ::mkstemp(pattern.data());
    if (fd < 0) {
        throw FatalError(ErrorKind::Io, fmt::format("cannot create {}: {}", pattern, std::strerror(errno)));
    }
    // mkstemp makes 0600; give the file the mode a plain create would (0666 & ~umask).
    const mode_t mask = ::umask(0);
    ::umask(mask);
    ::fchmod(fd, 0666 & ~mask);
    ::close(fd);
    tempPath_ = pattern;
    out_.open(tempPath_, std::ios::binary | std::ios::trunc);
    if (!out_) {
        ::unlink(tempPath_.c_str());
        throw FatalError(ErrorKind::Io, fmt::format("cannot write {}", tempPath_));
    }
}

void AtomicFile::checkCreatable(const std::string& path) {
    AtomicFile probe(path);  // removed again, uncommitted, when it goes out of scope
}

AtomicFile::~AtomicFile() {
    if (!committed_) {
        out_.close();
        ::unlink(tempPath_.c_str());
    }
}

void AtomicFile::commit() {
    out_.flush();
    const bool good = static_cast<bool>(out_);
    out_.close();
    if (!good) throw FatalError(ErrorKind::Io, fmt::format("cannot write {}: write failed", path_));
    if (const int fd = ::open(tempPath_.c_str(), O_RDONLY | O_CLOEXEC); fd >= 0) {
        ::fsync(fd);
        ::close(fd);
    }
    if (::rename(tempPath_.c_str(), path_.c_str()) != 0) {
        throw FatalError(ErrorKind::Io, fmt::format("cannot write {}: {}", path_, std::strerror(errno)));
    }
    committed_ = true;
}

}  // namespace pyspy
