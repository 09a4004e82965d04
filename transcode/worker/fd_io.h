// The worker's only I/O: reads from and writes to file descriptors it inherited.
// Nothing here opens a file, a socket or anything else. Not thread-safe: one owner each.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "zerofarm/base/status.h"
#include "zerofarm/transcode/ffmpeg_ptr.h"
#include "zerofarm/transcode/packet_stream.h"

namespace zerofarm::transcode::worker {

// Buffers reads from an inherited fd so that the packet stream reader's small record-prefix
// reads do not each cost a system call.
class BufferedFdReader {
 public:
  explicit BufferedFdReader(int fd, size_t buffer_size = 1 << 20);
  // Fills up to out.size() bytes; 0 at end of input.
  Result<size_t> Read(std::span<std::byte> out);

 private:
  int fd_;
  std::vector<std::byte> buffer_;
  size_t begin_ = 0, end_ = 0;
};

// A PacketStreamReader over an inherited fd.
PacketStreamReader ReaderOverFd(BufferedFdReader* input);

// Writes one packet stream (a header, then packets) to an inherited fd and keeps the counts the
// report needs.
class PacketStreamWriter {
 public:
  explicit PacketStreamWriter(int fd) : fd_(fd) {}

  Status WriteHeader(const StreamHeader& header);
  // The packet's ordinal is its index in this stream.
  Status WritePacket(const AVPacket& packet);

  uint64_t packets() const { return packets_; }
  uint64_t bytes() const { return bytes_; }
  int64_t first_pts() const { return first_pts_; }  // smallest pts written, -1 if none
  int64_t last_pts() const { return last_pts_; }    // largest pts written, -1 if none

 private:
  Status Write(const std::string& record);

  int fd_;
  bool header_written_ = false;
  bool have_pts_ = false;
  uint64_t packets_ = 0, bytes_ = 0;
  int64_t first_pts_ = -1, last_pts_ = -1;
};

// Writes raw bytes (the thumbnail JPEG) to an inherited fd.
Status WriteBytes(int fd, std::span<const uint8_t> bytes);

}  // namespace zerofarm::transcode::worker
