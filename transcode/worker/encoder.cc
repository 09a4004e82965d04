#include "encoder.h"

namespace zerofarm::transcode::worker {
namespace {

Status AvFailure(const char* what, int err) {
  return Status::Error(ErrorCode::kInternal, std::string(what) + ": " + AvErrorString(err));
}

}  // namespace

Result<Encoder::Drained> Encoder::Drain() {
  for (;;) {
    int ret = avcodec_receive_packet(ctx_.get(), packet_.get());
    if (ret == AVERROR(EAGAIN)) return Drained::kNeedsInput;
    if (ret == AVERROR_EOF) return Drained::kEndOfStream;
    if (ret < 0) return AvFailure("avcodec_receive_packet", ret);
    ++packets_out_;
    Status status = sink_(*packet_);
    av_packet_unref(packet_.get());
    ZF_RETURN_IF_ERROR(status);
  }
}

Status Encoder::Send(const AVFrame* frame) {
  if (state_ != State::kAccepting)
    return Status::Error(ErrorCode::kInternal, "frame sent to a flushed encoder");
  if (!frame) state_ = State::kFlushing;
  for (;;) {
    int ret = avcodec_send_frame(ctx_.get(), frame);
    if (ret == AVERROR(EAGAIN)) {
      // The encoder wants its output read first; then the same frame goes in again.
      const uint64_t before = packets_out_;
      auto drained = Drain();
      if (!drained.ok()) return drained.status();
      if (packets_out_ == before)
        return Status::Error(ErrorCode::kInternal, "the encoder refuses input without output");
      continue;
    }
    if (ret < 0) return AvFailure(frame ? "avcodec_send_frame" : "flushing the encoder", ret);
    break;
  }
  auto drained = Drain();
  if (!drained.ok()) return drained.status();
  if (state_ == State::kFlushing) {
    if (*drained != Drained::kEndOfStream)
      return Status::Error(ErrorCode::kInternal,
                           "the encoder did not reach end of stream when flushed");
    state_ = State::kFinished;
  }
  return Status::Ok();
}

}  // namespace zerofarm::transcode::worker
