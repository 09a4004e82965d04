// HeaderFromStream lives apart from the other conversions: it is the only one that needs
// libavformat, which the worker must not link.
#include <cmath>

#include "zerofarm/transcode/packet_stream_av.h"

extern "C" {
#include <libavutil/display.h>
}

namespace zerofarm::transcode {
namespace internal {
void CommonFromParameters(const AVCodecParameters& p, StreamHeader* h);
}  // namespace internal

using internal::CommonFromParameters;

StreamHeader HeaderFromStream(const AVStream& stream) {
  StreamHeader h;
  const AVCodecParameters& p = *stream.codecpar;
  h.kind = p.codec_type == AVMEDIA_TYPE_AUDIO ? MediaKind::kAudio : MediaKind::kVideo;
  CommonFromParameters(p, &h);
  if (stream.sample_aspect_ratio.num > 0 && p.sample_aspect_ratio.num <= 0) {
    h.sar_num = stream.sample_aspect_ratio.num;
    h.sar_den = stream.sample_aspect_ratio.den;
  }
  h.time_base_num = stream.time_base.num;
  h.time_base_den = stream.time_base.den;
  h.avg_fps_num = stream.avg_frame_rate.num;
  h.avg_fps_den = stream.avg_frame_rate.den ? stream.avg_frame_rate.den : 1;
  size_t size = 0;
  const uint8_t* matrix = av_stream_get_side_data(&stream, AV_PKT_DATA_DISPLAYMATRIX, &size);
  if (matrix && size >= 9 * sizeof(int32_t)) {
    double theta = -av_display_rotation_get(reinterpret_cast<const int32_t*>(matrix));
    if (std::isfinite(theta)) {
      theta = std::fmod(std::round(theta), 360.0);
      if (theta < 0) theta += 360.0;
      h.rotation_degrees = theta;
    }
  }
  return h;
}

}  // namespace zerofarm::transcode
