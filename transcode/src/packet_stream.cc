#include "zerofarm/transcode/packet_stream.h"

#include <cstring>

namespace zerofarm::transcode {
namespace {

constexpr uint8_t kHeaderRecord = 1;
constexpr uint8_t kPacketRecord = 2;
constexpr uint32_t kHeaderVersion = 1;

class Writer {
 public:
  template <class T>
  void Put(T v) {
    static_assert(std::is_trivially_copyable_v<T>);
    char b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));  // the project targets little-endian x86-64 only
    out_.append(b, sizeof(T));
  }
  void PutBytes(const std::string& s) {
    Put<uint32_t>(static_cast<uint32_t>(s.size()));
    out_.append(s);
  }
  std::string Record(uint8_t type) && {
    std::string r;
    r.reserve(out_.size() + 5);
    r.push_back(static_cast<char>(type));
    uint32_t n = static_cast<uint32_t>(out_.size());
    r.append(reinterpret_cast<const char*>(&n), 4);
    r.append(out_);
    return r;
  }

 private:
  std::string out_;
};

class Parser {
 public:
  explicit Parser(std::string_view in) : in_(in) {}
  template <class T>
  bool Get(T* v) {
    if (in_.size() < sizeof(T)) return false;
    std::memcpy(v, in_.data(), sizeof(T));
    in_.remove_prefix(sizeof(T));
    return true;
  }
  bool GetBytes(std::string* s) {
    uint32_t n = 0;
    if (!Get(&n) || n > in_.size()) return false;
    s->assign(in_.data(), n);
    in_.remove_prefix(n);
    return true;
  }
  bool done() const { return in_.empty(); }

 private:
  std::string_view in_;
};

Status BadStream(const std::string& what) { return Status::Error(ErrorCode::kBadStream, what); }

}  // namespace

std::string EncodeHeader(const StreamHeader& h) {
  Writer w;
  w.Put<uint32_t>(kHeaderVersion);
  w.Put<uint8_t>(static_cast<uint8_t>(h.kind));
  w.Put(h.codec_id);
  w.Put(h.codec_tag);
  w.Put(h.format);
  w.Put(h.bit_rate);
  w.Put(h.profile);
  w.Put(h.level);
  w.Put(h.bits_per_coded_sample);
  w.Put(h.bits_per_raw_sample);
  w.Put(h.width);
  w.Put(h.height);
  w.Put(h.sar_num);
  w.Put(h.sar_den);
  w.Put(h.field_order);
  w.Put(h.color_range);
  w.Put(h.color_primaries);
  w.Put(h.color_trc);
  w.Put(h.color_space);
  w.Put(h.chroma_location);
  w.Put(h.video_delay);
  w.Put(h.rotation_degrees);
  w.Put(h.avg_fps_num);
  w.Put(h.avg_fps_den);
  w.Put(h.sample_rate);
  w.Put(h.channels);
  w.Put(h.channel_mask);
  w.Put(h.block_align);
  w.Put(h.frame_size);
  w.Put(h.initial_padding);
  w.Put(h.trailing_padding);
  w.Put(h.seek_preroll);
  w.Put(h.time_base_num);
  w.Put(h.time_base_den);
  w.PutBytes(h.extradata);
  return std::move(w).Record(kHeaderRecord);
}

std::string EncodePacket(const Packet& p) {
  Writer w;
  w.Put(p.pts);
  w.Put(p.dts);
  w.Put(p.duration);
  w.Put(p.flags);
  w.Put(p.ordinal);
  w.Put(p.skip_start);
  w.Put(p.skip_end);
  w.PutBytes(p.data);
  return std::move(w).Record(kPacketRecord);
}

Result<StreamHeader> DecodeHeaderPayload(std::string_view payload) {
  Parser r(payload);
  StreamHeader h;
  uint32_t version = 0;
  uint8_t kind = 0;
  if (!r.Get(&version) || version != kHeaderVersion) return BadStream("unknown header version");
  bool ok = r.Get(&kind) && r.Get(&h.codec_id) && r.Get(&h.codec_tag) && r.Get(&h.format) &&
            r.Get(&h.bit_rate) && r.Get(&h.profile) && r.Get(&h.level) &&
            r.Get(&h.bits_per_coded_sample) && r.Get(&h.bits_per_raw_sample) && r.Get(&h.width) &&
            r.Get(&h.height) && r.Get(&h.sar_num) && r.Get(&h.sar_den) && r.Get(&h.field_order) &&
            r.Get(&h.color_range) && r.Get(&h.color_primaries) && r.Get(&h.color_trc) &&
            r.Get(&h.color_space) && r.Get(&h.chroma_location) && r.Get(&h.video_delay) &&
            r.Get(&h.rotation_degrees) && r.Get(&h.avg_fps_num) && r.Get(&h.avg_fps_den) &&
            r.Get(&h.sample_rate) && r.Get(&h.channels) && r.Get(&h.channel_mask) &&
            r.Get(&h.block_align) && r.Get(&h.frame_size) && r.Get(&h.initial_padding) &&
            r.Get(&h.trailing_padding) && r.Get(&h.seek_preroll) && r.Get(&h.time_base_num) &&
            r.Get(&h.time_base_den) && r.GetBytes(&h.extradata) && r.done();
  if (!ok) return BadStream("malformed header record");
  if (kind > 1) return BadStream("unknown media kind");
  h.kind = static_cast<MediaKind>(kind);
  if (h.time_base_num <= 0 || h.time_base_den <= 0) return BadStream("invalid time base");
  if (h.width < 0 || h.height < 0 || h.width > 32768 || h.height > 32768)
    return BadStream("invalid frame size");
  return h;
}

Result<Packet> DecodePacketPayload(std::string_view payload) {
  Parser r(payload);
  Packet p;
  bool ok = r.Get(&p.pts) && r.Get(&p.dts) && r.Get(&p.duration) && r.Get(&p.flags) &&
            r.Get(&p.ordinal) && r.Get(&p.skip_start) && r.Get(&p.skip_end) &&
            r.GetBytes(&p.data) && r.done();
  if (!ok) return BadStream("malformed packet record");
  return p;
}

Result<bool> PacketStreamReader::ReadExact(std::span<std::byte> out) {
  size_t got = 0;
  while (got < out.size()) {
    auto n = read_(out.subspan(got));
    if (!n.ok()) return n.status();
    if (*n == 0) {
      if (got == 0) return false;
      return BadStream("truncated record");
    }
    got += *n;
  }
  return true;
}

Result<std::optional<std::pair<uint8_t, std::string>>> PacketStreamReader::ReadRecord() {
  std::byte prefix[5];
  auto more = ReadExact(prefix);
  if (!more.ok()) return more.status();
  if (!*more) return std::optional<std::pair<uint8_t, std::string>>();
  uint8_t type = static_cast<uint8_t>(prefix[0]);
  uint32_t len = 0;
  std::memcpy(&len, prefix + 1, 4);
  if (type != kHeaderRecord && type != kPacketRecord) return BadStream("unknown record type");
  if (len > kMaxRecord) return BadStream("record larger than the limit");
  std::string payload(len, '\0');
  auto full = ReadExact(std::as_writable_bytes(std::span(payload.data(), payload.size())));
  if (!full.ok()) return full.status();
  if (!*full && len > 0) return BadStream("truncated record");
  return std::optional(std::make_pair(type, std::move(payload)));
}

Result<StreamHeader> PacketStreamReader::ReadHeader() {
  auto rec = ReadRecord();
  if (!rec.ok()) return rec.status();
  if (!rec->has_value()) return BadStream("empty stream");
  if ((*rec)->first != kHeaderRecord) return BadStream("stream does not start with a header");
  auto h = DecodeHeaderPayload((*rec)->second);
  if (!h.ok()) return h.status();
  header_ = *h;
  return h;
}

Result<std::optional<Packet>> PacketStreamReader::Next() {
  if (!header_) return BadStream("packet read before header");
  for (;;) {
    auto rec = ReadRecord();
    if (!rec.ok()) return rec.status();
    if (!rec->has_value()) return std::optional<Packet>();
    if ((*rec)->first == kHeaderRecord) {
      auto h = DecodeHeaderPayload((*rec)->second);
      if (!h.ok()) return h.status();
      if (!(*h == *header_)) return BadStream("codec parameters change inside the stream");
      continue;
    }
    auto p = DecodePacketPayload((*rec)->second);
    if (!p.ok()) return p.status();
    return std::optional<Packet>(std::move(*p));
  }
}

PacketStreamReader ReaderOverString(const std::string& bytes, size_t* cursor) {
  return PacketStreamReader([&bytes, cursor](std::span<std::byte> out) -> Result<size_t> {
    size_t n = std::min(out.size(), bytes.size() - *cursor);
    std::memcpy(out.data(), bytes.data() + *cursor, n);
    *cursor += n;
    return n;
  });
}

}  // namespace zerofarm::transcode
