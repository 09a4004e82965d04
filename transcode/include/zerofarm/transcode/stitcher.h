// Stitcher: turns the encoded segments of every rung and the encoded audio track into the
// published renditions, without re-encoding:
//   OUT/<rung>/index.m3u8 + OUT/<rung>/segNNNNN.ts   (video-only MPEG-TS, one per task)
//   OUT/audio/index.m3u8 + OUT/audio/segNNNNN.ts     (audio-only, cut on the video's grid)
//   OUT/master.m3u8                                  (once the first segment is published)
//   OUT/<rung>.mp4                                   (progressive, faststart, video + audio)
//   OUT/thumbnail.jpg
// Inputs are store objects: "<prefix>out/<rung>/NNNNN" (video packet streams in 1/90000 s),
// "<prefix>out/audio" (AAC packet stream in 1/48000 s), "<prefix>out/thumbnail.jpg".
// A Publisher publishes the HLS part segment by segment while a job still runs (EVENT
// playlists that only grow); Stitch finishes a video: every segment, VOD playlists, the MP4s.
// Every file appears whole (written aside, then renamed), and a segment file once listed in a
// playlist is never written again.
// Thread safety: Stitch is reentrant; concurrent calls must use different output dirs. A
// Publisher is used by one thread at a time.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
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
  // Frames each segment must hold in every rung (what its task reported); empty = unchecked.
  std::vector<uint64_t> segment_frames;
  // Publisher only: where each segment's task plan ends it (output seconds: its end_pts, less
  // the origin, in 1/90000 s), when the plan has an end. The last finished segment is published
  // on it instead of waiting for the next segment's first frame (which must not start before).
  std::vector<std::optional<double>> segment_ends;
  // The longest segment the video will have, in whole seconds: the playlists' target duration
  // (it must not change while an EVENT playlist grows).
  long target_seconds = 1;
  // Publisher only: the audio track's packet stream as far as its task has written it (the
  // task still runs), or null for the stored, finished track. Segments are published only as
  // far as this audio reaches; once the stored track is used, it must begin with exactly the
  // audio already published.
  const std::string* audio_so_far = nullptr;
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

class Publisher;

// Finishes a video: publishes every segment (continuing `publisher`, which published the head
// while the job ran, when given), ends the playlists and writes the MP4s.
Result<StitchResult> Stitch(storage::Store& store, const StitchInput& input,
                            const std::filesystem::path& out_dir, Publisher* publisher = nullptr);

// Publishes a video's HLS renditions while its tasks still run. Before each segment is listed
// it is checked: it starts with an IDR frame, holds the planned frames in every rung, starts at
// the same instant in every rung, and its timestamps follow the previous segment's.
class Publisher {
 public:
  Publisher(storage::Store& store, std::filesystem::path out_dir);
  ~Publisher();
  Publisher(const Publisher&) = delete;
  Publisher& operator=(const Publisher&) = delete;

  // `input.segments` segments from the start have finished (their outputs and, with audio, the
  // whole audio track are stored). Publishes those not yet published: each one ends where the
  // next one's first frame is, so the last finished one waits for it unless its planned end is
  // known (input.segment_ends) or `complete` (every segment of the video has finished), which
  // also ends the playlists (VOD). A segment published on its planned end is followed by one
  // starting there or later (a cut between frames), or Advance fails "verify_failed". The master
  // playlist and the thumbnail appear with the first segment. Segment files listed by an
  // earlier Publisher on the same dir (before a restart) are kept as they are.
  // Errors: "output_mismatch" (see StitchInput), "verify_failed" (a check above), "io_error".
  Status Advance(const StitchInput& input, bool complete);

  size_t published() const;         // segments listed in the playlists
  double playable_seconds() const;  // their total length
  // Per rung, what the published segments hold (all of them after a complete Advance).
  const std::vector<RenditionStats>& renditions() const;
  uint64_t audio_packets() const;
  double audio_seconds() const;

 private:
  struct State;
  std::unique_ptr<State> s_;
};

}  // namespace zerofarm::transcode
