// Independent checks of media files through the ffprobe and ffmpeg command-line tools only.
// Nothing here links libav*: a mistake in how zerofarm drives FFmpeg cannot hide itself from
// these checks. Every function runs child processes and keeps no state (thread-compatible).
// The tools are `ffprobe`/`ffmpeg` from PATH unless ZEROFARM_FFPROBE / ZEROFARM_FFMPEG name
// other binaries.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "zerofarm/base/status.h"

namespace zerofarm::test {

// The deadline for one probe or decode of a test-sized file. Never a timing assertion: only
// a guard against a hung tool.
inline constexpr std::chrono::seconds kProbeTimeout{600};

std::string FfprobePath();
std::string FfmpegPath();

// One stream as ffprobe describes it.
struct StreamInfo {
  int index = -1;
  std::string type;   // "video", "audio", "subtitle", "data"
  std::string codec;  // codec_name, e.g. "h264"
  std::string profile;
  std::string pix_fmt;
  int width = 0;
  int height = 0;
  int sar_num = 1;  // sample aspect ratio; 1:1 when the file states none
  int sar_den = 1;
  int rotation = 0;  // display-matrix rotation in degrees (-90, 90, 180 or 0)
  int sample_rate = 0;
  int channels = 0;
  std::string avg_frame_rate;  // as ffprobe prints it, e.g. "30000/1001"

  // The frame as shown: sample aspect applied to the width, then rotation.
  int DisplayWidth() const;
  int DisplayHeight() const;
};

struct MediaInfo {
  std::string format_name;  // e.g. "mov,mp4,m4a,3gp,3g2,mj2", "hls", "mpegts"
  std::vector<StreamInfo> streams;

  int Count(const std::string& type) const;
  // The first stream of that type, or nullptr.
  const StreamInfo* First(const std::string& type) const;
};

// Streams and container of a file or playlist (ffprobe -show_streams -show_format).
Result<MediaInfo> ProbeStreams(const std::string& path);

// One decoded video frame of the first video stream, in output (presentation) order.
struct VideoFrame {
  std::optional<double> pts;          // pts_time in seconds; empty when the frame has none
  std::optional<double> best_effort;  // best_effort_timestamp_time
  std::optional<double> duration;     // pkt_duration_time
  bool key = false;
  char pict_type = '?';  // 'I', 'P', 'B', ...
  int width = 0;
  int height = 0;

  // pts when present, else the best-effort timestamp, else NaN.
  double Time() const;
};

struct VideoFrames {
  std::vector<VideoFrame> frames;
  // ffprobe's stderr at -v error: empty when every packet decoded without complaint.
  std::string decoder_messages;
};

// Decodes v:0 of a file or playlist (ffprobe -show_entries frame=...). An error when ffprobe
// fails or the input has no video stream.
Result<VideoFrames> ProbeVideoFrames(const std::string& path);

// Empty when every frame has a pts greater than the one before; otherwise a description of
// the first offending frame ("frame 41: pts 1.366667 <= previous 1.366667").
std::string FindPtsProblem(const std::vector<VideoFrame>& frames);

// Presentation times of the key frames, minus the first frame's time (so files with a
// different start offset, such as MPEG-TS with its 1.4 s, compare equal).
std::vector<double> RelativeKeyframeTimes(const std::vector<VideoFrame>& frames);

// The decoded first audio stream.
struct AudioTrack {
  std::string codec;
  int sample_rate = 0;
  int channels = 0;
  int64_t frames = 0;    // decoded audio frames
  int64_t samples = 0;   // decoded samples per channel, summed over frames
  double first_pts = 0;  // start of the first frame, seconds
  double end_pts = 0;    // latest pts + duration, seconds (container trims are honoured)
  std::string decoder_messages;

  // Playback length: end_pts - first_pts.
  double Duration() const { return end_pts - first_pts; }
};

// Decodes a:0 (ffprobe -show_frames). nullopt when the input has no audio stream.
Result<std::optional<AudioTrack>> ProbeAudio(const std::string& path);

// The reference frame count: what ffprobe -count_frames decodes from v:0.
Result<int64_t> CountDecodedFrames(const std::string& path);

// The reference audio length of a source: ProbeAudio(path)->Duration(), or nullopt when the
// source has no audio stream.
Result<std::optional<double>> SourceAudioDuration(const std::string& path);

// `ffmpeg -v error -i path [extra_args] -enc_time_base -1 -f null -` exits 0 with nothing on
// stderr: every stream it maps decodes without a complaint. (-enc_time_base -1 keeps the
// input's timestamps instead of re-timing variable-frame-rate video.) The error names the
// command and quotes what ffmpeg said.
Status DecodesCleanly(const std::string& path, const std::vector<std::string>& extra_args = {});

// Four-character types of the top-level boxes of an ISO BMFF (MP4) file, in file order.
// Reads only box headers.
Result<std::vector<std::string>> TopLevelBoxes(const std::string& path);
// True when 'moov' comes before 'mdat' (a progressive, "faststart" MP4).
Result<bool> IsFaststart(const std::string& path);

}  // namespace zerofarm::test
