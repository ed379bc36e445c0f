// Result<T>: the value of an operation that may fail in a way that is normal while
// sampling a live process (a torn read, a thread that exited, garbage memory).
//
// Error policy (docs/error-policy.md):
//  - Recoverable, expected-at-runtime failures travel as Result<T> holding a ReadError.
//    Callers count them, skip a sample or a frame, and carry on.
//  - Fatal setup failures (no such process, permission denied, not Python, unsupported
//    version, bad usage) are thrown as pyspy::FatalError (error.h) and caught in main,
//    which prints one line and exits with the documented code.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <variant>

namespace pyspy {

enum class ReadErrorKind {
    Fault,        // address not mapped / not readable (EFAULT, EIO)
    ProcessGone,  // the target or thread exited (ESRCH)
    Permission,   // EPERM / EACCES
    Invalid,      // memory read fine but does not hold what we expected (bad type, out of bounds)
    Unsupported,  // a feature this target's version or build does not have
};

const char* toString(ReadErrorKind kind);

struct ReadError {
    ReadErrorKind kind = ReadErrorKind::Invalid;
    std::uint64_t address = 0;
    std::string what;  // short, for diagnostics; may be empty

    std::string describe() const;
};

inline ReadError invalid(std::string what, std::uint64_t address = 0) {
    return ReadError{ReadErrorKind::Invalid, address, std::move(what)};
}

// Tag to construct a failed Result: `return Err{invalid("...")};` or `return Err{other.error()};`
struct Err {
    ReadError error;
};

template <typename T>
class [[nodiscard]] Result {
  public:
    Result(T value) : state_(std::in_place_index<0>, std::move(value)) {}  // NOLINT(google-explicit-constructor)
    Result(Err err) : state_(std::in_place_index<1>, std::move(err.error)) {}  // NOLINT(google-explicit-constructor)

    bool ok() const { return state_.index() == 0; }
    explicit operator bool() const { return ok(); }

    T& value() & { return std::get<0>(state_); }
    const T& value() const& { return std::get<0>(state_); }
    T&& value() && { return std::get<0>(std::move(state_)); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }

    const ReadError& error() const { return std::get<1>(state_); }
    Err err() const { return Err{error()}; }

    T valueOr(T fallback) const { return ok() ? value() : std::move(fallback); }

  private:
    std::variant<T, ReadError> state_;
};

template <>
class [[nodiscard]] Result<void> {
  public:
    Result() = default;
    Result(Err err) : error_(std::move(err.error)), ok_(false) {}  // NOLINT(google-explicit-constructor)

    bool ok() const { return ok_; }
    explicit operator bool() const { return ok_; }
    const ReadError& error() const { return error_; }
    Err err() const { return Err{error_}; }

  private:
    ReadError error_{};
    bool ok_ = true;
};

using Status = Result<void>;

}  // namespace pyspy

// Propagate a failure: `PYSPY_TRY(auto x, readSomething());`
#define PYSPY_CONCAT_INNER(a, b) a##b
#define PYSPY_CONCAT(a, b) PYSPY_CONCAT_INNER(a, b)
#define PYSPY_TRY_IMPL(tmp, decl, expr)  \
    auto tmp = (expr);                   \
    if (!tmp.ok()) return tmp.err();     \
    decl = std::move(tmp).value()
#define PYSPY_TRY(decl, expr) PYSPY_TRY_IMPL(PYSPY_CONCAT(pyspy_try_, __LINE__), decl, expr)
#define PYSPY_CHECK(expr)                                   \
    do {                                                    \
        auto pyspy_check_ = (expr);                         \
        if (!pyspy_check_.ok()) return pyspy_check_.err(); \
    } while (0)
