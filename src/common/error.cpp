#include "pyspy/common/error.h"

#include <fmt/format.h>

#include "pyspy/common/result.h"

namespace pyspy {

int exitCode(ErrorKind kind) { return static_cast<int>(kind); }

const char* toString(ErrorKind kind) {
    switch (kind) {
        case ErrorKind::Internal: return "internal error";
        case ErrorKind::Usage: return "usage error";
        case ErrorKind::NoSuchProcess: return "no such process";
        case ErrorKind::PermissionDenied: return "permission denied";
        case ErrorKind::NotPython: return "not a Python process";
        case ErrorKind::UnsupportedVersion: return "unsupported Python version";
        case ErrorKind::TargetExited: return "target exited";
        case ErrorKind::Timeout: return "timed out";
        case ErrorKind::Io: return "output error";
        case ErrorKind::BadCore: return "bad core file";
    }
    return "error";
}

const char* toString(ReadErrorKind kind) {
    switch (kind) {
        case ReadErrorKind::Fault: return "bad address";
        case ReadErrorKind::ProcessGone: return "process gone";
        case ReadErrorKind::Permission: return "permission denied";
        case ReadErrorKind::Invalid: return "invalid data";
        case ReadErrorKind::Unsupported: return "unsupported";
    }
    return "error";
}

std::string ReadError::describe() const {
    std::string out = toString(kind);
    if (!what.empty()) out += fmt::format(": {}", what);
    if (address != 0) out += fmt::format(" at 0x{:x}", address);
    return out;
}

}  // namespace pyspy
