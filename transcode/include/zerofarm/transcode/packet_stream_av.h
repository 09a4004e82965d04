// Conversions between the packet stream (packet_stream.h) and libav* structures.
// Pure functions; thread-safe.
#pragma once

#include "zerofarm/base/status.h"
#include "zerofarm/transcode/ffmpeg_ptr.h"
#include "zerofarm/transcode/packet_stream.h"

namespace zerofarm::transcode {

// Fills a header from a demuxed stream (codec parameters, time base, SAR, rotation, fps).
StreamHeader HeaderFromStream(const AVStream& stream);
// Fills a header from an opened encoder context (time base = encoder time base).
StreamHeader HeaderFromEncoder(const AVCodecContext& encoder, MediaKind kind);
// Copies the header's codec parameters into `par` (allocates extradata). Error on OOM.
Status HeaderToParameters(const StreamHeader& header, AVCodecParameters* par);

Packet PacketFromAv(const AVPacket& pkt, uint64_t ordinal);
// Fills `pkt` (unref'd first) with the packet's data and timestamps.
Status PacketToAv(const Packet& packet, AVPacket* pkt);

}  // namespace zerofarm::transcode
