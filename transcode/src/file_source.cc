#include "zerofarm/transcode/file_source.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace zerofarm::transcode {

Result<std::unique_ptr<FileSource>> FileSource::Open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError("cannot open", errno);
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    return ErrnoError("cannot stat", e);
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return Status::Error(ErrorCode::kInvalidArgument, "not a regular file");
  }
  return std::unique_ptr<FileSource>(new FileSource(fd, static_cast<uint64_t>(st.st_size)));
}

FileSource::~FileSource() { ::close(fd_); }

Result<size_t> FileSource::ReadAt(uint64_t offset, std::span<std::byte> out) {
  for (;;) {
    ssize_t n = ::pread(fd_, out.data(), out.size(), static_cast<off_t>(offset));
    if (n >= 0) return static_cast<size_t>(n);
    if (errno != EINTR) return ErrnoError("read input", errno);
  }
}

}  // namespace zerofarm::transcode
