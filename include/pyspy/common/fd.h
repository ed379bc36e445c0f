// FD: a move-only owner of a file descriptor, closed on destruction.
#pragma once

#include <unistd.h>

#include <utility>

namespace pyspy {

class FD {
  public:
    FD() = default;
    explicit FD(int fd) : fd_(fd) {}
    FD(const FD&) = delete;
    FD& operator=(const FD&) = delete;
    FD(FD&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
    FD& operator=(FD&& other) noexcept {
        if (this != &other) {
            reset();
            fd_ = std::exchange(other.fd_, -1);
        }
        return *this;
    }
    ~FD() { reset(); }

    int get() const { return fd_; }
    bool valid() const { return fd_ >= 0; }
    explicit operator bool() const { return valid(); }
    int release() { return std::exchange(fd_, -1); }
    void reset(int fd = -1) {
        if (fd_ >= 0) ::close(fd_);
        fd_ = fd;
    }

  private:
    int fd_ = -1;
};

}  // namespace pyspy
