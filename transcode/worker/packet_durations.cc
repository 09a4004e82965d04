#include "packet_durations.h"

namespace zerofarm::transcode::worker {

Status PacketDurations::AddFrame(int64_t pts) {
  if (last_frame_pts_) durations_[*last_frame_pts_] = pts - *last_frame_pts_;
  last_frame_pts_ = pts;
  return Release();
}

Status PacketDurations::Push(const AVPacket& packet) {
  PacketPtr copy(av_packet_clone(&packet));
  if (!copy) return Status::Error(ErrorCode::kInternal, "out of memory for a packet");
  pending_.push_back(std::move(copy));
  return Release();
}

Status PacketDurations::Finish(int64_t last_duration) {
  if (last_frame_pts_) durations_[*last_frame_pts_] = last_duration;
  last_frame_pts_.reset();
  ZF_RETURN_IF_ERROR(Release());
  // A packet whose pts matches no frame (not expected from libx264) keeps its own duration.
  while (!pending_.empty()) {
    ZF_RETURN_IF_ERROR(sink_(*pending_.front()));
    pending_.pop_front();
  }
  return Status::Ok();
}

Status PacketDurations::Release() {
  while (!pending_.empty()) {
    AVPacket& packet = *pending_.front();
    auto known = durations_.find(packet.pts);
    if (known == durations_.end()) return Status::Ok();
    packet.duration = known->second;
    durations_.erase(known);
    ZF_RETURN_IF_ERROR(sink_(packet));
    pending_.pop_front();
  }
  return Status::Ok();
}

}  // namespace zerofarm::transcode::worker
