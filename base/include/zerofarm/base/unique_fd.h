// UniqueFd: move-only owner of a file descriptor; closes it exactly once.
// Not thread-safe: one owner at a time. Close() is idempotent and noexcept.
#pragma once

#include <cstddef>
#include <span>

#include "zerofarm/base/status.h"

namespace zerofarm {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.Release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept;
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { Close(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int Release() noexcept {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void Close() noexcept;

 private:
  int fd_ = -1;
};

// A pipe whose both ends are close-on-exec.
struct Pipe {
  UniqueFd read;
  UniqueFd write;
};
Result<Pipe> MakePipe();

// Writes all of `data`, retrying on EINTR and short writes.
Status WriteAll(int fd, std::span<const std::byte> data);
// Reads up to data.size() bytes, retrying on EINTR; returns the count (0 at end of stream).
Result<size_t> ReadSome(int fd, std::span<std::byte> data);

}  // namespace zerofarm
