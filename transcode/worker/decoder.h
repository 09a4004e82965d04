// The one decode loop: an allow-listed libavcodec decoder around send/receive, with
// would-block and end-of-stream as states. Like the ffmpeg CLI, a packet the decoder rejects is
// counted as a decode error and decoding goes on; the caller decides when too many failed.
// Not thread-safe: one owner (the decoder may run its own threads inside).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include "zerofarm/base/status.h"
#include "zerofarm/transcode/ffmpeg_ptr.h"
#include "zerofarm/transcode/packet_stream.h"

namespace zerofarm::transcode::worker {

class Decoder {
 public:
  enum class Sent { kAccepted, kFull, kRejected };
  enum class Received { kFrame, kNeedsInput, kDrained };
  using FrameSink = std::function<Status(AVFrame* frame)>;

  // Opens the allow-listed decoder for `header` ("unsupported_codec" otherwise) with `threads`
  // decoding threads. Frames larger than max_pixels are refused by the decoder itself.
  static Result<std::unique_ptr<Decoder>> Open(const StreamHeader& header, int threads,
                                               int64_t max_pixels);

  // Feeds one packet; nullptr signals the end of input. kFull: receive frames, then send the
  // same packet again. kRejected: counted as a decode error; the packet is not sent again.
  // An error at the end of input (a frame thread reporting late) is counted, and draining goes on.
  Result<Sent> Send(const AVPacket* packet);
  // The next frame. kNeedsInput: send more input; kDrained: end of input reached and flushed.
  // Errors the decoder reports here are counted as decode errors and skipped.
  Result<Received> Receive(AVFrame* frame);

  // Send, then hand every frame that becomes ready to `sink` (which may keep a reference).
  Status Decode(const AVPacket* packet, const FrameSink& sink);

  uint64_t errors() const { return errors_; }
  int last_error() const { return last_error_; }  // the last AVERROR counted, 0 if none
  const AVCodecContext& context() const { return *ctx_; }

 private:
  explicit Decoder(CodecContextPtr ctx) : ctx_(std::move(ctx)) {}

  CodecContextPtr ctx_;
  FramePtr frame_ = MakeFrame();
  bool flushing_ = false;
  uint64_t errors_ = 0;
  int last_error_ = 0;
};

// The worker's rule for a stream that will not decode, like the ffmpeg CLI's: single packet
// errors are skipped, but no decoded frame at all, or more than half the packets failing, is
// the "undecodable" error. `unit` names what was expected ("frame", "audio").
Status CheckDecodable(const Decoder& decoder, uint64_t packets_fed, uint64_t frames_decoded,
                      const std::string& nothing_fed, const std::string& unit);

}  // namespace zerofarm::transcode::worker
