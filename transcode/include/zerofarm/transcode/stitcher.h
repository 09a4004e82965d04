// Stitcher: turns the encoded segments of every rung and the encoded audio track into the
// published renditions, without re-encoding:
//   OUT/<rung>/index.m3u8 + OUT/<rung>/segNNNNN.ts   (video-only MPEG-TS, one per task)
//   OUT/audio/index.m3u8 + OUT/audio/segNNNNN.ts     (audio-only, cut on the video's grid)
//   OUT/master.m3u8                                  (written last)
//   OUT/<rung>.mp4                                   (progressive, faststart, video + audio)
//   OUT/thumbnail.jpg
// Inputs are store objects: "<prefix>out/<rung>/NNNNN" (video packet streams in 1/90000 s),
// "<prefix>out/audio" (AAC packet stream in 1/48000 s), "<prefix>out/thumbnail.jpg".
// Thread safety: Stitch is reentrant; concurrent calls must use different output dirs.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "zerofarm/base/status.h"
#include "zerofarm/storage/store.h"
#include "zerofarm/transcode/ladder.h"

namespace zerofarm::transcode {

struct StitchInput {
  std::string prefix;
  std::vector<RungSettings> rungs;
  size_t segments = 0;
  bool has_audio = false;
  double fps = 0;  // for FRAME-RATE and the last segment's length
  // Object -> the ContentHash (storage/content_hash.h) its task reported. When not empty, every
  // object read must be listed and hold exactly those bytes, or Stitch fails "output_mismatch"
  // naming the object: a stale or foreign copy is never published.
  std::map<std::string, uint64_t> checksums;
};

struct RenditionStats {
  std::string name;
  int width = 0, height = 0;
  uint64_t frames = 0;
  uint64_t bytes = 0;
  double duration_seconds = 0;
  int64_t peak_bps = 0, average_bps = 0;
  std::string codecs;  // "avc1.64001f"
  std::vector<double> keyframe_seconds;
  std::vector<uint64_t> segment_frames;
};

struct StitchResult {
  std::vector<RenditionStats> renditions;
  uint64_t audio_packets = 0;
  double audio_seconds = 0;
};

Result<StitchResult> Stitch(storage::Store& store, const StitchInput& input,
                            const std::filesystem::path& out_dir);

}  // namespace zerofarm::transcode
