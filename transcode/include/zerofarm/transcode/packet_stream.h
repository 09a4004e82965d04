// The packet stream: zerofarm's container for chunks, the audio track and encoded segments.
//
// A stream is a sequence of records, each `u8 type | u32 payload length (LE) | payload`:
//   type 1, Header: the stream's codec parameters (everything a decoder or muxer needs).
//   type 2, Packet: one compressed packet with its timestamps.
// Concatenated streams are valid streams: a reader meeting a second Header equal to the first
// skips it, so chunk objects can be joined (decode pre-roll) without rewriting them. Every field
// is little-endian; lengths are bounded (kMaxRecord) so a hostile stream cannot make a reader
// allocate without limit. This header is libav-free so that the worker, the stitcher and tests
// share it; packet_stream_av.h converts to and from AVCodecParameters/AVPacket.
// Thread safety: none; a reader or writer belongs to one thread.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "zerofarm/base/status.h"

namespace zerofarm::transcode {

inline constexpr uint32_t kMaxRecord = 256u << 20;  // no packet or header is larger

enum class MediaKind : uint8_t { kVideo = 0, kAudio = 1 };

// Codec parameters, mirroring AVCodecParameters plus the stream's timing and display facts.
struct StreamHeader {
  MediaKind kind = MediaKind::kVideo;
  int32_t codec_id = 0;  // AVCodecID
  uint32_t codec_tag = 0;
  int32_t format = -1;  // AVPixelFormat or AVSampleFormat
  int64_t bit_rate = 0;
  int32_t profile = -99, level = -99;
  int32_t bits_per_coded_sample = 0, bits_per_raw_sample = 0;
  // video
  int32_t width = 0, height = 0;
  int32_t sar_num = 0, sar_den = 1;
  int32_t field_order = 0, color_range = 0, color_primaries = 2, color_trc = 2, color_space = 2,
          chroma_location = 0;
  int32_t video_delay = 0;
  double rotation_degrees = 0;  // display rotation clockwise, applied by the worker
  int32_t avg_fps_num = 0, avg_fps_den = 1;
  // audio
  int32_t sample_rate = 0, channels = 0;
  uint64_t channel_mask = 0;  // 0 when unknown/unspecified order
  int32_t block_align = 0, frame_size = 0, initial_padding = 0, trailing_padding = 0,
          seek_preroll = 0;
  // timing: packet timestamps are in this time base
  int32_t time_base_num = 1, time_base_den = 90000;
  std::string extradata;

  bool operator==(const StreamHeader&) const = default;
};

struct Packet {
  int64_t pts = INT64_MIN;  // INT64_MIN == unknown (AV_NOPTS_VALUE)
  int64_t dts = INT64_MIN;
  int64_t duration = 0;
  uint32_t flags = 0;    // bit 0: keyframe (AV_PKT_FLAG_KEY); bit 1: corrupt; bit 2: discard
  uint64_t ordinal = 0;  // decode-order index within the whole source stream
  // Audio samples the decoder must drop from the start/end of this packet's frame (encoder
  // priming, container edit lists); carried to the decoder as AV_PKT_DATA_SKIP_SAMPLES.
  uint32_t skip_start = 0, skip_end = 0;
  std::string data;
};

inline constexpr uint32_t kPacketKey = 1u;

std::string EncodeHeader(const StreamHeader& header);  // a whole record
std::string EncodePacket(const Packet& packet);        // a whole record

// Pull-style reader over any byte source. `read(buf)` fills up to buf.size() bytes and returns
// how many (0 at end of input) or an error.
class PacketStreamReader {
 public:
  using ReadFn = std::function<Result<size_t>(std::span<std::byte>)>;
  explicit PacketStreamReader(ReadFn read) : read_(std::move(read)) {}

  // The stream's header; must be called first. Error "bad_stream" on malformed input.
  Result<StreamHeader> ReadHeader();
  // The next packet, or std::nullopt at the clean end of the stream. A truncated record or a
  // second header that differs from the first is the error "bad_stream".
  Result<std::optional<Packet>> Next();

 private:
  // Reads exactly n bytes; false at a clean end before any byte.
  Result<bool> ReadExact(std::span<std::byte> out);
  Result<std::optional<std::pair<uint8_t, std::string>>> ReadRecord();

  ReadFn read_;
  std::optional<StreamHeader> header_;
};

// Parses one header record payload (without the type/length prefix).
Result<StreamHeader> DecodeHeaderPayload(std::string_view payload);
Result<Packet> DecodePacketPayload(std::string_view payload);

// Convenience: a reader over a byte string held in memory.
PacketStreamReader ReaderOverString(const std::string& bytes, size_t* cursor);

}  // namespace zerofarm::transcode
