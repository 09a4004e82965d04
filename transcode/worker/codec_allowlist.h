// The decoders the worker may run. Anything else is refused with "unsupported_codec" before a
// single byte of the input reaches a decoder (as Chromium's FFmpegGlue does). Pure; thread-safe.
#pragma once

#include "zerofarm/base/status.h"
#include "zerofarm/transcode/packet_stream.h"

extern "C" {
#include <libavcodec/avcodec.h>
}

namespace zerofarm::transcode::worker {

// The allowed software decoder for the header's codec, or "unsupported_codec" naming it.
// AV1 prefers libdav1d, then libaom-av1, then FFmpeg's own decoder.
Result<const AVCodec*> FindAllowedDecoder(const StreamHeader& header);

}  // namespace zerofarm::transcode::worker
