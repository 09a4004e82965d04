// Which decoded frames a task outputs, and their output timestamps. Pure; not thread-safe.
//
// A frame's time is its best-effort timestamp (else its pts) in the source time base. Frames in
// [start_pts, end_pts) are output frames; the others are pre-roll (decoded, then dropped). A frame
// whose time is unknown is placed one tick after the previous decoded frame (at start_pts, else
// origin_pts, when it is the first), so it stays on the same side of the bounds as its
// predecessor. Output pts = rescale(time - origin_pts, source time base -> 1/90000), made strictly
// increasing: a pts at or below the previous one becomes the previous one + 1.
#pragma once

#include <cstdint>
#include <optional>

extern "C" {
#include <libavutil/rational.h>
}

namespace zerofarm::transcode::worker {

class FrameTimeline {
 public:
  struct Placement {
    bool output = false;
    int64_t source_time = 0;  // source time base
    int64_t out_pts = 0;      // output time base; meaningful when output
  };

  FrameTimeline(AVRational source_time_base, AVRational output_time_base,
                std::optional<int64_t> start_pts, std::optional<int64_t> end_pts,
                int64_t origin_pts);

  // `timestamp` is the frame's time in the source time base, INT64_MIN when unknown.
  Placement Place(int64_t timestamp);

 private:
  AVRational source_tb_, output_tb_;
  std::optional<int64_t> start_, end_;
  int64_t origin_;
  std::optional<int64_t> last_source_time_;
  std::optional<int64_t> last_out_pts_;
};

}  // namespace zerofarm::transcode::worker
