#include "frame_timeline.h"

extern "C" {
#include <libavutil/avutil.h>
#include <libavutil/mathematics.h>
}

namespace zerofarm::transcode::worker {

FrameTimeline::FrameTimeline(AVRational source_time_base, AVRational output_time_base,
                             std::optional<int64_t> start_pts, std::optional<int64_t> end_pts,
                             int64_t origin_pts)
    : source_tb_(source_time_base),
      output_tb_(output_time_base),
      start_(start_pts),
      end_(end_pts),
      origin_(origin_pts) {}

FrameTimeline::Placement FrameTimeline::Place(int64_t timestamp) {
  Placement p;
  if (timestamp == AV_NOPTS_VALUE) {
    p.source_time = last_source_time_ ? *last_source_time_ + 1 : start_.value_or(origin_);
  } else {
    p.source_time = timestamp;
  }
  last_source_time_ = p.source_time;
  p.output = (!start_ || p.source_time >= *start_) && (!end_ || p.source_time < *end_);
  if (!p.output) return p;
  p.out_pts = av_rescale_q(p.source_time - origin_, source_tb_, output_tb_);
  if (last_out_pts_ && p.out_pts <= *last_out_pts_) p.out_pts = *last_out_pts_ + 1;
  last_out_pts_ = p.out_pts;
  return p;
}

}  // namespace zerofarm::transcode::worker
