// Which codecs zerofarm accepts and the software decoder that reads each: one table, shared by
// ingest (a fast, clear refusal before anything is stored) and the worker (which never opens a
// decoder outside it, as Chromium's FFmpegGlue does). Pure functions; thread-safe.
#pragma once

#include <array>

namespace zerofarm::transcode {

struct AcceptedCodec {
  int codec_id;  // AVCodecID
  // FFmpeg decoders by preference, named so that no hardware wrapper (cuvid, qsv, v4l2m2m) or
  // unexpected external library is ever picked by the codec id alone; unused slots are null.
  std::array<const char*, 3> decoders;
};

// The table entry of an accepted video (audio) codec; nullptr for any other codec.
const AcceptedCodec* FindVideoCodec(int codec_id);
const AcceptedCodec* FindAudioCodec(int codec_id);

inline bool IsSupportedVideoCodec(int codec_id) { return FindVideoCodec(codec_id) != nullptr; }
inline bool IsSupportedAudioCodec(int codec_id) { return FindAudioCodec(codec_id) != nullptr; }

}  // namespace zerofarm::transcode
