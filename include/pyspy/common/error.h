// Fatal errors: setup failures that end the command. Thrown as FatalError with a
// typed kind, caught once in main, printed as one line, mapped to an exit code.
// Recoverable failures while sampling use Result<T> (result.h) instead.
#pragma once

#include <array>
#include <stdexcept>
#include <string>

namespace pyspy {

// Exit codes are part of the command-line contract (README "Exit codes").
enum class ErrorKind : int {
    Internal = 1,            // a bug or an unexpected system failure
    Usage = 2,               // bad command line
    NoSuchProcess = 3,       // the pid does not exist (or is a zombie)
    PermissionDenied = 4,    // cannot read or ptrace the target
    NotPython = 5,           // no CPython interpreter found in the target
    UnsupportedVersion = 6,  // a CPython version we cannot read
    TargetExited = 7,        // the target exited while we were working
    Timeout = 8,             // the operation gave up after its time bound
    Io = 9,                  // could not write an output file
    BadCore = 10,            // dump --core: not a core file, a truncated one, or files that do not match it
};

// Every ErrorKind, by exit code (the man page lists them).
inline constexpr std::array kErrorKinds{
    ErrorKind::Internal,         ErrorKind::Usage,     ErrorKind::NoSuchProcess,
    ErrorKind::PermissionDenied, ErrorKind::NotPython, ErrorKind::UnsupportedVersion,
    ErrorKind::TargetExited,     ErrorKind::Timeout,   ErrorKind::Io,
    ErrorKind::BadCore};

int exitCode(ErrorKind kind);
const char* toString(ErrorKind kind);

class FatalError : public std::runtime_error {
  public:
    FatalError(ErrorKind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
    ErrorKind kind() const { return kind_; }

  private:
    ErrorKind kind_;
};

}  // namespace pyspy
