#include "zerofarm/transcode/stitcher.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "av_log_capture.h"
#include "zerofarm/storage/content_hash.h"
#include "zerofarm/transcode/ffmpeg_ptr.h"
#include "zerofarm/transcode/hls_playlist.h"
#include "zerofarm/transcode/object_names.h"
#include "zerofarm/transcode/packet_stream.h"
#include "zerofarm/transcode/packet_stream_av.h"
#include "zerofarm/transcode/worker_task.h"

extern "C" {
#include <libavutil/opt.h>
}

namespace zerofarm::transcode {
namespace fs = std::filesystem;
namespace {

constexpr int kOutputTb = kOutputTimeBase;

struct Track {
  StreamHeader header;
  std::vector<Packet> packets;
};

// A task output is used only if it holds exactly the bytes its task reported (input.checksums).
Status CheckBound(const StitchInput& input, const std::string& name, uint64_t actual) {
  if (input.checksums.empty()) return Status::Ok();
  auto it = input.checksums.find(name);
  if (it == input.checksums.end())
    return Status::Error("output_mismatch", name + ": no task reported this output");
  if (it->second != actual)
    return Status::Error("output_mismatch",
                         name + ": holds other bytes than its task wrote (checksum " +
                             storage::ContentHashHex(actual) + ", the task reported " +
                             storage::ContentHashHex(it->second) + ")");
  return Status::Ok();
}

Result<Track> LoadStream(storage::Store& store, const StitchInput& input, const std::string& name) {
  auto reader = store.OpenObject(name);
  if (!reader.ok()) return reader.status().WithContext(name);
  storage::ObjectReader* r = reader->get();
  storage::ContentHash hash;
  auto read = [r, &hash](std::span<std::byte> out) -> Result<size_t> {
    auto n = r->Read(out);
    if (n.ok()) hash.Update(out.first(*n));
    return n;
  };
  PacketStreamReader in(read);
  Track t;
  auto h = in.ReadHeader();
  if (!h.ok()) return h.status().WithContext(name);
  t.header = *h;
  for (;;) {
    auto p = in.Next();
    if (!p.ok()) return p.status().WithContext(name);
    if (!p->has_value()) break;
    t.packets.push_back(std::move(**p));
  }
  // Whatever follows the stream's end counts too.
  std::byte rest[4096];
  for (;;) {
    auto n = read(rest);
    if (!n.ok()) return n.status().WithContext(name);
    if (*n == 0) break;
  }
  ZF_RETURN_IF_ERROR(CheckBound(input, name, hash.value()));
  return t;
}

Status WriteFile(const fs::path& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) return Status::Error("io_error", "cannot write " + path.string());
  return Status::Ok();
}

// "avc1.PPCCLL" from the first SPS found in an Annex B packet.
std::string AvcCodecString(const std::string& data) {
  for (size_t i = 0; i + 7 < data.size(); ++i) {
    if (data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 && (data[i + 3] & 0x1f) == 7) {
      char buf[32];
      std::snprintf(buf, sizeof(buf), "avc1.%02x%02x%02x", static_cast<uint8_t>(data[i + 4]),
                    static_cast<uint8_t>(data[i + 5]), static_cast<uint8_t>(data[i + 6]));
      return buf;
    }
  }
  return "avc1.640028";
}

// A muxer writing to a file, owning both the context and its AVIOContext.
class FileMuxer {
 public:
  ~FileMuxer() {
    if (ctx_ && ctx_->pb) avio_closep(&ctx_->pb);
  }

  Status Open(const fs::path& path, const char* format,
              const std::vector<const StreamHeader*>& streams, const char* movflags) {
    AVFormatContext* raw = nullptr;
    int err = avformat_alloc_output_context2(&raw, nullptr, format, path.c_str());
    if (err < 0 || !raw) return Status::Error("internal", "no muxer for " + std::string(format));
    ctx_.reset(raw);
    ctx_->flags |= AVFMT_FLAG_BITEXACT;
    // Segment files keep their timestamps exactly as encoded: shifting each file separately
    // would break the continuity between segments. The MP4 muxer is left to its default, which
    // turns negative starts (B-frame delay, AAC priming) into edit lists.
    if (std::string_view(format) == "mpegts") ctx_->avoid_negative_ts = AVFMT_AVOID_NEG_TS_DISABLED;
    for (const StreamHeader* h : streams) {
      AVStream* st = avformat_new_stream(ctx_.get(), nullptr);
      if (!st) return Status::Error("internal", "out of memory");
      ZF_RETURN_IF_ERROR(HeaderToParameters(*h, st->codecpar));
      st->codecpar->codec_tag = 0;
      st->time_base = AVRational{h->time_base_num, h->time_base_den};
      if (h->kind == MediaKind::kVideo && h->avg_fps_num > 0)
        st->avg_frame_rate = AVRational{h->avg_fps_num, h->avg_fps_den};
      tbs_.push_back(st->time_base);
    }
    if ((err = avio_open(&ctx_->pb, path.c_str(), AVIO_FLAG_WRITE)) < 0)
      return Status::Error("io_error",
                           "cannot create " + path.string() + ": " + AvErrorString(err));
    AVDictionary* opts = nullptr;
    if (movflags) av_dict_set(&opts, "movflags", movflags, 0);
    err = avformat_write_header(ctx_.get(), &opts);
    av_dict_free(&opts);
    if (err < 0)
      return Status::Error("internal", "cannot start " + path.string() + ": " + AvErrorString(err));
    for (unsigned i = 0; i < ctx_->nb_streams; ++i) out_tbs_.push_back(ctx_->streams[i]->time_base);
    return Status::Ok();
  }

  Status Write(int stream, const Packet& p) {
    ZF_RETURN_IF_ERROR(PacketToAv(p, pkt_.get()));
    pkt_->stream_index = stream;
    pkt_->flags &= AV_PKT_FLAG_KEY;
    av_packet_rescale_ts(pkt_.get(), tbs_[static_cast<size_t>(stream)],
                         out_tbs_[static_cast<size_t>(stream)]);
    int err = av_interleaved_write_frame(ctx_.get(), pkt_.get());
    if (err < 0) return Status::Error("internal", "mux: " + AvErrorString(err));
    return Status::Ok();
  }

  Status Close() {
    int err = av_write_trailer(ctx_.get());
    int cerr = avio_closep(&ctx_->pb);
    if (err < 0 || cerr < 0)
      return Status::Error("io_error", "finishing output: " + AvErrorString(err < 0 ? err : cerr));
    return Status::Ok();
  }

 private:
  OutputFormatPtr ctx_;
  PacketPtr pkt_ = MakePacket();
  std::vector<AVRational> tbs_, out_tbs_;
};

struct Playlist {
  std::vector<double> durations;
  std::string Render() const { return RenderMediaPlaylist(durations); }
};

// Decode timestamps must rise across the joins of independently encoded segments: each
// segment's encoder starts its dts before its first pts (B-frame delay).
class DtsRepair {
 public:
  Status Apply(Packet* p) {
    if (p->dts <= prev_) p->dts = prev_ + 1;
    if (p->dts > p->pts) return Status::Error("internal", "segment timestamps out of order");
    prev_ = p->dts;
    return Status::Ok();
  }

 private:
  int64_t prev_ = INT64_MIN;
};

double Ticks2Sec(int64_t t, int tb) { return static_cast<double>(t) / tb; }

}  // namespace

Result<StitchResult> Stitch(storage::Store& store, const StitchInput& input,
                            const fs::path& out_dir) {
  AvLogCapture log;
  StitchResult result;
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec) return Status::Error("io_error", "cannot create " + out_dir.string());
  if (input.segments == 0 || input.rungs.empty())
    return Status::Error("internal", "nothing to stitch");

  // Segment start times (seconds) on the first rung's grid; every rung shares it.
  std::vector<double> starts;

  std::optional<Track> audio;
  if (input.has_audio) {
    auto a = LoadStream(store, input, AudioObjectName(input.prefix));
    if (!a.ok()) return a.status();
    audio = std::move(*a);
  }

  const double frame_sec = 1.0 / (input.fps > 0 ? input.fps : 30.0);
  for (const RungSettings& rung : input.rungs) {
    RenditionStats stats;
    stats.name = rung.name;
    stats.width = rung.width;
    stats.height = rung.height;
    fs::create_directories(out_dir / rung.name, ec);
    // Pass 1, one segment in memory at a time: the segment files and each segment's facts.
    std::optional<StreamHeader> header;
    std::vector<double> first_sec, last_sec;
    std::vector<uint64_t> seg_bytes;
    DtsRepair dts;
    for (size_t i = 0; i < input.segments; ++i) {
      auto loaded = LoadStream(store, input, SegmentObjectName(input.prefix, rung.name, i));
      if (!loaded.ok()) return loaded.status();
      Track& seg = *loaded;
      const std::string what = rung.name + " segment " + std::to_string(i);
      if (seg.packets.empty()) return Status::Error("internal", what + " is empty");
      if (!(seg.packets.front().flags & kPacketKey))
        return Status::Error("internal", what + " does not start with an IDR");
      if (!header) header = seg.header;
      int64_t first = INT64_MAX, last = INT64_MIN;
      uint64_t bytes = 0;
      for (Packet& p : seg.packets) {
        first = std::min(first, p.pts);
        last = std::max(last, p.pts);
        bytes += p.data.size();
        ZF_RETURN_IF_ERROR(dts.Apply(&p));
      }
      first_sec.push_back(Ticks2Sec(first, kOutputTb));
      last_sec.push_back(Ticks2Sec(last, kOutputTb));
      seg_bytes.push_back(bytes);
      stats.frames += seg.packets.size();
      stats.segment_frames.push_back(seg.packets.size());
      stats.bytes += bytes;
      if (i == 0) stats.codecs = AvcCodecString(seg.packets.front().data);
      FileMuxer mux;
      ZF_RETURN_IF_ERROR(
          mux.Open(out_dir / rung.name / SegmentFileName(i), "mpegts", {&seg.header}, nullptr));
      for (const Packet& p : seg.packets) ZF_RETURN_IF_ERROR(mux.Write(0, p));
      ZF_RETURN_IF_ERROR(mux.Close());
    }
    stats.keyframe_seconds = first_sec;
    Playlist playlist;
    for (size_t i = 0; i < input.segments; ++i) {
      double end = i + 1 < input.segments ? first_sec[i + 1] : last_sec[i] + frame_sec;
      double dur = std::max(end - first_sec[i], frame_sec);
      playlist.durations.push_back(dur);
      stats.peak_bps = std::max(stats.peak_bps,
                                static_cast<int64_t>(static_cast<double>(seg_bytes[i]) * 8 / dur));
      stats.duration_seconds += dur;
    }
    if (starts.empty()) starts = first_sec;
    stats.average_bps = static_cast<int64_t>(static_cast<double>(stats.bytes) * 8 /
                                             std::max(stats.duration_seconds, 1e-3));
    ZF_RETURN_IF_ERROR(WriteFile(out_dir / rung.name / "index.m3u8", playlist.Render()));

    // Pass 2: the progressive MP4, every segment again plus the whole audio track, faststart.
    {
      FileMuxer mux;
      std::vector<const StreamHeader*> streams{&*header};
      if (audio) streams.push_back(&audio->header);
      fs::path mp4 = out_dir / (rung.name + ".mp4");
      ZF_RETURN_IF_ERROR(mux.Open(mp4, "mp4", streams, "+faststart"));
      size_t ai = 0;
      DtsRepair mp4_dts;
      for (size_t i = 0; i < input.segments; ++i) {
        auto loaded = LoadStream(store, input, SegmentObjectName(input.prefix, rung.name, i));
        if (!loaded.ok()) return loaded.status();
        for (Packet& p : loaded->packets) {
          ZF_RETURN_IF_ERROR(mp4_dts.Apply(&p));
          // Interleave audio up to this video packet's time.
          while (audio && ai < audio->packets.size() &&
                 Ticks2Sec(audio->packets[ai].pts, kAudioSampleRate) <=
                     Ticks2Sec(p.dts, kOutputTb)) {
            ZF_RETURN_IF_ERROR(mux.Write(1, audio->packets[ai++]));
          }
          ZF_RETURN_IF_ERROR(mux.Write(0, p));
        }
      }
      while (audio && ai < audio->packets.size())
        ZF_RETURN_IF_ERROR(mux.Write(1, audio->packets[ai++]));
      ZF_RETURN_IF_ERROR(mux.Close());
    }
    result.renditions.push_back(std::move(stats));
  }

  // Audio rendition cut on the video segment grid.
  int64_t audio_peak = 0, audio_bytes = 0;
  if (audio) {
    Playlist playlist;
    fs::create_directories(out_dir / "audio", ec);
    size_t ai = 0;
    const auto& ap = audio->packets;
    for (size_t i = 0; i < starts.size(); ++i) {
      size_t begin = ai;
      bool last = i + 1 == starts.size();
      while (ai < ap.size() && (last || Ticks2Sec(ap[ai].pts, kAudioSampleRate) < starts[i + 1]))
        ++ai;
      FileMuxer mux;
      ZF_RETURN_IF_ERROR(
          mux.Open(out_dir / "audio" / SegmentFileName(i), "mpegts", {&audio->header}, nullptr));
      int64_t bytes = 0;
      for (size_t k = begin; k < ai; ++k) {
        ZF_RETURN_IF_ERROR(mux.Write(0, ap[k]));
        bytes += static_cast<int64_t>(ap[k].data.size());
      }
      ZF_RETURN_IF_ERROR(mux.Close());
      double seg_start =
          i == 0
              ? std::min(starts[0],
                         begin < ap.size() ? Ticks2Sec(ap[begin].pts, kAudioSampleRate) : starts[0])
              : starts[i];
      double seg_end =
          last ? (ai > begin ? Ticks2Sec(ap[ai - 1].pts + ap[ai - 1].duration, kAudioSampleRate)
                             : seg_start)
               : starts[i + 1];
      double dur = std::max(seg_end - seg_start, 0.001);
      playlist.durations.push_back(dur);
      audio_peak = std::max<int64_t>(audio_peak, static_cast<int64_t>(bytes * 8 / dur));
      audio_bytes += bytes;
    }
    ZF_RETURN_IF_ERROR(WriteFile(out_dir / "audio" / "index.m3u8", playlist.Render()));
    result.audio_packets = ap.size();
    if (!ap.empty())
      result.audio_seconds =
          Ticks2Sec(ap.back().pts + ap.back().duration - std::max<int64_t>(ap.front().pts, 0),
                    kAudioSampleRate);
  }

  // Thumbnail.
  {
    auto jpeg = store.GetObject(ThumbnailObjectName(input.prefix));
    if (!jpeg.ok()) return jpeg.status().WithContext("thumbnail");
    storage::ContentHash hash;
    hash.Update(*jpeg);
    ZF_RETURN_IF_ERROR(CheckBound(input, ThumbnailObjectName(input.prefix), hash.value()));
    ZF_RETURN_IF_ERROR(WriteFile(out_dir / "thumbnail.jpg", *jpeg));
  }

  // Master playlist, last: its presence marks a complete ladder.
  double audio_avg = 0;
  if (audio && result.audio_seconds > 0)
    audio_avg = static_cast<double>(audio_bytes) * 8 / result.audio_seconds;
  std::vector<VariantEntry> variants;
  for (const RenditionStats& r : result.renditions) {
    VariantEntry v;
    v.uri = r.name + "/index.m3u8";
    v.average_bandwidth = r.average_bps + static_cast<int64_t>(audio_avg);
    v.bandwidth = std::max(r.peak_bps + audio_peak, v.average_bandwidth);
    v.codecs = r.codecs + (audio ? ",mp4a.40.2" : "");
    v.width = r.width;
    v.height = r.height;
    v.frame_rate = input.fps;
    variants.push_back(v);
  }
  std::string master = RenderMasterPlaylist(variants, audio ? "audio/index.m3u8" : "");
  ZF_RETURN_IF_ERROR(WriteFile(out_dir / "master.m3u8", master));
  return result;
}

}  // namespace zerofarm::transcode
