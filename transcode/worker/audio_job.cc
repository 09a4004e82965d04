#include <algorithm>
#include <cmath>
#include <memory>
#include <optional>
#include <string>

extern "C" {
#include <libavutil/audio_fifo.h>
#include <libavutil/channel_layout.h>
#include <libavutil/opt.h>
}

#include "decoder.h"
#include "encoder.h"
#include "fd_io.h"
#include "jobs.h"
#include "zerofarm/transcode/packet_stream_av.h"

namespace zerofarm::transcode::worker {
namespace {

constexpr int kInputFd = kWorkerInputFd;
constexpr AVSampleFormat kOutputFormat = AV_SAMPLE_FMT_FLTP;
constexpr int kMaxSampleRate = 768000;
constexpr int kMaxChannels = 64;

Status AvFailure(const std::string& what, int err) {
  return Status::Error(ErrorCode::kInternal, what + ": " + AvErrorString(err));
}

AVChannelLayout Stereo() {
  AVChannelLayout layout{};
  av_channel_layout_default(&layout, 2);
  return layout;
}

struct FifoDeleter {
  void operator()(AVAudioFifo* f) const { av_audio_fifo_free(f); }
};
using FifoPtr = std::unique_ptr<AVAudioFifo, FifoDeleter>;

struct ChannelLayoutOwner {
  AVChannelLayout layout{};
  ChannelLayoutOwner() = default;
  ChannelLayoutOwner(const ChannelLayoutOwner&) = delete;
  ChannelLayoutOwner& operator=(const ChannelLayoutOwner&) = delete;
  ~ChannelLayoutOwner() { av_channel_layout_uninit(&layout); }
};

// Resamples decoded audio of any format, rate and layout to 48 kHz stereo planar float into a
// FIFO; a change of input format mid-stream flushes the old resampler and starts a new one.
class Resampler {
 public:
  explicit Resampler(AVAudioFifo* fifo) : fifo_(fifo) {}

  Status Push(const AVFrame& frame) {
    if (frame.sample_rate <= 0 || frame.sample_rate > kMaxSampleRate ||
        frame.ch_layout.nb_channels <= 0 || frame.ch_layout.nb_channels > kMaxChannels)
      return Status::Error(ErrorCode::kUnsupported,
                           "decoded audio has an unsupported rate or layout");
    Key key;
    key.format = frame.format;
    key.rate = frame.sample_rate;
    if (frame.ch_layout.order == AV_CHANNEL_ORDER_UNSPEC) {
      av_channel_layout_default(&key.layout.layout, frame.ch_layout.nb_channels);
    } else if (av_channel_layout_copy(&key.layout.layout, &frame.ch_layout) < 0) {
      return Status::Error(ErrorCode::kInternal, "out of memory for a channel layout");
    }
    if (!swr_ || !Same(key)) {
      ZF_RETURN_IF_ERROR(Flush());
      ZF_RETURN_IF_ERROR(Configure(key));
    }
    return Convert(const_cast<const uint8_t**>(frame.extended_data), frame.nb_samples);
  }

  // Drains the resampler's delayed samples into the FIFO.
  Status Flush() {
    if (!swr_) return Status::Ok();
    ZF_RETURN_IF_ERROR(Convert(nullptr, 0));
    swr_.reset();
    return Status::Ok();
  }

 private:
  struct Key {
    int format = -1, rate = 0;
    ChannelLayoutOwner layout;
  };

  bool Same(const Key& key) const {
    return key.format == format_ && key.rate == rate_ &&
           av_channel_layout_compare(&key.layout.layout, &layout_.layout) == 0;
  }

  Status Configure(Key& key) {  // not const: swr_alloc_set_opts2 takes mutable layouts
    AVChannelLayout stereo = Stereo();
    SwrContext* raw = nullptr;
    int ret =
        swr_alloc_set_opts2(&raw, &stereo, kOutputFormat, kAudioSampleRate, &key.layout.layout,
                            static_cast<AVSampleFormat>(key.format), key.rate, 0, nullptr);
    SwrContextPtr swr(raw);
    if (ret < 0) return AvFailure("configuring the resampler", ret);
    ret = swr_init(swr.get());
    if (ret < 0) return AvFailure("starting the resampler", ret);
    swr_ = std::move(swr);
    format_ = key.format;
    rate_ = key.rate;
    av_channel_layout_uninit(&layout_.layout);
    if (av_channel_layout_copy(&layout_.layout, &key.layout.layout) < 0)
      return Status::Error(ErrorCode::kInternal, "out of memory for a channel layout");
    return Status::Ok();
  }

  Status Convert(const uint8_t** input, int samples) {
    const int room = swr_get_out_samples(swr_.get(), samples);
    if (room < 0) return AvFailure("sizing resampler output", room);
    if (room == 0) return Status::Ok();
    FramePtr out = MakeFrame();
    if (!out) return Status::Error(ErrorCode::kInternal, "out of memory for audio");
    out->format = kOutputFormat;
    out->sample_rate = kAudioSampleRate;
    out->nb_samples = room;
    out->ch_layout = Stereo();
    if (av_frame_get_buffer(out.get(), 0) < 0)
      return Status::Error(ErrorCode::kInternal, "out of memory for audio");
    const int got = swr_convert(swr_.get(), out->data, room, input, samples);
    if (got < 0) return AvFailure("resampling", got);
    if (got > 0 && av_audio_fifo_write(fifo_, reinterpret_cast<void**>(out->data), got) < got)
      return Status::Error(ErrorCode::kInternal, "out of memory for the audio FIFO");
    return Status::Ok();
  }

  AVAudioFifo* fifo_;
  SwrContextPtr swr_;
  int format_ = -1, rate_ = 0;
  ChannelLayoutOwner layout_;
};

Result<CodecContextPtr> OpenAac(int bitrate_kbps) {
  const AVCodec* codec = avcodec_find_encoder_by_name("aac");
  if (!codec) return Status::Error(ErrorCode::kInternal, "this build has no aac encoder");
  CodecContextPtr ctx(avcodec_alloc_context3(codec));
  if (!ctx) return Status::Error(ErrorCode::kInternal, "out of memory for an encoder");
  ctx->sample_fmt = kOutputFormat;
  ctx->sample_rate = kAudioSampleRate;
  ctx->ch_layout = Stereo();
  ctx->bit_rate = int64_t{bitrate_kbps} * 1000;
  ctx->profile = FF_PROFILE_AAC_LOW;
  ctx->time_base = AVRational{1, kAudioSampleRate};
  int ret = avcodec_open2(ctx.get(), codec, nullptr);
  if (ret < 0) return AvFailure("opening the aac encoder", ret);
  return ctx;
}

class AudioJob {
 public:
  AudioJob(const AudioTask& task, WorkerReport* report) : task_(task), report_(report) {}

  Status Run() {
    if (task_.output_fd <= 2)
      return Status::Error(ErrorCode::kInvalidTask, "the output fd is invalid");
    if (task_.bitrate_kbps < 8 || task_.bitrate_kbps > 512)
      return Status::Error(ErrorCode::kInvalidTask, "bitrate_kbps must be 8-512");
    if (!std::isfinite(task_.origin_seconds))
      return Status::Error(ErrorCode::kInvalidTask, "origin_seconds is not a number");
    BufferedFdReader input(kInputFd);
    PacketStreamReader reader = ReaderOverFd(&input);
    auto header = reader.ReadHeader();
    if (!header.ok()) return header.status();
    ZF_RETURN_IF_ERROR(Start(*header));

    PacketPtr packet = MakePacket();
    const Decoder::FrameSink on_frame = [this](AVFrame* frame) { return OnFrame(*frame); };
    if (!held_) return Status::Error(ErrorCode::kInternal, "out of memory for a frame");
    for (;;) {
      auto next = reader.Next();
      if (!next.ok()) return next.status();
      if (!next->has_value()) break;
      ZF_RETURN_IF_ERROR(PacketToAv(**next, packet.get()));
      ++report_->packets_in;
      ZF_RETURN_IF_ERROR(decoder_->Decode(packet.get(), on_frame));
    }
    ZF_RETURN_IF_ERROR(decoder_->Decode(nullptr, on_frame));
    report_->decode_errors = decoder_->errors();
    ZF_RETURN_IF_ERROR(CheckDecodable());
    ZF_RETURN_IF_ERROR(ProcessHeld(/*last=*/true));

    ZF_RETURN_IF_ERROR(resampler_->Flush());
    ZF_RETURN_IF_ERROR(EncodeFifo(/*final=*/true));
    return encoder_->Finish();
  }

  void FillReport() const {
    report_->rungs.clear();
    if (!writer_) return;
    RungReport r;
    r.name = "aac";
    r.frames = writer_->packets();
    r.bytes = writer_->bytes();
    r.first_pts = writer_->first_pts();
    r.last_pts = writer_->last_pts();
    report_->rungs.push_back(r);
  }

 private:
  Status Start(const StreamHeader& header) {
    if (header.kind != MediaKind::kAudio)
      return Status::Error(ErrorCode::kBadStream, "the input is not an audio stream");
    if (header.sample_rate < 0 || header.sample_rate > kMaxSampleRate || header.channels < 0 ||
        header.channels > kMaxChannels)
      return Status::Error(ErrorCode::kUnsupported,
                           "the audio's rate or channel count is out of range");
    auto decoder = Decoder::Open(header, 1, 0);
    if (!decoder.ok()) return decoder.status();
    decoder_ = std::move(*decoder);
    source_tb_ = AVRational{header.time_base_num, header.time_base_den};

    auto ctx = OpenAac(task_.bitrate_kbps);
    if (!ctx.ok()) return ctx.status();
    frame_size_ = (*ctx)->frame_size > 0 ? (*ctx)->frame_size : 1024;
    writer_ = std::make_unique<PacketStreamWriter>(task_.output_fd);
    // The header carries the encoder's priming (initial_padding): packet pts start that many
    // samples before the first output sample, as FFmpeg's encoder emits them.
    ZF_RETURN_IF_ERROR(writer_->WriteHeader(HeaderFromEncoder(**ctx, MediaKind::kAudio)));
    PacketStreamWriter* writer = writer_.get();
    encoder_ = std::make_unique<Encoder>(
        std::move(*ctx), [writer](const AVPacket& p) { return writer->WritePacket(p); });

    fifo_.reset(av_audio_fifo_alloc(kOutputFormat, 2, 4 * frame_size_));
    if (!fifo_) return Status::Error(ErrorCode::kInternal, "out of memory for the audio FIFO");
    resampler_ = std::make_unique<Resampler>(fifo_.get());
    return Status::Ok();
  }

  // Each frame waits for the next one: only the stream's last frame is trimmed to its packet's
  // duration (the container's end trim; the encoder padding of the source's last packet).
  Status OnFrame(AVFrame& frame) {
    ++report_->frames_decoded;
    ZF_RETURN_IF_ERROR(ProcessHeld(/*last=*/false));
    av_frame_move_ref(held_.get(), &frame);
    have_held_ = true;
    return Status::Ok();
  }

  Status ProcessHeld(bool last) {
    if (!have_held_) return Status::Ok();
    have_held_ = false;
    AVFrame& frame = *held_;
    if (last && frame.pkt_duration > 0 && frame.sample_rate > 0) {
      const int64_t samples =
          av_rescale_q(frame.pkt_duration, source_tb_, AVRational{1, frame.sample_rate});
      if (samples > 0 && samples < frame.nb_samples) frame.nb_samples = static_cast<int>(samples);
    }
    Status status = Process(frame);
    av_frame_unref(&frame);
    return status;
  }

  Status Process(const AVFrame& frame) {
    if (!next_pts_) {
      // The first output sample sits at the first decoded frame's time; from there the output
      // is contiguous by sample count: gaps and overlaps in the input timestamps are ignored.
      const int64_t ts =
          frame.best_effort_timestamp != AV_NOPTS_VALUE ? frame.best_effort_timestamp : frame.pts;
      const double seconds = ts == AV_NOPTS_VALUE ? task_.origin_seconds : ts * av_q2d(source_tb_);
      next_pts_ = std::llround((seconds - task_.origin_seconds) * kAudioSampleRate);
    }
    ZF_RETURN_IF_ERROR(resampler_->Push(frame));
    return EncodeFifo(/*final=*/false);
  }

  // Encodes every whole frame in the FIFO; with `final`, the short remainder too.
  Status EncodeFifo(bool final) {
    for (;;) {
      const int available = av_audio_fifo_size(fifo_.get());
      if (available == 0 || (!final && available < frame_size_)) return Status::Ok();
      FramePtr frame = MakeFrame();
      if (!frame) return Status::Error(ErrorCode::kInternal, "out of memory for audio");
      frame->format = kOutputFormat;
      frame->sample_rate = kAudioSampleRate;
      frame->ch_layout = Stereo();
      frame->nb_samples = std::min(available, frame_size_);
      if (av_frame_get_buffer(frame.get(), 0) < 0)
        return Status::Error(ErrorCode::kInternal, "out of memory for audio");
      if (av_audio_fifo_read(fifo_.get(), reinterpret_cast<void**>(frame->data),
                             frame->nb_samples) < frame->nb_samples)
        return Status::Error(ErrorCode::kInternal, "the audio FIFO ran short");
      frame->pts = next_pts_.value_or(0);
      next_pts_ = frame->pts + frame->nb_samples;
      report_->frames_output += static_cast<uint64_t>(frame->nb_samples);
      ZF_RETURN_IF_ERROR(encoder_->Encode(*frame));
    }
  }

  Status CheckDecodable() const {
    return worker::CheckDecodable(*decoder_, report_->packets_in, report_->frames_decoded,
                                  "the input holds no audio packet", "audio");
  }

  const AudioTask& task_;
  WorkerReport* report_;
  std::unique_ptr<Decoder> decoder_;
  AVRational source_tb_{1, 1};
  int frame_size_ = 1024;
  std::unique_ptr<PacketStreamWriter> writer_;
  std::unique_ptr<Encoder> encoder_;
  FifoPtr fifo_;
  std::unique_ptr<Resampler> resampler_;
  std::optional<int64_t> next_pts_;
  FramePtr held_ = MakeFrame();
  bool have_held_ = false;
};

}  // namespace

Status RunAudio(const AudioTask& task, WorkerReport* report) {
  AudioJob job(task, report);
  Status status = job.Run();
  job.FillReport();
  return status;
}

}  // namespace zerofarm::transcode::worker
