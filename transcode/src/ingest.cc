#include "zerofarm/transcode/ingest.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <deque>
#include <memory>
#include <optional>

#include "av_log_capture.h"
#include "zerofarm/transcode/codecs.h"
#include "zerofarm/transcode/ffmpeg_ptr.h"
#include "zerofarm/transcode/object_names.h"
#include "zerofarm/transcode/packet_stream_av.h"

extern "C" {
#include <libavutil/encryption_info.h>
#include <libavutil/intreadwrite.h>
}

namespace zerofarm::transcode {
namespace {

constexpr int kAvioBufferSize = 1 << 16;
constexpr uint64_t kTeeStep = 1 << 20;
// Packets of later presentation time that must pass before a task's last packet is known:
// covers the decode reorder depth of every codec (H.264/HEVC allow at most 16).
constexpr int kReorderWindow = 32;
constexpr int kMaxDimension = 8192;

// The demuxer's view of the source: reads come from the ByteSource, and every byte is appended,
// in order, to the stored source object (a forward seek first copies the gap).
class TeeReader {
 public:
  TeeReader(ByteSource& source, storage::ObjectWriter& sink) : source_(source), sink_(sink) {}

  int Read(uint8_t* buf, int size) {
    auto bytes = std::as_writable_bytes(std::span(buf, static_cast<size_t>(size)));
    auto n = source_.ReadAt(pos_, bytes);
    if (!n.ok()) {
      error_ = n.status();
      return AVERROR(EIO);
    }
    if (*n == 0) return AVERROR_EOF;
    Status s = Tee(pos_, bytes.first(*n));
    if (!s.ok()) {
      error_ = s;
      return AVERROR(EIO);
    }
    pos_ += *n;
    return static_cast<int>(*n);
  }

  int64_t Seek(int64_t offset, int whence) {
    whence &= ~AVSEEK_FORCE;
    if (whence == AVSEEK_SIZE) {
      auto size = source_.Size();
      return size ? static_cast<int64_t>(*size) : AVERROR(ENOSYS);
    }
    int64_t target = offset;
    if (whence == SEEK_CUR) target = static_cast<int64_t>(pos_) + offset;
    if (whence == SEEK_END) {
      auto size = source_.Size();
      if (!size) return AVERROR(ENOSYS);
      target = static_cast<int64_t>(*size) + offset;
    }
    if (target < 0) return AVERROR(EINVAL);
    pos_ = static_cast<uint64_t>(target);
    return target;
  }

  // Copies whatever the demuxer did not read, so the stored source is the whole input.
  Status Finish() {
    for (;;) {
      uint64_t at = sink_.size();
      std::string buf(kTeeStep, '\0');
      auto n = source_.ReadAt(at, std::as_writable_bytes(std::span(buf.data(), buf.size())));
      if (!n.ok()) return n.status();
      if (*n == 0) return Status::Ok();
      ZF_RETURN_IF_ERROR(sink_.Append(std::string_view(buf.data(), *n)));
    }
  }

  const Status& error() const { return error_; }

 private:
  Status Tee(uint64_t at, std::span<const std::byte> bytes) {
    uint64_t have = sink_.size();
    while (have < at) {  // forward seek: store the skipped bytes first
      std::string gap(std::min<uint64_t>(kTeeStep, at - have), '\0');
      auto n = source_.ReadAt(have, std::as_writable_bytes(std::span(gap.data(), gap.size())));
      if (!n.ok()) return n.status();
      if (*n == 0) return Status::Error(ErrorCode::kIoError, "source ended inside a seek gap");
      ZF_RETURN_IF_ERROR(sink_.Append(std::string_view(gap.data(), *n)));
      have += *n;
    }
    uint64_t end = at + bytes.size();
    if (end > have) return sink_.Append(bytes.subspan(static_cast<size_t>(have - at)));
    return Status::Ok();
  }

  ByteSource& source_;
  storage::ObjectWriter& sink_;
  uint64_t pos_ = 0;
  Status error_;
};

int ReadPacket(void* opaque, uint8_t* buf, int size) {
  return static_cast<TeeReader*>(opaque)->Read(buf, size);
}
int64_t SeekPacket(void* opaque, int64_t offset, int whence) {
  return static_cast<TeeReader*>(opaque)->Seek(offset, whence);
}

double Seconds(int64_t ticks, const StreamHeader& h) {
  return static_cast<double>(ticks) * h.time_base_num / h.time_base_den;
}

// Cuts the video packet stream into chunk objects and plans tasks (see ingest.h).
// Packets arrive in decode order. A cut is decided at a keyframe whose pts is within
// [target, target + chunk/2] (target = current boundary + chunk), or, when no keyframe comes in
// time, at the target itself (the next task then decodes from the latest keyframe before it).
// A task's last packet is the last one (in decode order) whose pts is before its end; it is
// known once kReorderWindow later packets have passed.
class Planner {
 public:
  Planner(storage::Store& store, const IngestOptions& options, IngestSink* sink,
          IngestResult* result)
      : store_(store), options_(options), sink_(sink), result_(result) {}

  Status Begin(const StreamHeader& header) {
    header_ = header;
    header_record_ = EncodeHeader(header);
    cs_ = std::max<int64_t>(
        1, std::llround(options_.chunk_seconds * header.time_base_den / header.time_base_num));
    return OpenChunk(0);
  }

  // Called once the origin is fixed, before the first Add.
  void Start(int64_t first_boundary) {
    boundary_ = first_boundary;
    pending_.push_back(Pending{});
  }

  // `pts` is the packet's presentation time (its dts when the pts is unknown).
  Status Add(const Packet& packet, int64_t pts, bool key) {
    const uint64_t ord = packet.ordinal;
    min_pts_ = std::min(min_pts_, pts);
    if (ord > 0) ZF_RETURN_IF_ERROR(MaybeCut(ord, pts, key));
    if (key) keys_.push_back({ord, pts});
    // Keep only the keyframes a future pre-roll can need.
    while (keys_.size() > 1 && keys_[1].pts <= boundary_) keys_.pop_front();

    for (Pending& p : pending_) {
      TaskPlan& t = p.plan;
      if (ord < t.decode_from) continue;
      bool after_start = !t.start_pts || pts >= *t.start_pts;
      bool before_end = !t.end_pts || pts < *t.end_pts;
      if (after_start && before_end) {
        t.decode_to = std::max(t.decode_to, ord);
        p.owned.push_back({ord, pts});
        p.since_last_owned = 0;
      } else if (!before_end) {
        ++p.since_last_owned;
      }
    }
    ZF_RETURN_IF_ERROR(chunk_writer_->Append(EncodePacket(packet)));
    chunk_.last_ordinal = ord;
    ++chunk_.packets;
    chunk_.bytes += packet.data.size();
    return EmitReady(/*at_end=*/false);
  }

  Status Finish() {
    ZF_RETURN_IF_ERROR(CommitChunk());
    return EmitReady(/*at_end=*/true);
  }

 private:
  struct Key {
    uint64_t ordinal;
    int64_t pts;
  };
  struct Owned {
    uint64_t ordinal;
    int64_t pts;
  };
  struct Pending {
    TaskPlan plan;
    std::vector<Owned> owned;  // (ordinal, pts) of the packets whose pts is in the task's range
    int since_last_owned = 0;
  };

  // Where a cut goes: the next task's first presentation time and first packet to decode.
  struct Cut {
    int64_t boundary;
    uint64_t decode_from;
  };

  // The cut decided at this packet, if any (see the class comment).
  std::optional<Cut> FindCut(uint64_t ord, int64_t pts, bool key) const {
    const int64_t length = CutLength();
    const int64_t target = boundary_ + length;
    const int64_t window_end = target + length / 2;
    if (key && pts >= target && pts <= window_end) return Cut{pts, ord};
    if (pts <= window_end) return std::nullopt;
    // Pre-roll from the latest keyframe not after the target, if there is one.
    std::optional<uint64_t> from;
    for (const Key& k : keys_)
      if (k.pts <= target) from = k.ordinal;
    if (!from) return std::nullopt;
    return Cut{target, *from};
  }

  Status MaybeCut(uint64_t ord, int64_t pts, bool key) {
    const std::optional<Cut> cut = FindCut(ord, pts, key);
    if (!cut) return Status::Ok();
    ZF_RETURN_IF_ERROR(CommitChunk());
    ZF_RETURN_IF_ERROR(OpenChunk(ord));
    StartTask(*cut);
    boundary_ = cut->boundary;
    ++cuts_;
    return Status::Ok();
  }

  // Ends the last pending task at the cut and starts the next one. A cut between keyframes is
  // decided only after packets past it have arrived: those were taken by the previous task and
  // now move to the new one.
  void StartTask(const Cut& cut) {
    Pending& prev = pending_.back();
    prev.plan.end_pts = cut.boundary;
    Pending next;
    next.plan.start_pts = cut.boundary;
    next.plan.decode_from = cut.decode_from;
    next.plan.decode_to = cut.decode_from;
    std::vector<Owned> keep;
    for (const Owned& o : prev.owned) {
      if (o.pts < cut.boundary) {
        keep.push_back(o);
      } else {
        next.owned.push_back(o);
        next.plan.decode_to = std::max(next.plan.decode_to, o.ordinal);
      }
    }
    prev.owned = std::move(keep);
    prev.plan.decode_to = prev.plan.decode_from;
    for (const Owned& o : prev.owned)
      prev.plan.decode_to = std::max(prev.plan.decode_to, o.ordinal);
    prev.since_last_owned = static_cast<int>(next.owned.size());
    pending_.push_back(std::move(next));
  }

  // The target length of the chunk being cut: a head length, then the chunk length.
  int64_t CutLength() const {
    if (cuts_ >= options_.head_seconds.size()) return cs_;
    const int64_t head =
        std::llround(options_.head_seconds[cuts_] * header_.time_base_den / header_.time_base_num);
    return std::clamp<int64_t>(head, 1, cs_);
  }

  Status OpenChunk(uint64_t first_ordinal) {
    chunk_ = ChunkInfo{};
    chunk_.index = static_cast<uint32_t>(result_->chunks.size());
    chunk_.object = ChunkObjectName(options_.prefix, chunk_.index);
    chunk_.first_ordinal = first_ordinal;
    auto w = store_.CreateObject(chunk_.object);
    if (!w.ok()) return w.status();
    chunk_writer_ = std::move(*w);
    return chunk_writer_->Append(header_record_);
  }

  Status CommitChunk() {
    if (!chunk_writer_) return Status::Ok();
    if (chunk_.packets == 0) {
      chunk_writer_.reset();  // abandoned: nothing in it
      return Status::Ok();
    }
    ZF_RETURN_IF_ERROR(chunk_writer_->Commit());
    chunk_writer_.reset();
    result_->chunks.push_back(chunk_);
    if (sink_) sink_->OnChunk(chunk_);
    committed_through_ = chunk_.last_ordinal;
    any_committed_ = true;
    return Status::Ok();
  }

  uint32_t ChunkOf(uint64_t ordinal) const {
    for (const ChunkInfo& c : result_->chunks)
      if (ordinal >= c.first_ordinal && ordinal <= c.last_ordinal) return c.index;
    return result_->chunks.empty() ? 0 : result_->chunks.back().index;
  }

  double Fps() const {
    return header_.avg_fps_num > 0 ? static_cast<double>(header_.avg_fps_num) / header_.avg_fps_den
                                   : 30.0;
  }

  Status EmitReady(bool at_end) {
    while (!pending_.empty()) {
      Pending& p = pending_.front();
      TaskPlan& t = p.plan;
      bool settled = at_end || (t.end_pts && p.since_last_owned >= kReorderWindow);
      bool stored = at_end || (any_committed_ && committed_through_ >= t.decode_to);
      if (!settled || !stored) break;
      t.index = static_cast<uint32_t>(result_->tasks.size());
      t.owned_packets = p.owned.size();
      t.first_chunk = ChunkOf(t.decode_from);
      t.last_chunk = ChunkOf(t.decode_to);
      uint64_t fed = t.decode_to - t.decode_from + 1;
      t.preroll_packets = fed > t.owned_packets ? fed - t.owned_packets : 0;
      if (t.start_pts && t.end_pts)
        t.seconds = Seconds(*t.end_pts - *t.start_pts, header_);
      else
        t.seconds = static_cast<double>(t.owned_packets) / Fps();
      result_->tasks.push_back(t);
      if (sink_) sink_->OnTask(t);
      pending_.pop_front();
    }
    return Status::Ok();
  }

  storage::Store& store_;
  const IngestOptions& options_;
  IngestSink* sink_;
  IngestResult* result_;
  StreamHeader header_;
  std::string header_record_;
  int64_t cs_ = 1;
  size_t cuts_ = 0;  // chunks cut so far
  int64_t boundary_ = 0;
  int64_t min_pts_ = INT64_MAX;
  std::deque<Key> keys_;
  std::deque<Pending> pending_;
  ChunkInfo chunk_;
  std::unique_ptr<storage::ObjectWriter> chunk_writer_;
  bool any_committed_ = false;
  uint64_t committed_through_ = 0;
};

// Matroska/WebM name their key in the track's metadata; MP4 (cenc) carries init info.
bool IsEncrypted(const AVStream& st) {
  return av_dict_get(st.metadata, "enc_key_id", nullptr, 0) != nullptr ||
         av_stream_get_side_data(&st, AV_PKT_DATA_ENCRYPTION_INIT_INFO, nullptr) != nullptr;
}

Status OpenError(int err, const std::string& logged, uint64_t size_hint) {
  if (size_hint == 0)
    return Status::Error(ErrorCode::kEmptyInput, "not a media file: the file is empty");
  std::string detail = logged.empty() ? AvErrorString(err) : logged;
  if (logged.find("moov atom not found") != std::string::npos)
    return Status::Error(ErrorCode::kTruncated,
                         "truncated: the MP4 index (moov) is missing, the file was cut short");
  if (err == AVERROR_INVALIDDATA && logged.empty())
    return Status::Error(ErrorCode::kNotMedia,
                         "not a media file: no known container format recognised");
  if (err == AVERROR_INVALIDDATA)
    return Status::Error(ErrorCode::kCorruptContainer, "corrupt container: " + detail);
  return Status::Error(ErrorCode::kNotMedia, "not a media file: " + detail);
}

// Refuses chunk and head lengths out of range.
Status CheckIngestOptions(const IngestOptions& options) {
  if (options.chunk_seconds < 0.5 || options.chunk_seconds > 60)
    return Status::Error(ErrorCode::kInvalidArgument, "chunk seconds must be within 0.5-60");
  for (double h : options.head_seconds)
    if (!(h >= 0.5 && h <= options.chunk_seconds))
      return Status::Error(ErrorCode::kInvalidArgument,
                           "head segment seconds must be within 0.5 and the chunk seconds");
  return Status::Ok();
}

// The demuxer over a TeeReader. Members in this order: the format context is closed before
// the AVIOContext it reads through.
struct Demuxer {
  AVIOContextPtr avio;
  InputFormatPtr fmt;
};

// Opens the container read through `tee` and probes its streams; an input that is no media is
// refused with the reason the demuxer logged.
Status OpenDemuxer(TeeReader& tee, const AvLogCapture& log, std::optional<uint64_t> size,
                   Demuxer* d) {
  {
    auto* buf = static_cast<unsigned char*>(av_malloc(kAvioBufferSize));
    if (!buf) return Status::Error(ErrorCode::kInternal, "out of memory");
    d->avio.reset(
        avio_alloc_context(buf, kAvioBufferSize, 0, &tee, &ReadPacket, nullptr, &SeekPacket));
    if (!d->avio) {
      av_free(buf);
      return Status::Error(ErrorCode::kInternal, "out of memory");
    }
  }
  {
    AVFormatContext* raw = avformat_alloc_context();
    if (!raw) return Status::Error(ErrorCode::kInternal, "out of memory");
    raw->pb = d->avio.get();
    raw->flags |= AVFMT_FLAG_CUSTOM_IO;
    int err = avformat_open_input(&raw, nullptr, nullptr, nullptr);  // frees raw on failure
    if (err < 0) {
      if (!tee.error().ok()) return tee.error();
      return OpenError(err, log.last_error(), size.value_or(1));
    }
    d->fmt.reset(raw);
  }
  if (int err = avformat_find_stream_info(d->fmt.get(), nullptr); err < 0) {
    if (!tee.error().ok()) return tee.error();
    return Status::Error(
        ErrorCode::kCorruptContainer,
        "corrupt container: " + (log.last_error().empty() ? AvErrorString(err) : log.last_error()));
  }
  return Status::Ok();
}

// The streams ingest reads; audio_index is -1 without a usable audio track.
struct StreamChoice {
  int video_index = -1;
  int audio_index = -1;
};

// The first video stream that is not a cover picture and the first audio stream; `found`
// lists every stream ("video h264, audio aac").
StreamChoice FindStreams(const AVFormatContext& fmt, std::string* found) {
  StreamChoice c;
  for (unsigned i = 0; i < fmt.nb_streams; ++i) {
    AVStream* st = fmt.streams[i];
    const AVCodecParameters* par = st->codecpar;
    const char* name = avcodec_get_name(par->codec_id);
    if (par->codec_type == AVMEDIA_TYPE_VIDEO && !(st->disposition & AV_DISPOSITION_ATTACHED_PIC)) {
      if (c.video_index < 0) c.video_index = static_cast<int>(i);
    } else if (par->codec_type == AVMEDIA_TYPE_AUDIO && c.audio_index < 0) {
      c.audio_index = static_cast<int>(i);
    }
    if (!found->empty()) *found += ", ";
    *found += std::string(av_get_media_type_string(par->codec_type)
                              ? av_get_media_type_string(par->codec_type)
                              : "data") +
              " " + name;
  }
  return c;
}

// Picks the streams to ingest and refuses a source without a usable video stream; an audio
// track of an unsupported codec is dropped with a warning in `source`. Every other stream is
// discarded by the demuxer.
Result<StreamChoice> SelectStreams(AVFormatContext& fmt, SourceInfo* source) {
  std::string found;
  StreamChoice c = FindStreams(fmt, &found);
  if (c.video_index < 0)
    return Status::Error(
        ErrorCode::kNoVideoStream,
        "no video stream (the file has " + (found.empty() ? "no streams" : found) + ")");
  AVStream* vst = fmt.streams[c.video_index];
  const AVCodecParameters* vpar = vst->codecpar;
  source->video_codec = avcodec_get_name(vpar->codec_id);
  if (IsEncrypted(*vst))
    return Status::Error(
        ErrorCode::kEncrypted,
        "encrypted: the video stream is protected by encryption (" + source->video_codec + ")");
  if (!IsSupportedVideoCodec(vpar->codec_id))
    return Status::Error(ErrorCode::kUnsupportedCodec,
                         "unsupported codec: video " + source->video_codec);
  if (vpar->width <= 0 || vpar->height <= 0 || vpar->width > kMaxDimension ||
      vpar->height > kMaxDimension)
    return Status::Error(ErrorCode::kUnsupportedCodec, "unsupported codec parameters: frame size " +
                                                           std::to_string(vpar->width) + "x" +
                                                           std::to_string(vpar->height));
  if (c.audio_index >= 0 &&
      !IsSupportedAudioCodec(fmt.streams[c.audio_index]->codecpar->codec_id)) {
    source->warnings.push_back(std::string("the audio track's codec (") +
                               avcodec_get_name(fmt.streams[c.audio_index]->codecpar->codec_id) +
                               ") is not supported: the renditions have no audio");
    c.audio_index = -1;
  }
  for (unsigned i = 0; i < fmt.nb_streams; ++i)
    if (static_cast<int>(i) != c.video_index && static_cast<int>(i) != c.audio_index)
      fmt.streams[i]->discard = AVDISCARD_ALL;
  return c;
}

// Fills the headers, display size and frame rate of `info` from the chosen streams.
void DescribeStreams(const AVStream& vst, const AVStream* ast, SourceInfo* info) {
  const AVCodecParameters* vpar = vst.codecpar;
  info->video = HeaderFromStream(vst);
  if (ast) {
    info->audio = HeaderFromStream(*ast);
    info->audio_codec = avcodec_get_name(ast->codecpar->codec_id);
  }
  double sar = info->video.sar_num > 0 && info->video.sar_den > 0
                   ? static_cast<double>(info->video.sar_num) / info->video.sar_den
                   : 1.0;
  int w = static_cast<int>(std::lround(vpar->width * sar));
  int h = vpar->height;
  if (std::lround(info->video.rotation_degrees) % 180 == 90) std::swap(w, h);
  info->display_width = w;
  info->display_height = h;
  AVRational fr = vst.avg_frame_rate.num > 0 ? vst.avg_frame_rate : vst.r_frame_rate;
  info->fps = fr.num > 0 && fr.den > 0 ? av_q2d(fr) : 30.0;
  if (info->fps > 240 || info->fps < 1) info->fps = 30.0;
}

// Takes the demuxed packets of the chosen streams: video goes to the planner, audio to the
// audio source object (and the sink). The origin (output time 0) is the earliest of the first
// video packets' pts and the first audio packet's; video packets are held until it is fixed.
class PacketRouter {
 public:
  PacketRouter(const AVFormatContext& fmt, StreamChoice streams, SourceInfo* info, Planner* planner,
               storage::ObjectWriter* audio_writer, IngestSink* sink)
      : fmt_(fmt),
        streams_(streams),
        vst_(*fmt.streams[streams.video_index]),
        info_(info),
        planner_(planner),
        audio_writer_(audio_writer),
        sink_(sink) {}

  // Routes one packet (of any stream; the others are ignored). May change pkt's timestamps.
  Status Add(AVPacket* pkt) {
    if (pkt->stream_index == streams_.video_index) return AddVideo(pkt);
    if (pkt->stream_index == streams_.audio_index) return AddAudio(pkt);
    return Status::Ok();
  }

  Status AppendAudio(const std::string& record) {
    if (sink_) sink_->OnAudio(record);
    return audio_writer_->Append(record);
  }

  // Fixes the origin (once) and feeds the held video packets to the planner.
  Status FixOrigin() {
    int64_t origin = INT64_MAX;
    for (const Packet& h : held_) origin = std::min(origin, h.pts);
    if (origin == INT64_MAX) origin = 0;
    if (first_audio_pts_ != INT64_MIN) {
      AVRational atb = fmt_.streams[streams_.audio_index]->time_base;
      origin = std::min(origin, av_rescale_q_rnd(first_audio_pts_, atb, vst_.time_base,
                                                 static_cast<AVRounding>(AV_ROUND_DOWN)));
    }
    info_->origin_pts = origin;
    info_->origin_seconds = static_cast<double>(origin) * av_q2d(vst_.time_base);
    origin_fixed_ = true;
    if (sink_) sink_->OnSource(*info_);
    planner_->Start(origin);
    for (const Packet& h : held_)
      ZF_RETURN_IF_ERROR(planner_->Add(h, h.pts, (h.flags & AV_PKT_FLAG_KEY) != 0));
    held_.clear();
    return Status::Ok();
  }

  bool origin_fixed() const { return origin_fixed_; }
  uint64_t video_packets() const { return vord_; }
  uint64_t audio_packets() const { return aord_; }
  // The end of the latest video packet, in the video stream's time base; INT64_MIN before any.
  int64_t last_video_end() const { return last_video_end_; }

 private:
  // Packets are fed to the planner once the origin is fixed: after the first few packets.
  static constexpr size_t kOriginLookahead = 48;

  Status AddVideo(AVPacket* pkt) {
    if (av_packet_get_side_data(pkt, AV_PKT_DATA_ENCRYPTION_INFO, nullptr))
      return Status::Error(ErrorCode::kEncrypted, "encrypted: the video packets are encrypted");
    int64_t ts = pkt->pts != AV_NOPTS_VALUE ? pkt->pts : pkt->dts;
    if (ts == AV_NOPTS_VALUE) ts = last_video_end_ == INT64_MIN ? 0 : last_video_end_;
    pkt->pts = ts;
    last_video_end_ = std::max(last_video_end_, ts + std::max<int64_t>(pkt->duration, 1));
    Packet p = PacketFromAv(*pkt, vord_++);
    if (origin_fixed_) return planner_->Add(p, p.pts, (p.flags & AV_PKT_FLAG_KEY) != 0);
    held_.push_back(std::move(p));
    if (held_.size() >= kOriginLookahead) return FixOrigin();
    return Status::Ok();
  }

  Status AddAudio(AVPacket* pkt) {
    if (first_audio_pts_ == INT64_MIN && !(pkt->flags & AV_PKT_FLAG_DISCARD))
      first_audio_pts_ = FirstPlayedPts(*pkt);
    if (pkt->pts == AV_NOPTS_VALUE) pkt->pts = pkt->dts;
    return AppendAudio(EncodePacket(PacketFromAv(*pkt, aord_++)));
  }

  // The first sample that plays: priming the container trims does not count.
  int64_t FirstPlayedPts(const AVPacket& pkt) const {
    const AVStream& ast = *fmt_.streams[streams_.audio_index];
    int64_t ts = pkt.pts != AV_NOPTS_VALUE ? pkt.pts : pkt.dts;
    size_t skip_size = 0;
    const uint8_t* skip = av_packet_get_side_data(&pkt, AV_PKT_DATA_SKIP_SAMPLES, &skip_size);
    int rate = ast.codecpar->sample_rate;
    if (ts != AV_NOPTS_VALUE && skip && skip_size >= 4 && rate > 0)
      ts += av_rescale_q(AV_RL32(skip), AVRational{1, rate}, ast.time_base);
    return ts;
  }

  const AVFormatContext& fmt_;
  const StreamChoice streams_;
  const AVStream& vst_;
  SourceInfo* info_;
  Planner* planner_;
  storage::ObjectWriter* audio_writer_;  // null without audio
  IngestSink* sink_;
  uint64_t vord_ = 0, aord_ = 0;
  int64_t first_audio_pts_ = INT64_MIN;
  int64_t last_video_end_ = INT64_MIN;
  bool origin_fixed_ = false;
  std::vector<Packet> held_;  // video packets before the origin is fixed
};

// Reads every packet into `router`; a read error that ends the input early goes to
// *read_error (the demuxer's end of file is not one).
Status ReadPackets(AVFormatContext& fmt, PacketRouter& router, int* read_error) {
  PacketPtr pkt = MakePacket();
  for (;;) {
    int err = av_read_frame(&fmt, pkt.get());
    if (err == AVERROR_EOF) break;
    if (err < 0) {
      *read_error = err;
      break;
    }
    ZF_RETURN_IF_ERROR(router.Add(pkt.get()));
    av_packet_unref(pkt.get());
  }
  return Status::Ok();
}

// Refuses a source whose video was cut short or could not be read to its end.
Status CheckReadToEnd(const AVFormatContext& fmt, const AVStream& vst, uint64_t vord,
                      int read_error, const AvLogCapture& log) {
  if (vord == 0) {
    if (read_error < 0)
      return Status::Error(ErrorCode::kTruncated, "truncated: no video packet could be read (" +
                                                      AvErrorString(read_error) + ")");
    return Status::Error(ErrorCode::kUndecodable, "undecodable: the video stream holds no packets");
  }
  // A stream whose index promises more samples than could be read was cut short.
  if (vst.nb_frames > 0 && static_cast<int64_t>(vord) < vst.nb_frames &&
      std::strstr(fmt.iformat->name, "mp4") != nullptr)
    return Status::Error(ErrorCode::kTruncated,
                         "truncated: the file ends after " + std::to_string(vord) + " of " +
                             std::to_string(vst.nb_frames) + " video frames");
  if (read_error < 0 && read_error != AVERROR(EAGAIN))
    return Status::Error(
        ErrorCode::kTruncated,
        "truncated or corrupt after " + std::to_string(vord) + " video packets: " +
            (log.last_error().empty() ? AvErrorString(read_error) : log.last_error()));
  return Status::Ok();
}

}  // namespace

Result<IngestResult> Ingest(ByteSource& source, storage::Store& store, const IngestOptions& options,
                            IngestSink* sink) {
  IngestResult result;
  ZF_RETURN_IF_ERROR(CheckIngestOptions(options));
  auto size = source.Size();
  if (size && *size == 0)
    return Status::Error(ErrorCode::kEmptyInput, "not a media file: the file is empty");
  auto source_writer = store.CreateObject(SourceObjectName(options.prefix));
  if (!source_writer.ok()) return source_writer.status();
  TeeReader tee(source, **source_writer);
  AvLogCapture log;
  Demuxer demuxer;
  ZF_RETURN_IF_ERROR(OpenDemuxer(tee, log, size, &demuxer));
  AVFormatContext& fmt = *demuxer.fmt;
  result.source.container = fmt.iformat->name;
  auto streams = SelectStreams(fmt, &result.source);
  if (!streams.ok()) return streams.status();
  const AVStream& vst = *fmt.streams[streams->video_index];
  SourceInfo& info = result.source;
  DescribeStreams(vst, streams->audio_index >= 0 ? fmt.streams[streams->audio_index] : nullptr,
                  &info);

  std::unique_ptr<storage::ObjectWriter> audio_writer;
  if (info.audio) {
    auto w = store.CreateObject(AudioSourceObjectName(options.prefix));
    if (!w.ok()) return w.status();
    audio_writer = std::move(*w);
  }
  Planner planner(store, options, sink, &result);
  PacketRouter router(fmt, *streams, &info, &planner, audio_writer.get(), sink);
  if (audio_writer) ZF_RETURN_IF_ERROR(router.AppendAudio(EncodeHeader(*info.audio)));
  ZF_RETURN_IF_ERROR(planner.Begin(info.video));

  int read_error = 0;
  ZF_RETURN_IF_ERROR(ReadPackets(fmt, router, &read_error));
  if (!tee.error().ok()) return tee.error();
  ZF_RETURN_IF_ERROR(CheckReadToEnd(fmt, vst, router.video_packets(), read_error, log));
  if (!router.origin_fixed()) ZF_RETURN_IF_ERROR(router.FixOrigin());
  ZF_RETURN_IF_ERROR(planner.Finish());
  if (audio_writer) ZF_RETURN_IF_ERROR(audio_writer->Commit());
  ZF_RETURN_IF_ERROR(tee.Finish());
  result.source_bytes = (*source_writer)->size();
  ZF_RETURN_IF_ERROR((*source_writer)->Commit());
  result.video_packets = router.video_packets();
  result.audio_packets = router.audio_packets();
  result.video_duration_seconds =
      router.last_video_end() == INT64_MIN
          ? 0
          : static_cast<double>(router.last_video_end() - info.origin_pts) * av_q2d(vst.time_base);
  return result;
}

}  // namespace zerofarm::transcode
