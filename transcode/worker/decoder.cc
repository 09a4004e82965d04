#include "decoder.h"

#include "codec_allowlist.h"
#include "zerofarm/transcode/packet_stream_av.h"

namespace zerofarm::transcode::worker {
namespace {

// A decoder that keeps failing on receive is given up on after this many errors in a row, so a
// broken decoder state cannot spin the worker forever.
constexpr int kMaxConsecutiveReceiveErrors = 64;

Status AvFailure(const char* what, int err) {
  return Status::Error(ErrorCode::kInternal, std::string(what) + ": " + AvErrorString(err));
}

}  // namespace

Result<std::unique_ptr<Decoder>> Decoder::Open(const StreamHeader& header, int threads,
                                               int64_t max_pixels) {
  auto codec = FindAllowedDecoder(header);
  if (!codec.ok()) return codec.status();
  CodecContextPtr ctx(avcodec_alloc_context3(*codec));
  CodecParametersPtr par(avcodec_parameters_alloc());
  if (!ctx || !par) return Status::Error(ErrorCode::kInternal, "out of memory for a decoder");
  ZF_RETURN_IF_ERROR(HeaderToParameters(header, par.get()));
  int ret = avcodec_parameters_to_context(ctx.get(), par.get());
  if (ret < 0) return AvFailure("avcodec_parameters_to_context", ret);
  ctx->pkt_timebase = AVRational{header.time_base_num, header.time_base_den};
  ctx->thread_count = threads;
  ctx->max_pixels = max_pixels;
  ret = avcodec_open2(ctx.get(), *codec, nullptr);
  if (ret == AVERROR(ENOMEM)) return AvFailure("avcodec_open2", ret);
  if (ret < 0)
    return Status::Error(ErrorCode::kUndecodable,
                         std::string("the ") + (*codec)->name +
                             " decoder refuses the stream parameters: " + AvErrorString(ret));
  return std::unique_ptr<Decoder>(new Decoder(std::move(ctx)));
}

Result<Decoder::Sent> Decoder::Send(const AVPacket* packet) {
  if (flushing_) return Status::Error(ErrorCode::kInternal, "packet sent to a flushed decoder");
  if (!packet) flushing_ = true;
  int ret = avcodec_send_packet(ctx_.get(), packet);
  if (ret >= 0) return Sent::kAccepted;
  if (ret == AVERROR(EAGAIN)) {
    if (!packet) flushing_ = false;
    return Sent::kFull;
  }
  if (ret == AVERROR(ENOMEM)) return AvFailure("avcodec_send_packet", ret);
  // The packet (or the end of input) was taken; the error is the outcome of decoding earlier
  // input, which frame threads report late. Draining goes on either way.
  ++errors_;
  last_error_ = ret;
  return packet ? Sent::kRejected : Sent::kAccepted;
}

Result<Decoder::Received> Decoder::Receive(AVFrame* frame) {
  for (int failures = 0; failures < kMaxConsecutiveReceiveErrors; ++failures) {
    int ret = avcodec_receive_frame(ctx_.get(), frame);
    if (ret >= 0) return Received::kFrame;
    if (ret == AVERROR(EAGAIN)) return Received::kNeedsInput;
    if (ret == AVERROR_EOF) return Received::kDrained;
    if (ret == AVERROR(ENOMEM)) return AvFailure("avcodec_receive_frame", ret);
    ++errors_;
    last_error_ = ret;
  }
  return flushing_ ? Received::kDrained : Received::kNeedsInput;
}

Status Decoder::Decode(const AVPacket* packet, const FrameSink& sink) {
  for (;;) {
    auto sent = Send(packet);
    if (!sent.ok()) return sent.status();
    bool got_frame = false;
    for (;;) {
      auto received = Receive(frame_.get());
      if (!received.ok()) return received.status();
      if (*received != Received::kFrame) break;
      got_frame = true;
      Status status = sink(frame_.get());
      av_frame_unref(frame_.get());
      ZF_RETURN_IF_ERROR(status);
    }
    if (*sent != Sent::kFull) return Status::Ok();
    // A decoder that refuses input must have output ready; anything else would spin forever.
    if (!got_frame)
      return Status::Error(ErrorCode::kInternal, "the decoder refuses input without output");
  }
}

Status CheckDecodable(const Decoder& decoder, uint64_t fed, uint64_t frames_decoded,
                      const std::string& nothing_fed, const std::string& unit) {
  if (fed == 0) return Status::Error(ErrorCode::kUndecodable, nothing_fed);
  const std::string last =
      decoder.last_error() ? " (last error: " + AvErrorString(decoder.last_error()) + ")" : "";
  if (frames_decoded == 0)
    return Status::Error(ErrorCode::kUndecodable,
                         "no " + unit + " decodes from " + std::to_string(fed) + " packets" + last);
  if (decoder.errors() * 2 > fed)
    return Status::Error(ErrorCode::kUndecodable, std::to_string(decoder.errors()) + " of " +
                                                      std::to_string(fed) +
                                                      " packets fail to decode" + last);
  return Status::Ok();
}

}  // namespace zerofarm::transcode::worker
