#include "zerofarm/base/unique_fd.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

namespace zerofarm {

UniqueFd& UniqueFd::operator=(UniqueFd&& other) noexcept {
  if (this != &other) {
    Close();
    fd_ = other.Release();
  }
  return *this;
}

void UniqueFd::Close() noexcept {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

Result<Pipe> MakePipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return ErrnoError("pipe2", errno);
  return Pipe{UniqueFd(fds[0]), UniqueFd(fds[1])};
}

Status WriteAll(int fd, std::span<const std::byte> data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("write", errno);
    }
    data = data.subspan(static_cast<size_t>(n));
  }
  return Status::Ok();
}

Result<size_t> ReadSome(int fd, std::span<std::byte> data) {
  for (;;) {
    ssize_t n = ::read(fd, data.data(), data.size());
    if (n >= 0) return static_cast<size_t>(n);
    if (errno != EINTR) return ErrnoError("read", errno);
  }
}

}  // namespace zerofarm
