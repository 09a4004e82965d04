#include <algorithm>
#include <memory>
#include <set>
#include <string>
#include <vector>

extern "C" {
#include <libavutil/opt.h>
}

#include "av_log_sink.h"
#include "decoder.h"
#include "encoder.h"
#include "fd_io.h"
#include "frame_converter.h"
#include "frame_timeline.h"
#include "jobs.h"
#include "packet_durations.h"
#include "zerofarm/transcode/ladder.h"
#include "zerofarm/transcode/packet_stream_av.h"

namespace zerofarm::transcode::worker {
namespace {

constexpr int kInputFd = kWorkerInputFd;
// Every task is one HLS segment whose first frame must be its only IDR: the GOP is longer than
// any segment, scene cuts never insert keyframes, and GOPs are closed.
constexpr int kGopSize = 100000;
constexpr const char* kX264Params = "scenecut=0:open-gop=0";
constexpr int kThumbnailQscale = 3;
constexpr AVRational kFallbackFrameRate{30, 1};

Status InvalidTask(const std::string& why) { return Status::Error(ErrorCode::kInvalidTask, why); }

Status ValidateTask(const VideoTask& task) {
  if (task.threads < 1 || task.threads > kMaxThreads)
    return InvalidTask("threads must be 1-" + std::to_string(kMaxThreads));
  if (task.decode_from > task.decode_to) return InvalidTask("decode_from is after decode_to");
  if (task.start_pts && task.end_pts && *task.start_pts >= *task.end_pts)
    return InvalidTask("start_pts is not before end_pts");
  if (!IsX264Preset(task.preset)) return InvalidTask("unknown x264 preset '" + task.preset + "'");
  if (task.outputs.empty() && !task.thumbnail_pts) return InvalidTask("the task has no output");
  std::set<int> fds;
  auto claim = [&fds](int fd) { return fd > 2 && fds.insert(fd).second; };
  for (const RungOutput& o : task.outputs) {
    const RungSettings& r = o.rung;
    if (r.width <= 0 || r.height <= 0 || r.width % 2 || r.height % 2 || r.width > kMaxDimension ||
        r.height > kMaxDimension)
      return InvalidTask("rung " + r.name + " has an invalid size");
    if (r.crf < 0 || r.crf > 51) return InvalidTask("rung " + r.name + " has an invalid crf");
    if (r.maxrate_kbps < 0 || r.bufsize_kbps < 0)
      return InvalidTask("rung " + r.name + " has an invalid rate cap");
    if (!claim(o.fd)) return InvalidTask("rung " + r.name + " has an invalid or shared fd");
  }
  if (task.thumbnail_pts) {
    if (!claim(task.thumbnail_fd)) return InvalidTask("the thumbnail has an invalid or shared fd");
    if (task.thumbnail_width < 0 || task.thumbnail_height < 0 ||
        task.thumbnail_width > kMaxDimension || task.thumbnail_height > kMaxDimension)
      return InvalidTask("the thumbnail has an invalid size");
  }
  return Status::Ok();
}

Status AvFailure(const std::string& what, int err) {
  return Status::Error(ErrorCode::kInternal, what + ": " + AvErrorString(err));
}

AVRational OutputFrameRate(const StreamHeader& header) {
  if (header.avg_fps_num > 0 && header.avg_fps_den > 0 &&
      header.avg_fps_num <= 1000LL * header.avg_fps_den) {
    AVRational rate{};
    av_reduce(&rate.num, &rate.den, header.avg_fps_num, header.avg_fps_den, 1 << 30);
    return rate;
  }
  return kFallbackFrameRate;
}

Result<CodecContextPtr> OpenX264(const RungSettings& rung, const VideoTask& task,
                                 AVRational frame_rate, const OutputColor& color) {
  const AVCodec* codec = avcodec_find_encoder_by_name("libx264");
  if (!codec) return Status::Error(ErrorCode::kInternal, "this build has no libx264 encoder");
  CodecContextPtr ctx(avcodec_alloc_context3(codec));
  if (!ctx) return Status::Error(ErrorCode::kInternal, "out of memory for an encoder");
  ctx->width = rung.width;
  ctx->height = rung.height;
  ctx->pix_fmt = AV_PIX_FMT_YUV420P;
  ctx->sample_aspect_ratio = AVRational{1, 1};
  ctx->time_base = AVRational{1, kOutputTimeBase};
  ctx->framerate = frame_rate;
  ctx->gop_size = kGopSize;
  ctx->keyint_min = kGopSize;  // x264 clamps it to gop/2+1; no scene cut may start a GOP anyway
  ctx->rc_max_rate = int64_t{rung.maxrate_kbps} * 1000;
  ctx->rc_buffer_size = rung.bufsize_kbps * 1000;
  ctx->thread_count = task.threads;
  ctx->color_range = AVCOL_RANGE_MPEG;
  ctx->colorspace = color.matrix;
  ctx->color_primaries = color.primaries;
  ctx->color_trc = color.trc;
  ctx->chroma_sample_location = AVCHROMA_LOC_LEFT;
  // No AV_CODEC_FLAG_GLOBAL_HEADER: SPS/PPS stay in-band so that each segment decodes alone.
  const std::string crf = std::to_string(rung.crf);
  const std::pair<const char*, std::string> options[] = {{"preset", task.preset},
                                                         {"profile", rung.profile},
                                                         {"level", rung.level},
                                                         {"crf", crf},
                                                         {"x264-params", kX264Params}};
  for (const auto& [name, value] : options) {
    if (value.empty()) continue;  // x264's own choice
    int ret = av_opt_set(ctx->priv_data, name, value.c_str(), 0);
    if (ret < 0) return AvFailure(std::string("setting x264 option ") + name, ret);
  }
  int ret = avcodec_open2(ctx.get(), codec, nullptr);
  if (ret < 0) return AvFailure("opening libx264 for rung " + rung.name, ret);
  return ctx;
}

Result<CodecContextPtr> OpenJpeg(int width, int height) {
  const AVCodec* codec = avcodec_find_encoder_by_name("mjpeg");
  if (!codec) return Status::Error(ErrorCode::kInternal, "this build has no mjpeg encoder");
  CodecContextPtr ctx(avcodec_alloc_context3(codec));
  if (!ctx) return Status::Error(ErrorCode::kInternal, "out of memory for an encoder");
  ctx->width = width;
  ctx->height = height;
  ctx->pix_fmt = AV_PIX_FMT_YUV420P;
  ctx->color_range = AVCOL_RANGE_JPEG;  // JFIF: full range, BT.601
  ctx->colorspace = AVCOL_SPC_BT470BG;
  ctx->sample_aspect_ratio = AVRational{1, 1};
  ctx->time_base = AVRational{1, 25};
  ctx->flags |= AV_CODEC_FLAG_QSCALE;
  ctx->global_quality = FF_QP2LAMBDA * kThumbnailQscale;
  ctx->thread_count = 1;
  int ret = avcodec_open2(ctx.get(), codec, nullptr);
  if (ret < 0) return AvFailure("opening the mjpeg encoder", ret);
  return ctx;
}

struct Rung {
  RungSettings settings;
  std::unique_ptr<FrameConverter> converter;
  std::unique_ptr<PacketStreamWriter> writer;
  std::unique_ptr<PacketDurations> durations;  // between the encoder and the writer
  std::unique_ptr<Encoder> encoder;
};

class VideoJob {
 public:
  VideoJob(const VideoTask& task, WorkerReport* report) : task_(task), report_(report) {}

  Status Run() {
    ZF_RETURN_IF_ERROR(ValidateTask(task_));
    BufferedFdReader input(kInputFd);
    PacketStreamReader reader = ReaderOverFd(&input);
    auto header = reader.ReadHeader();
    if (!header.ok()) return header.status();
    ZF_RETURN_IF_ERROR(Start(*header));

    PacketPtr packet = MakePacket();
    std::optional<uint64_t> last_fed;
    const Decoder::FrameSink on_frame = [this](AVFrame* frame) { return OnFrame(frame); };
    for (;;) {
      auto next = reader.Next();
      if (!next.ok()) return next.status();
      if (!next->has_value()) break;
      const Packet& p = **next;
      // Packets outside [decode_from, decode_to] are read (the input is drained) but not fed;
      // an ordinal already fed (overlapping chunk objects) is skipped.
      if (p.ordinal < task_.decode_from || p.ordinal > task_.decode_to) continue;
      if (last_fed && p.ordinal <= *last_fed) continue;
      last_fed = p.ordinal;
      ZF_RETURN_IF_ERROR(PacketToAv(p, packet.get()));
      ++report_->packets_in;
      ZF_RETURN_IF_ERROR(decoder_->Decode(packet.get(), on_frame));
    }
    ZF_RETURN_IF_ERROR(decoder_->Decode(nullptr, on_frame));
    report_->decode_errors = decoder_->errors();
    ZF_RETURN_IF_ERROR(CheckDecodable());

    for (Rung& rung : rungs_) {
      ZF_RETURN_IF_ERROR(rung.encoder->Finish());
      ZF_RETURN_IF_ERROR(rung.durations->Finish(last_frame_duration_));
    }
    if (task_.thumbnail_pts && !thumbnail_written_ && thumbnail_fallback_)
      ZF_RETURN_IF_ERROR(WriteThumbnail(*thumbnail_fallback_));
    if (report_->frames_output == 0) LogLine("warning: no decoded frame lies in the task's range");
    return Status::Ok();
  }

  // Counters of the rungs, for the report (also after a failure).
  void FillRungReports() const {
    report_->rungs.clear();
    for (const Rung& rung : rungs_) {
      RungReport r;
      r.name = rung.settings.name;
      r.frames = rung.writer->packets();
      r.bytes = rung.writer->bytes();
      r.first_pts = rung.writer->first_pts();
      r.last_pts = rung.writer->last_pts();
      report_->rungs.push_back(r);
    }
  }

 private:
  Status Start(const StreamHeader& header) {
    if (header.kind != MediaKind::kVideo)
      return Status::Error(ErrorCode::kBadStream, "the input is not a video stream");
    if (header.width > kMaxDimension || header.height > kMaxDimension)
      return Status::Error(ErrorCode::kUnsupported, "frames of " + std::to_string(header.width) +
                                                        "x" + std::to_string(header.height) +
                                                        " exceed the limit of " +
                                                        std::to_string(kMaxDimension));
    auto decoder = Decoder::Open(header, task_.threads, int64_t{kMaxDimension} * kMaxDimension);
    if (!decoder.ok()) return decoder.status();
    decoder_ = std::move(*decoder);
    timeline_.emplace(AVRational{header.time_base_num, header.time_base_den},
                      AVRational{1, kOutputTimeBase}, task_.start_pts, task_.end_pts,
                      task_.origin_pts);
    const int rotation = QuarterTurns(header.rotation_degrees);
    const AVColorSpace source_matrix = ResolveSourceMatrix(header);
    const AVRational frame_rate = OutputFrameRate(header);
    source_tb_ = AVRational{header.time_base_num, header.time_base_den};
    frame_interval_ = av_rescale_q(1, av_inv_q(frame_rate), AVRational{1, kOutputTimeBase});
    for (const RungOutput& output : task_.outputs) {
      const OutputColor color = ChooseOutputColor(header, output.rung.width, output.rung.height);
      auto ctx = OpenX264(output.rung, task_, frame_rate, color);
      if (!ctx.ok()) return ctx.status();
      Rung rung;
      rung.settings = output.rung;
      rung.converter = std::make_unique<FrameConverter>(ConverterTarget{
          output.rung.width, output.rung.height, rotation, color.matrix, false, source_matrix});
      rung.writer = std::make_unique<PacketStreamWriter>(output.fd);
      ZF_RETURN_IF_ERROR(rung.writer->WriteHeader(HeaderFromEncoder(**ctx, MediaKind::kVideo)));
      PacketStreamWriter* writer = rung.writer.get();
      rung.durations = std::make_unique<PacketDurations>(
          [writer](const AVPacket& p) { return writer->WritePacket(p); });
      PacketDurations* durations = rung.durations.get();
      rung.encoder = std::make_unique<Encoder>(
          std::move(*ctx), [durations](const AVPacket& p) { return durations->Push(p); });
      rungs_.push_back(std::move(rung));
    }
    if (task_.thumbnail_pts) {
      int width = task_.thumbnail_width, height = task_.thumbnail_height;
      if (width <= 0 || height <= 0) {  // unset: the first rung's size, else the source's
        const bool turned = rotation == 90 || rotation == 270;
        width = rungs_.empty() ? (turned ? header.height : header.width) : rungs_[0].settings.width;
        height =
            rungs_.empty() ? (turned ? header.width : header.height) : rungs_[0].settings.height;
      }
      thumbnail_converter_ = std::make_unique<FrameConverter>(
          ConverterTarget{width, height, rotation, AVCOL_SPC_BT470BG, true, source_matrix});
    }
    return Status::Ok();
  }

  Status OnFrame(AVFrame* frame) {
    ++report_->frames_decoded;
    if (frame->width > kMaxDimension || frame->height > kMaxDimension)
      return Status::Error(ErrorCode::kUnsupported, "a decoded frame exceeds the size limit");
    const int64_t ts =
        frame->best_effort_timestamp != AV_NOPTS_VALUE ? frame->best_effort_timestamp : frame->pts;
    const FrameTimeline::Placement placement = timeline_->Place(ts);
    if (!placement.output) return Status::Ok();
    ++report_->frames_output;
    last_frame_duration_ = frame->pkt_duration > 0
                               ? std::max<int64_t>(1, av_rescale_q(frame->pkt_duration, source_tb_,
                                                                   AVRational{1, kOutputTimeBase}))
                               : frame_interval_;
    for (Rung& rung : rungs_) {
      auto picture = rung.converter->Convert(*frame);
      if (!picture.ok()) return picture.status();
      (*picture)->pts = placement.out_pts;
      ZF_RETURN_IF_ERROR(rung.durations->AddFrame(placement.out_pts));
      ZF_RETURN_IF_ERROR(rung.encoder->Encode(**picture));
    }
    if (task_.thumbnail_pts && !thumbnail_written_) {
      if (placement.source_time >= *task_.thumbnail_pts) {
        thumbnail_fallback_.reset();
        return WriteThumbnail(*frame);
      }
      // Until a frame reaches thumbnail_pts, the latest output frame stands in.
      if (!thumbnail_fallback_) thumbnail_fallback_ = MakeFrame();
      if (!thumbnail_fallback_)
        return Status::Error(ErrorCode::kInternal, "out of memory for a frame");
      av_frame_unref(thumbnail_fallback_.get());
      if (av_frame_ref(thumbnail_fallback_.get(), frame) < 0)
        return Status::Error(ErrorCode::kInternal, "out of memory for the thumbnail frame");
    }
    return Status::Ok();
  }

  Status WriteThumbnail(const AVFrame& frame) {
    thumbnail_written_ = true;
    auto picture = thumbnail_converter_->Convert(frame);
    if (!picture.ok()) return picture.status();
    auto ctx = OpenJpeg((*picture)->width, (*picture)->height);
    if (!ctx.ok()) return ctx.status();
    (*picture)->pts = 0;
    (*picture)->quality = (*ctx)->global_quality;
    std::string jpeg;
    Encoder encoder(std::move(*ctx), [&jpeg](const AVPacket& p) {
      jpeg.append(reinterpret_cast<const char*>(p.data), static_cast<size_t>(p.size));
      return Status::Ok();
    });
    ZF_RETURN_IF_ERROR(encoder.Encode(**picture));
    ZF_RETURN_IF_ERROR(encoder.Finish());
    return WriteBytes(task_.thumbnail_fd,
                      std::span(reinterpret_cast<const uint8_t*>(jpeg.data()), jpeg.size()));
  }

  Status CheckDecodable() const {
    return worker::CheckDecodable(*decoder_, report_->packets_in, report_->frames_decoded,
                                  "the input holds no packet in the task's range", "frame");
  }

  const VideoTask& task_;
  WorkerReport* report_;
  std::unique_ptr<Decoder> decoder_;
  std::optional<FrameTimeline> timeline_;
  AVRational source_tb_{1, 1};
  int64_t frame_interval_ = 1;       // output time base, from the nominal frame rate
  int64_t last_frame_duration_ = 1;  // of the latest output frame, output time base
  std::vector<Rung> rungs_;
  std::unique_ptr<FrameConverter> thumbnail_converter_;
  FramePtr thumbnail_fallback_;
  bool thumbnail_written_ = false;
};

}  // namespace

Status RunVideo(const VideoTask& task, WorkerReport* report) {
  VideoJob job(task, report);
  Status status = job.Run();
  job.FillRungReports();
  return status;
}

}  // namespace zerofarm::transcode::worker
