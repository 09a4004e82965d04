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
    return Status::Error(ErrorCode::kOutputMismatch, name + ": no task reported this output");
  if (it->second != actual)
    return Status::Error(ErrorCode::kOutputMismatch,
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

// The track a running task has written so far: a record cut short is where the task has got
// to. nullopt while not even the header is there.
std::optional<Track> PartialTrack(const std::string& so_far) {
  size_t cursor = 0;
  PacketStreamReader r = ReaderOverString(so_far, &cursor);
  auto h = r.ReadHeader();
  if (!h.ok()) return std::nullopt;
  Track t;
  t.header = *h;
  for (;;) {
    auto p = r.Next();
    if (!p.ok() || !p->has_value()) break;
    t.packets.push_back(std::move(**p));
  }
  return t;
}

// Where a file is written before it is renamed into place: a reader sees it whole or not at all.
fs::path AsidePath(const fs::path& path) {
  return path.parent_path() / ("." + path.filename().string() + ".tmp");
}

Status RenameIntoPlace(const fs::path& aside, const fs::path& path) {
  std::error_code ec;
  fs::rename(aside, path, ec);
  if (ec)
    return Status::Error(ErrorCode::kIoError,
                         "cannot write " + path.string() + ": " + ec.message());
  return Status::Ok();
}

Status WriteFile(const fs::path& path, std::string_view bytes) {
  const fs::path aside = AsidePath(path);
  std::ofstream out(aside, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) return Status::Error(ErrorCode::kIoError, "cannot write " + path.string());
  return RenameIntoPlace(aside, path);
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

  // Writes `path` aside; Close renames it into place.
  Status Open(const fs::path& path, const char* format,
              const std::vector<const StreamHeader*>& streams, const char* movflags) {
    path_ = path;
    aside_ = AsidePath(path);
    AVFormatContext* raw = nullptr;
    int err = avformat_alloc_output_context2(&raw, nullptr, format, aside_.c_str());
    if (err < 0 || !raw)
      return Status::Error(ErrorCode::kInternal, "no muxer for " + std::string(format));
    ctx_.reset(raw);
    ctx_->flags |= AVFMT_FLAG_BITEXACT;
    // Segment files keep their timestamps exactly as encoded: shifting each file separately
    // would break the continuity between segments. The MP4 muxer is left to its default, which
    // turns negative starts (B-frame delay, AAC priming) into edit lists.
    if (std::string_view(format) == "mpegts") ctx_->avoid_negative_ts = AVFMT_AVOID_NEG_TS_DISABLED;
    for (const StreamHeader* h : streams) {
      AVStream* st = avformat_new_stream(ctx_.get(), nullptr);
      if (!st) return Status::Error(ErrorCode::kInternal, "out of memory");
      ZF_RETURN_IF_ERROR(HeaderToParameters(*h, st->codecpar));
      st->codecpar->codec_tag = 0;
      st->time_base = AVRational{h->time_base_num, h->time_base_den};
      if (h->kind == MediaKind::kVideo && h->avg_fps_num > 0)
        st->avg_frame_rate = AVRational{h->avg_fps_num, h->avg_fps_den};
      tbs_.push_back(st->time_base);
    }
    if ((err = avio_open(&ctx_->pb, aside_.c_str(), AVIO_FLAG_WRITE)) < 0)
      return Status::Error(ErrorCode::kIoError,
                           "cannot create " + path.string() + ": " + AvErrorString(err));
    AVDictionary* opts = nullptr;
    if (movflags) av_dict_set(&opts, "movflags", movflags, 0);
    err = avformat_write_header(ctx_.get(), &opts);
    av_dict_free(&opts);
    if (err < 0)
      return Status::Error(ErrorCode::kInternal,
                           "cannot start " + path.string() + ": " + AvErrorString(err));
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
    if (err < 0) return Status::Error(ErrorCode::kInternal, "mux: " + AvErrorString(err));
    return Status::Ok();
  }

  Status Close() {
    int err = av_write_trailer(ctx_.get());
    int cerr = avio_closep(&ctx_->pb);
    if (err < 0 || cerr < 0)
      return Status::Error(ErrorCode::kIoError,
                           "finishing output: " + AvErrorString(err < 0 ? err : cerr));
    return RenameIntoPlace(aside_, path_);
  }

 private:
  fs::path path_, aside_;
  OutputFormatPtr ctx_;
  PacketPtr pkt_ = MakePacket();
  std::vector<AVRational> tbs_, out_tbs_;
};

// Decode timestamps must rise across the joins of independently encoded segments: each
// segment's encoder starts its dts before its first pts (B-frame delay).
class DtsRepair {
 public:
  Status Apply(Packet* p) {
    if (p->dts <= prev_) p->dts = prev_ + 1;
    if (p->dts > p->pts)
      return Status::Error(ErrorCode::kInternal, "segment timestamps out of order");
    prev_ = p->dts;
    return Status::Ok();
  }

 private:
  int64_t prev_ = INT64_MIN;
};

double Ticks2Sec(int64_t t, int tb) { return static_cast<double>(t) / tb; }

// The variants of the master playlist from what the rungs' published segments hold.
std::string MasterPlaylist(const std::vector<RenditionStats>& renditions, bool has_audio,
                           int64_t audio_peak, double audio_avg, double fps) {
  std::vector<VariantEntry> variants;
  for (const RenditionStats& r : renditions) {
    VariantEntry v;
    v.uri = r.name + "/index.m3u8";
    v.average_bandwidth = r.average_bps + static_cast<int64_t>(audio_avg);
    v.bandwidth = std::max(r.peak_bps + audio_peak, v.average_bandwidth);
    v.codecs = r.codecs + (has_audio ? ",mp4a.40.2" : "");
    v.width = r.width;
    v.height = r.height;
    v.frame_rate = fps;
    variants.push_back(v);
  }
  return RenderMasterPlaylist(variants, has_audio ? "audio/index.m3u8" : "");
}

// How many segments a playlist written earlier lists (0 without one).
size_t ListedSegments(const fs::path& playlist) {
  std::ifstream in(playlist);
  size_t n = 0;
  for (std::string line; std::getline(in, line);)
    if (line.rfind("seg", 0) == 0) ++n;
  return n;
}

// The progressive MP4 of a rung: every segment again, interleaved with the whole audio track.
Status WriteProgressiveMp4(storage::Store& store, const StitchInput& input,
                           const RungSettings& rung, const Track* audio, const fs::path& out_dir) {
  FileMuxer mux;
  std::optional<StreamHeader> header;
  size_t ai = 0;
  DtsRepair mp4_dts;
  for (size_t i = 0; i < input.segments; ++i) {
    auto loaded = LoadStream(store, input, SegmentObjectName(input.prefix, rung.name, i));
    if (!loaded.ok()) return loaded.status();
    if (!header) {
      header = loaded->header;
      std::vector<const StreamHeader*> streams{&*header};
      if (audio) streams.push_back(&audio->header);
      ZF_RETURN_IF_ERROR(mux.Open(out_dir / (rung.name + ".mp4"), "mp4", streams, "+faststart"));
    }
    for (Packet& p : loaded->packets) {
      ZF_RETURN_IF_ERROR(mp4_dts.Apply(&p));
      // Interleave audio up to this video packet's time.
      while (audio && ai < audio->packets.size() &&
             Ticks2Sec(audio->packets[ai].pts, kAudioSampleRate) <= Ticks2Sec(p.dts, kOutputTb))
        ZF_RETURN_IF_ERROR(mux.Write(1, audio->packets[ai++]));
      ZF_RETURN_IF_ERROR(mux.Write(0, p));
    }
  }
  while (audio && ai < audio->packets.size())
    ZF_RETURN_IF_ERROR(mux.Write(1, audio->packets[ai++]));
  return mux.Close();
}

}  // namespace

struct Publisher::State {
  storage::Store& store;
  fs::path out;
  bool started = false;
  size_t kept = 0;  // segments an earlier Publisher listed: their files stay as they are
  size_t published = 0;
  bool ended = false;
  std::vector<RenditionStats> stats;  // per rung
  std::vector<DtsRepair> dts;         // per rung, carried from segment to segment
  std::vector<double> last_sec;       // per rung: the last published frame's time
  std::vector<double> durations;      // of the published segments
  // The last published segment's planned end, when it was published on it (not on the next
  // segment's first frame): the next segment must start there.
  std::optional<double> published_end;
  double playable = 0;
  std::map<size_t, std::vector<Track>> loaded;  // segments read ahead, per rung
  std::optional<Track> audio;
  bool audio_partial = false;  // `audio` is what the running audio task wrote so far
  size_t audio_next = 0;       // the first audio packet not yet published
  std::vector<double> audio_durations;
  int64_t audio_bytes = 0, audio_peak = 0;
  uint64_t audio_packets = 0;
  double audio_seconds = 0;

  State(storage::Store& s, fs::path o) : store(s), out(std::move(o)) {}

  // Segment i of every rung, read once.
  Result<std::vector<Track>*> Load(const StitchInput& in, size_t i) {
    auto it = loaded.find(i);
    if (it != loaded.end()) return &it->second;
    std::vector<Track> tracks;
    for (const RungSettings& rung : in.rungs) {
      auto t = LoadStream(store, in, SegmentObjectName(in.prefix, rung.name, i));
      if (!t.ok()) return t.status();
      tracks.push_back(std::move(*t));
    }
    return &loaded.emplace(i, std::move(tracks)).first->second;
  }

  // Where segment i ends: its planned end when segment i + 1 has not finished (`complete` is
  // false) and the plan knows it, else the first frame time of segment i + 1 (read ahead), or
  // nullopt when i is the last segment.
  Result<std::optional<double>> NextFirst(const StitchInput& in, size_t i, bool complete) {
    if (i + 1 >= in.segments) {
      if (!complete && PlannedEnd(in, i)) return PlannedEnd(in, i);
      return std::optional<double>();
    }
    auto next = Load(in, i + 1);
    if (!next.ok()) return next.status();
    const auto& np = (**next).front().packets;
    if (np.empty())
      return Status::Error(ErrorCode::kVerifyFailed,
                           "segment " + std::to_string(i + 1) + " is empty");
    int64_t first = INT64_MAX;
    for (const Packet& p : np) first = std::min(first, p.pts);
    return std::optional<double>(Ticks2Sec(first, kOutputTb));
  }

  static std::optional<double> PlannedEnd(const StitchInput& in, size_t i) {
    return i < in.segment_ends.size() ? in.segment_ends[i] : std::nullopt;
  }

  Status Start(const StitchInput& in) {
    std::error_code ec;
    fs::create_directories(out, ec);
    for (const RungSettings& rung : in.rungs) {
      fs::create_directories(out / rung.name, ec);
      RenditionStats st;
      st.name = rung.name;
      st.width = rung.width;
      st.height = rung.height;
      stats.push_back(std::move(st));
    }
    if (in.has_audio) fs::create_directories(out / "audio", ec);
    if (ec) return Status::Error(ErrorCode::kIoError, "cannot create " + out.string());
    dts.resize(in.rungs.size());
    last_sec.assign(in.rungs.size(), -1e300);
    kept = ListedSegments(out / in.rungs.front().name / "index.m3u8");
    started = true;
    return Status::Ok();
  }

  // Checks that segment i holds, in every rung, the frames its task made, starting with an IDR
  // frame at one instant for all rungs and after the previous segment's end; that instant.
  Result<double> CheckSegment(const StitchInput& in, size_t i,
                              const std::vector<Track>& tracks) const {
    const std::string seg = "segment " + std::to_string(i);
    double first_sec = 0;
    for (size_t r = 0; r < tracks.size(); ++r) {
      const std::string what = in.rungs[r].name + " " + seg;
      const auto& packets = tracks[r].packets;
      if (packets.empty()) return Status::Error(ErrorCode::kVerifyFailed, what + " is empty");
      if (!(packets.front().flags & kPacketKey))
        return Status::Error(ErrorCode::kVerifyFailed, what + " does not start with an IDR frame");
      if (i < in.segment_frames.size() && packets.size() != in.segment_frames[i])
        return Status::Error(ErrorCode::kVerifyFailed,
                             what + " has " + std::to_string(packets.size()) +
                                 " frames, its task made " + std::to_string(in.segment_frames[i]));
      if (packets.size() != tracks.front().packets.size())
        return Status::Error(ErrorCode::kVerifyFailed,
                             what + " has another frame count than " + in.rungs.front().name);
      int64_t first = INT64_MAX;
      for (const Packet& p : packets) first = std::min(first, p.pts);
      const double f = Ticks2Sec(first, kOutputTb);
      if (r == 0) first_sec = f;
      if (f != first_sec)
        return Status::Error(ErrorCode::kVerifyFailed,
                             what + " starts at another instant than " + in.rungs.front().name);
      if (f <= last_sec[r])
        return Status::Error(ErrorCode::kVerifyFailed,
                             what + " starts before the previous segment ends");
    }
    // The previous segment went out on its planned end, before this one was done: this one
    // cannot start before it (its frames are those at or after that instant). It may start
    // later: a cut between frames of a variable-frame-rate source (the frame before it then
    // shows until this one, as media timestamps say).
    if (published_end && first_sec < *published_end - 0.5 / kOutputTb)
      return Status::Error(ErrorCode::kVerifyFailed,
                           seg + " starts at " + std::to_string(first_sec) +
                               " s, before the end its previous segment was published with (" +
                               std::to_string(*published_end) + " s)");
    return first_sec;
  }

  // Counts segment i of rung r (starting at first_sec) in the rung's stats and writes its file,
  // unless an earlier Publisher listed it.
  Status PublishRung(const StitchInput& in, size_t i, size_t r, Track& track, double first_sec,
                     std::optional<double> next_first) {
    const double frame_sec = 1.0 / (in.fps > 0 ? in.fps : 30.0);
    RenditionStats& st = stats[r];
    int64_t last = INT64_MIN;
    uint64_t bytes = 0;
    for (Packet& p : track.packets) {
      last = std::max(last, p.pts);
      bytes += p.data.size();
      ZF_RETURN_IF_ERROR(dts[r].Apply(&p));
    }
    last_sec[r] = Ticks2Sec(last, kOutputTb);
    const double end = next_first ? *next_first : last_sec[r] + frame_sec;
    const double dur = std::max(end - first_sec, frame_sec);
    if (r == 0) durations.push_back(dur);
    st.frames += track.packets.size();
    st.segment_frames.push_back(track.packets.size());
    st.keyframe_seconds.push_back(first_sec);
    st.bytes += bytes;
    st.duration_seconds += dur;
    st.peak_bps = std::max(st.peak_bps, static_cast<int64_t>(static_cast<double>(bytes) * 8 / dur));
    st.average_bps = static_cast<int64_t>(static_cast<double>(st.bytes) * 8 /
                                          std::max(st.duration_seconds, 1e-3));
    if (i == 0) st.codecs = AvcCodecString(track.packets.front().data);
    const fs::path file = out / in.rungs[r].name / SegmentFileName(i);
    if (i < kept && fs::exists(file)) return Status::Ok();  // listed before: never written again
    FileMuxer mux;
    ZF_RETURN_IF_ERROR(mux.Open(file, "mpegts", {&track.header}, nullptr));
    for (const Packet& p : track.packets) ZF_RETURN_IF_ERROR(mux.Write(0, p));
    return mux.Close();
  }

  // Checks segment i of every rung and writes its files; `next_first` is the next segment's
  // first frame time, if there is a next segment.
  Status PublishSegment(const StitchInput& in, size_t i, std::vector<Track>& tracks,
                        std::optional<double> next_first) {
    auto first_sec = CheckSegment(in, i, tracks);
    if (!first_sec.ok()) return first_sec.status();
    for (size_t r = 0; r < tracks.size(); ++r)
      ZF_RETURN_IF_ERROR(PublishRung(in, i, r, tracks[r], *first_sec, next_first));
    playable += durations.back();
    if (audio) ZF_RETURN_IF_ERROR(PublishAudio(i, *first_sec, next_first));
    return Status::Ok();
  }

  // The audio of segment i: cut on the video's grid, up to the next segment's first frame.
  Status PublishAudio(size_t i, double first_sec, std::optional<double> next_first) {
    const auto& ap = audio->packets;
    const size_t begin = audio_next;
    while (audio_next < ap.size() &&
           (!next_first || Ticks2Sec(ap[audio_next].pts, kAudioSampleRate) < *next_first))
      ++audio_next;
    int64_t bytes = 0;
    for (size_t k = begin; k < audio_next; ++k) bytes += static_cast<int64_t>(ap[k].data.size());
    const fs::path file = out / "audio" / SegmentFileName(i);
    if (!(i < kept && fs::exists(file))) {
      FileMuxer mux;
      ZF_RETURN_IF_ERROR(mux.Open(file, "mpegts", {&audio->header}, nullptr));
      for (size_t k = begin; k < audio_next; ++k) ZF_RETURN_IF_ERROR(mux.Write(0, ap[k]));
      ZF_RETURN_IF_ERROR(mux.Close());
    }
    const double seg_start =
        i == 0 ? std::min(first_sec, begin < ap.size() ? Ticks2Sec(ap[begin].pts, kAudioSampleRate)
                                                       : first_sec)
               : first_sec;
    const double seg_end =
        next_first
            ? *next_first
            : (audio_next > begin ? Ticks2Sec(ap[audio_next - 1].pts + ap[audio_next - 1].duration,
                                              kAudioSampleRate)
                                  : seg_start);
    const double dur = std::max(seg_end - seg_start, 0.001);
    audio_durations.push_back(dur);
    audio_peak = std::max<int64_t>(audio_peak, static_cast<int64_t>(bytes * 8 / dur));
    audio_bytes += bytes;
    return Status::Ok();
  }

  // The audio track to cut: what its running task wrote so far, or the stored one. Switching
  // to the stored track checks that it begins with the packets already published.
  Status UpdateAudio(const StitchInput& in) {
    if (in.audio_so_far) {
      if (audio && !audio_partial) return Status::Ok();
      std::optional<Track> t = PartialTrack(*in.audio_so_far);
      if (!t) return Status::Ok();  // not even the header yet
      if (audio && t->packets.size() < audio_next) return Status::Ok();
      audio = std::move(*t);
      audio_partial = true;
      return Status::Ok();
    }
    if (audio && !audio_partial) return Status::Ok();
    auto a = LoadStream(store, in, AudioObjectName(in.prefix));
    if (!a.ok()) return a.status();
    if (audio) {
      const auto& was = audio->packets;
      const auto& now = a->packets;
      bool same = now.size() >= audio_next;
      for (size_t k = 0; same && k < audio_next; ++k)
        same = was[k].pts == now[k].pts && was[k].data == now[k].data;
      if (!same)
        return Status::Error(ErrorCode::kVerifyFailed,
                             "the finished audio track differs from the audio already published");
    }
    audio = std::move(*a);
    audio_partial = false;
    const auto& ap = audio->packets;
    audio_packets = ap.size();
    if (!ap.empty())
      audio_seconds =
          Ticks2Sec(ap.back().pts + ap.back().duration - std::max<int64_t>(ap.front().pts, 0),
                    kAudioSampleRate);
    return Status::Ok();
  }

  Status WritePlaylists(const StitchInput& in, bool complete) {
    for (const RungSettings& rung : in.rungs)
      ZF_RETURN_IF_ERROR(WriteFile(out / rung.name / "index.m3u8",
                                   RenderMediaPlaylist(durations, complete, in.target_seconds)));
    double audio_avg = 0;
    if (audio) {
      ZF_RETURN_IF_ERROR(
          WriteFile(out / "audio" / "index.m3u8",
                    RenderMediaPlaylist(audio_durations, complete, in.target_seconds)));
      double secs = 0;
      for (double d : audio_durations) secs += d;
      if (secs > 0) audio_avg = static_cast<double>(audio_bytes) * 8 / secs;
    }
    return WriteFile(out / "master.m3u8",
                     MasterPlaylist(stats, audio.has_value(), audio_peak, audio_avg, in.fps));
  }

  Status WriteThumbnail(const StitchInput& in) {
    auto jpeg = store.GetObject(ThumbnailObjectName(in.prefix));
    if (!jpeg.ok()) return jpeg.status().WithContext("thumbnail");
    storage::ContentHash hash;
    hash.Update(*jpeg);
    ZF_RETURN_IF_ERROR(CheckBound(in, ThumbnailObjectName(in.prefix), hash.value()));
    return WriteFile(out / "thumbnail.jpg", *jpeg);
  }
};

Publisher::Publisher(storage::Store& store, fs::path out_dir)
    : s_(std::make_unique<State>(store, std::move(out_dir))) {}
Publisher::~Publisher() = default;

size_t Publisher::published() const { return s_->published; }
double Publisher::playable_seconds() const { return s_->playable; }
const std::vector<RenditionStats>& Publisher::renditions() const { return s_->stats; }
uint64_t Publisher::audio_packets() const { return s_->audio_packets; }
double Publisher::audio_seconds() const { return s_->audio_seconds; }

Status Publisher::Advance(const StitchInput& in, bool complete) {
  AvLogCapture log;
  State& s = *s_;
  if (in.rungs.empty()) return Status::Error(ErrorCode::kInternal, "nothing to publish");
  if (s.ended) return Status::Ok();
  if (!s.started) ZF_RETURN_IF_ERROR(s.Start(in));
  // The last finished segment waits for the next one's first frame unless its end is planned.
  size_t limit = in.segments;
  if (!complete && in.segments > 0 && !State::PlannedEnd(in, in.segments - 1)) --limit;
  if (s.published >= limit && !complete) return Status::Ok();
  if (in.has_audio) ZF_RETURN_IF_ERROR(s.UpdateAudio(in));
  const size_t before = s.published;
  while (s.published < limit) {
    const size_t i = s.published;
    auto tracks = s.Load(in, i);
    if (!tracks.ok()) return tracks.status();
    auto next = s.NextFirst(in, i, complete);
    if (!next.ok()) return next.status();
    const std::optional<double> next_first = *next;
    const bool planned = !complete && i + 1 >= in.segments;
    // The audio still being encoded must reach past this segment's end.
    if (s.audio_partial && (!next_first || s.audio->packets.empty() ||
                            Ticks2Sec(s.audio->packets.back().pts, kAudioSampleRate) < *next_first))
      break;
    ZF_RETURN_IF_ERROR(s.PublishSegment(in, i, **tracks, next_first));
    s.published_end = planned ? next_first : std::nullopt;
    s.loaded.erase(i);
    ++s.published;
  }
  if (s.published == 0 || (s.published == before && !complete)) return Status::Ok();
  // After a restart the playlists on disk list `kept` segments; they are rewritten only once
  // this Publisher lists as many (a rerun audio task may not have reached them yet), so a
  // published segment never leaves a playlist.
  if (!complete && s.published < s.kept) return Status::Ok();
  if (before == 0) ZF_RETURN_IF_ERROR(s.WriteThumbnail(in));
  ZF_RETURN_IF_ERROR(s.WritePlaylists(in, complete));
  if (complete) {
    s.ended = true;
    s.loaded.clear();
  }
  return Status::Ok();
}

Result<StitchResult> Stitch(storage::Store& store, const StitchInput& input,
                            const fs::path& out_dir, Publisher* publisher) {
  AvLogCapture log;
  if (input.segments == 0 || input.rungs.empty())
    return Status::Error(ErrorCode::kInternal, "nothing to stitch");
  std::optional<Publisher> own;
  if (!publisher) publisher = &own.emplace(store, out_dir);
  ZF_RETURN_IF_ERROR(publisher->Advance(input, /*complete=*/true));

  std::optional<Track> audio;
  if (input.has_audio) {
    auto a = LoadStream(store, input, AudioObjectName(input.prefix));
    if (!a.ok()) return a.status();
    audio = std::move(*a);
  }
  for (const RungSettings& rung : input.rungs)
    ZF_RETURN_IF_ERROR(WriteProgressiveMp4(store, input, rung, audio ? &*audio : nullptr, out_dir));
  StitchResult result;
  result.renditions = publisher->renditions();
  result.audio_packets = publisher->audio_packets();
  result.audio_seconds = publisher->audio_seconds();
  return result;
}

}  // namespace zerofarm::transcode
