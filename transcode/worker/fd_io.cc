#include "fd_io.h"

#include <algorithm>
#include <cstring>

#include "zerofarm/base/unique_fd.h"
#include "zerofarm/transcode/packet_stream_av.h"

namespace zerofarm::transcode::worker {

BufferedFdReader::BufferedFdReader(int fd, size_t buffer_size) : fd_(fd), buffer_(buffer_size) {}

Result<size_t> BufferedFdReader::Read(std::span<std::byte> out) {
  if (out.empty()) return size_t{0};
  if (begin_ == end_) {
    // Large requests (packet payloads) go straight into the caller's memory.
    if (out.size() >= buffer_.size()) return ReadSome(fd_, out);
    auto n = ReadSome(fd_, buffer_);
    if (!n.ok()) return n.status().WithContext("input fd " + std::to_string(fd_));
    begin_ = 0;
    end_ = *n;
    if (end_ == 0) return size_t{0};
  }
  size_t n = std::min(out.size(), end_ - begin_);
  std::memcpy(out.data(), buffer_.data() + begin_, n);
  begin_ += n;
  return n;
}

PacketStreamReader ReaderOverFd(BufferedFdReader* input) {
  return PacketStreamReader(
      [input](std::span<std::byte> out) -> Result<size_t> { return input->Read(out); });
}

Status PacketStreamWriter::Write(const std::string& record) {
  ZF_RETURN_IF_ERROR(WriteAll(fd_, std::as_bytes(std::span(record.data(), record.size())))
                         .WithContext("output fd " + std::to_string(fd_)));
  bytes_ += record.size();
  return Status::Ok();
}

Status PacketStreamWriter::WriteHeader(const StreamHeader& header) {
  if (header_written_)
    return Status::Error(ErrorCode::kInternal, "packet stream header written twice");
  header_written_ = true;
  return Write(EncodeHeader(header));
}

Status PacketStreamWriter::WritePacket(const AVPacket& packet) {
  if (!header_written_)
    return Status::Error(ErrorCode::kInternal, "packet written before the header");
  Packet p = PacketFromAv(packet, packets_);
  p.flags &= kPacketKey;  // only the keyframe bit is meaningful on encoder output
  ZF_RETURN_IF_ERROR(Write(EncodePacket(p)));
  if (packet.pts != AV_NOPTS_VALUE) {
    if (!have_pts_ || packet.pts < first_pts_) first_pts_ = packet.pts;
    if (!have_pts_ || packet.pts > last_pts_) last_pts_ = packet.pts;
    have_pts_ = true;
  }
  ++packets_;
  return Status::Ok();
}

Status WriteBytes(int fd, std::span<const uint8_t> bytes) {
  return WriteAll(fd, std::as_bytes(bytes)).WithContext("output fd " + std::to_string(fd));
}

}  // namespace zerofarm::transcode::worker
