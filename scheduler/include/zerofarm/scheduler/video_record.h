// A video as VideoService keeps it and shows it, typed.
//   - VideoRecord: what is kept in the store (meta "videos/<id>") and survives restarts; its
//     JSON is made and read in video_record.cc only.
//   - Video: the record as it stands now, with the live progress of its job; the HTTP layer
//     encodes it for the API (api/openapi.yaml) and the webhooks.
// Plain values: copyable, no shared state.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "zerofarm/base/error_code.h"
#include "zerofarm/base/status.h"
#include "zerofarm/scheduler/transcode_job.h"

namespace zerofarm::scheduler {

enum class VideoStatus { kUploading, kProcessing, kReady, kFailed };
// "uploading", "processing", "ready", "failed": the names in records and in the API.
std::string_view VideoStatusName(VideoStatus status);
std::optional<VideoStatus> ParseVideoStatus(std::string_view name);

// Why a video failed: a stable code and one line for the user.
struct VideoError {
  ErrorCode code = ErrorCode::kInternal;
  std::string message;
};

// One rendition of a ready video, with the API paths of its files.
struct RenditionLink {
  std::string name;  // "720p"
  int width = 0, height = 0;
  int64_t bandwidth = 0;  // peak bits per second
  std::string playlist;   // "/v1/videos/<id>/hls/720p/index.m3u8"
  std::string mp4;        // "/v1/videos/<id>/mp4/720p.mp4"
};

// What a finished job says of the video (a ready video's record holds it).
struct ReadyFacts {
  double duration_seconds = 0;
  int width = 0, height = 0;
  double fps = 0;
  std::vector<std::string> warnings;  // what the renditions lack and why
  std::vector<RenditionLink> renditions;
  std::vector<TaskProgress> chunks;   // the farm view of its segments when it finished
  std::optional<TaskProgress> audio;  // the audio track's task; none without an audio track
  // What the tasks moved between machines.
  uint64_t task_input_bytes = 0;
  uint64_t task_input_bytes_remote = 0;
  uint64_t task_output_bytes_sent = 0;
};

struct VideoRecord {
  std::string id;  // "v_" + 16 hex digits
  std::string tenant;
  VideoStatus status = VideoStatus::kUploading;
  std::string filename;
  std::string created_at;  // ISO 8601, UTC, to the second
  int64_t created_ns = 0;  // the list order
  uint64_t bytes_received = 0;
  std::optional<uint64_t> size;     // the declared or final length
  std::vector<std::string> ladder;  // "1080p", ...: asked for; once ready, what was made
  std::string preset = "veryfast";
  bool resumable = false;  // a tus upload ("kind": "tus"; else "raw")
  std::string playback_policy = "signed";
  std::map<std::string, std::string> metadata;
  std::string passthrough;
  std::string upload_id;                         // resumable only: "u_" + 24 hex digits
  std::optional<std::string> upload_expires_at;  // an unfinished resumable upload's expiry
  std::optional<VideoError> error;               // failed only
  std::optional<ReadyFacts> ready;               // ready only
};
std::string ToJson(const VideoRecord& record);
// "internal" for text that is not a video record.
Result<VideoRecord> VideoRecordFromJson(std::string_view json);

// How far a video's job has come, in the units users count.
struct VideoProgress {
  std::string phase = "ingest";  // "upload", "ingest", "transcode", "stitch", "verify", "done"
  bool ingest_done = false;
  size_t tasks_known = 0;  // video segments
  size_t tasks_done = 0;
  size_t tasks_running = 0;
  double fraction = 0;  // finished work units (segments and the audio track), below 1 until ready
  std::string audio;    // "none", "pending", "done"; "" while the source is not probed
};

// A video now: its record (with the ladder and duration as far as they are known) and its job.
struct Video {
  VideoRecord record;
  VideoProgress progress;
  bool playable = false;  // its HLS head (or all of it) is published
  double playable_seconds = 0;
  std::optional<double> duration_seconds;  // once the source is probed
  std::vector<TaskProgress> chunks;        // the farm view of its segments
  std::optional<TaskProgress> audio;       // the audio track's task, once known
};

// A page of a tenant's videos, newest first.
struct VideoPage {
  std::vector<Video> videos;
  std::optional<std::string> next_cursor;
  size_t total = 0;
};

}  // namespace zerofarm::scheduler
