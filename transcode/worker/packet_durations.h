// Gives encoded video packets their durations, which libx264 leaves at 0: a frame lasts until the
// next output frame's pts, the last one for its source frame's duration. Packets wait in decode
// order until their frame's duration is known (at most the encoder's delay), then go on to the
// sink unchanged otherwise. Not thread-safe: one per encoder.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>

#include "zerofarm/base/status.h"
#include "zerofarm/transcode/ffmpeg_ptr.h"

namespace zerofarm::transcode::worker {

class PacketDurations {
 public:
  using PacketSink = std::function<Status(const AVPacket& packet)>;
  explicit PacketDurations(PacketSink sink) : sink_(std::move(sink)) {}

  // Registers the next frame sent to the encoder (strictly increasing pts).
  Status AddFrame(int64_t pts);
  // Takes an encoded packet; it is passed on once its duration is known.
  Status Push(const AVPacket& packet);
  // After the encoder is flushed: the last frame lasts `last_duration`; everything goes out.
  Status Finish(int64_t last_duration);

 private:
  Status Release();

  PacketSink sink_;
  std::optional<int64_t> last_frame_pts_;
  std::map<int64_t, int64_t> durations_;  // frame pts -> duration, until its packet is out
  std::deque<PacketPtr> pending_;         // decode order
};

}  // namespace zerofarm::transcode::worker
