// Which codecs zerofarm accepts, shared by ingest (fast, clear refusal) and the worker
// (which never opens a decoder outside this list). Pure functions; thread-safe.
#pragma once

namespace zerofarm::transcode {

bool IsSupportedVideoCodec(int codec_id);  // AVCodecID
bool IsSupportedAudioCodec(int codec_id);

}  // namespace zerofarm::transcode
