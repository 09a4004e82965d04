// The one encode loop: an opened libavcodec encoder around send/receive, with would-block and
// end-of-stream as states. Every packet that becomes ready goes to the sink at once.
// Not thread-safe: one owner (the encoder may run its own threads inside).
#pragma once

#include <cstdint>
#include <functional>

#include "zerofarm/base/status.h"
#include "zerofarm/transcode/ffmpeg_ptr.h"

namespace zerofarm::transcode::worker {

class Encoder {
 public:
  using PacketSink = std::function<Status(const AVPacket& packet)>;

  // `ctx` is an opened encoder.
  Encoder(CodecContextPtr ctx, PacketSink sink) : ctx_(std::move(ctx)), sink_(std::move(sink)) {}

  // Encodes one frame (the encoder copies or references it; the caller keeps ownership).
  Status Encode(const AVFrame& frame) { return Send(&frame); }
  // Flushes: every delayed packet goes to the sink. Encode may not be called afterwards.
  Status Finish() { return Send(nullptr); }

  const AVCodecContext& context() const { return *ctx_; }

 private:
  enum class State { kAccepting, kFlushing, kFinished };
  enum class Drained { kNeedsInput, kEndOfStream };

  Status Send(const AVFrame* frame);
  Result<Drained> Drain();

  CodecContextPtr ctx_;
  PacketSink sink_;
  PacketPtr packet_ = MakePacket();
  State state_ = State::kAccepting;
  uint64_t packets_out_ = 0;
};

}  // namespace zerofarm::transcode::worker
