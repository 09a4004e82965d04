// A ByteSource over a regular file (positional reads; the file is never modified).
// Safe for concurrent ReadAt calls; the object owns its descriptor.
#pragma once

#include <memory>
#include <string>

#include "zerofarm/base/status.h"
#include "zerofarm/transcode/ingest.h"

namespace zerofarm::transcode {

class FileSource final : public ByteSource {
 public:
  // Errors: "io_error" (cannot open or stat), "invalid_argument" (not a regular file).
  static Result<std::unique_ptr<FileSource>> Open(const std::string& path);
  ~FileSource() override;
  FileSource(const FileSource&) = delete;
  FileSource& operator=(const FileSource&) = delete;

  Result<size_t> ReadAt(uint64_t offset, std::span<std::byte> out) override;
  std::optional<uint64_t> Size() const override { return size_; }

 private:
  FileSource(int fd, uint64_t size) : fd_(fd), size_(size) {}
  int fd_;
  uint64_t size_;
};

}  // namespace zerofarm::transcode
