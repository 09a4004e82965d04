#include "codec_allowlist.h"

#include "zerofarm/transcode/codecs.h"

namespace zerofarm::transcode::worker {
namespace {

std::string CodecName(AVCodecID id) {
  const char* name = avcodec_get_name(id);
  return name ? name : "unknown";
}

}  // namespace

Result<const AVCodec*> FindAllowedDecoder(const StreamHeader& header) {
  const auto id = static_cast<AVCodecID>(header.codec_id);
  const bool video = header.kind == MediaKind::kVideo;
  const AVCodec* codec = nullptr;
  if (const AcceptedCodec* accepted = video ? FindVideoCodec(id) : FindAudioCodec(id)) {
    for (const char* name : accepted->decoders) {
      if (!name) break;
      const AVCodec* c = avcodec_find_decoder_by_name(name);
      if (c && c->id == id) {
        codec = c;
        break;
      }
    }
  }
  if (!codec)
    return Status::Error(
        ErrorCode::kUnsupportedCodec,
        std::string(video ? "video" : "audio") + " codec '" + CodecName(id) + "' is not supported");
  return codec;
}

}  // namespace zerofarm::transcode::worker
