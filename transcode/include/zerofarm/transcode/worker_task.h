// The zerofarm-worker ABI: what a task asks for and what the worker reports.
//
// Invocation: `zerofarm-worker video|audio --task JSON`. The worker opens nothing itself:
//   fd 0  the input packet stream (one or more concatenated chunk objects),
//   fd 1  the report (one JSON object, written once at exit),
//   fd 2  diagnostics for people,
//   further fds as named in the task: one packet stream per rung (video) or the AAC track
//   (audio), and optionally the thumbnail JPEG.
// Exit status 0 when report.ok, 1 when the input is at fault (report.error says why: never
// worth a retry), 2 for internal failures (worth a retry).
// Plain values; thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "zerofarm/base/status.h"
#include "zerofarm/transcode/ladder.h"

namespace zerofarm::transcode {

inline constexpr int kWorkerInputFd = 0;
inline constexpr int kWorkerReportFd = 1;
inline constexpr int kOutputTimeBase = 90000;   // video output packets are in 1/90000 s
inline constexpr int kAudioSampleRate = 48000;  // audio output packets are in 1/48000 s

struct RungOutput {
  RungSettings rung;
  int fd = -1;
};

struct VideoTask {
  // Packets with ordinal < decode_from are skipped (decode_from is a keyframe); packets with
  // ordinal > decode_to are not fed to the decoder.
  uint64_t decode_from = 0;
  uint64_t decode_to = UINT64_MAX;
  // Frames whose timestamp (source time base) is in [start_pts, end_pts) are encoded; the rest
  // are decoded only (pre-roll). Absent bound = unbounded.
  std::optional<int64_t> start_pts;
  std::optional<int64_t> end_pts;
  // Output pts = rescale(frame pts - origin_pts, source time base -> 1/90000).
  int64_t origin_pts = 0;
  std::string preset = "veryfast";
  int threads = 1;  // encoder threads per rung
  std::vector<RungOutput> outputs;
  // The first frame at or after thumbnail_pts is written as a JPEG of this size to thumbnail_fd.
  std::optional<int64_t> thumbnail_pts;
  int thumbnail_fd = -1;
  int thumbnail_width = 0, thumbnail_height = 0;
};

struct AudioTask {
  // Output pts (1/48000 s) = (input time - origin_seconds) * 48000.
  double origin_seconds = 0;
  int bitrate_kbps = 128;
  int output_fd = -1;
};

struct RungReport {
  std::string name;
  uint64_t frames = 0;
  uint64_t bytes = 0;
  int64_t first_pts = -1, last_pts = -1;  // output time base
};

struct WorkerReport {
  bool ok = false;
  // Set when the report holds an error: kUndecodable, kUnsupportedCodec, kBadStream, kInternal...
  std::optional<ErrorCode> error_code;
  std::string error_message;  // one line
  uint64_t packets_in = 0;
  uint64_t frames_decoded = 0;
  uint64_t frames_output = 0;  // frames in [start_pts, end_pts) (video) or samples (audio)
  uint64_t decode_errors = 0;
  double cpu_seconds = 0, wall_seconds = 0;
  std::vector<RungReport> rungs;
};

std::string ToJson(const RungSettings& rung);
Result<RungSettings> RungSettingsFromJson(const std::string& json);
std::string ToJson(const VideoTask& task);
std::string ToJson(const AudioTask& task);
std::string ToJson(const WorkerReport& report);
Result<VideoTask> VideoTaskFromJson(const std::string& json);
Result<AudioTask> AudioTaskFromJson(const std::string& json);
Result<WorkerReport> WorkerReportFromJson(const std::string& json);

}  // namespace zerofarm::transcode
