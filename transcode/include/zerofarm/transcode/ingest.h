// Ingest: demux a source while it streams in, store it, and cut its first video stream into
// chunks and transcode tasks.
//
// The source is read through a custom AVIOContext over a ByteSource (a file being read, or an
// upload still arriving); every byte read is also appended to the object "<prefix>source".
// The first video stream is cut, in decode order, into chunk objects "<prefix>chunks/NNNNN"
// (packet streams, packet_stream.h), each starting where a cut was decided; the first audio
// stream is stored whole as "<prefix>audio". Tasks are planned on a time grid of about
// chunk_seconds: a task starts at a source keyframe near the grid point when there is one, and
// anywhere otherwise, decoding from the preceding keyframe (pre-roll) and dropping the frames
// before its start, so sparse keyframes or open GOPs still give many tasks and every frame is
// owned by exactly one task. Tasks are handed to the sink as soon as their chunks are stored,
// so transcoding can begin before the upload ends.
// Thread safety: Ingest runs on the calling thread; the sink is called on that thread.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "zerofarm/base/status.h"
#include "zerofarm/storage/store.h"
#include "zerofarm/transcode/packet_stream.h"

namespace zerofarm::transcode {

// Random-access bytes of a source. ReadAt may block until the bytes arrive; it returns 0 only
// at the true end of the source.
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  virtual Result<size_t> ReadAt(uint64_t offset, std::span<std::byte> out) = 0;
  // The total size once known (a file: always; an upload: when it has ended).
  virtual std::optional<uint64_t> Size() const = 0;
};

struct SourceInfo {
  std::string container;    // "mov,mp4,m4a,3gp,3g2,mj2"
  std::string video_codec;  // "h264"
  StreamHeader video;       // codec parameters of the first video stream
  std::optional<StreamHeader> audio;
  std::string audio_codec;
  // What the renditions will lack and why ("audio track in codec X is not supported"), for
  // the user; empty when nothing is left out.
  std::vector<std::string> warnings;
  int display_width = 0;  // SAR and rotation applied
  int display_height = 0;
  double fps = 0;          // average frame rate
  int64_t origin_pts = 0;  // video time base; output time 0
  double origin_seconds = 0;
};

struct ChunkInfo {
  uint32_t index = 0;
  std::string object;
  uint64_t first_ordinal = 0, last_ordinal = 0;  // inclusive
  uint64_t packets = 0, bytes = 0;
};

struct TaskPlan {
  uint32_t index = 0;                         // == segment index
  uint64_t decode_from = 0, decode_to = 0;    // packet ordinals, inclusive
  std::optional<int64_t> start_pts, end_pts;  // owned frames: [start, end) in the video time base
  uint32_t first_chunk = 0, last_chunk = 0;   // chunks holding [decode_from, decode_to]
  uint64_t owned_packets = 0;                 // packets whose pts is in [start, end)
  uint64_t preroll_packets = 0;               // decoded only
  double seconds = 0;                         // approximate duration owned
};

class IngestSink {
 public:
  virtual ~IngestSink() = default;
  // Called once, as soon as the video stream is known and the origin fixed.
  virtual void OnSource(const SourceInfo& info) = 0;
  virtual void OnChunk(const ChunkInfo& chunk) = 0;
  virtual void OnTask(const TaskPlan& task) = 0;
  // The audio source object's bytes as ingest stores them, record by record (the header
  // first): an audio task can encode the track while the upload still arrives.
  virtual void OnAudio(std::string_view /*record*/) {}
};

struct IngestOptions {
  double chunk_seconds = 4.0;
  // The first chunks' target lengths (each 0.5 s to chunk_seconds), then chunk_seconds: short
  // segments at the head make a video playable sooner while it is still being transcoded.
  std::vector<double> head_seconds;
  std::string prefix;  // object name prefix, e.g. "jobs/<id>/"
};

struct IngestResult {
  SourceInfo source;
  std::vector<ChunkInfo> chunks;
  std::vector<TaskPlan> tasks;
  uint64_t source_bytes = 0;
  uint64_t video_packets = 0;
  uint64_t audio_packets = 0;
  double video_duration_seconds = 0;
};

// Error codes name the problem for the user: "empty_input", "not_media", "truncated",
// "no_video_stream", "unsupported_codec", "encrypted", "corrupt_container", "io_error".
Result<IngestResult> Ingest(ByteSource& source, storage::Store& store, const IngestOptions& options,
                            IngestSink* sink);

}  // namespace zerofarm::transcode
