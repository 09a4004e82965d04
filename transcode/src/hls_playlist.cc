#include "zerofarm/transcode/hls_playlist.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

namespace zerofarm::transcode {

std::string SegmentFileName(size_t index) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "seg%05zu.ts", index);
  return buf;
}

std::string RenderMediaPlaylist(const std::vector<double>& durations, bool complete,
                                long min_target) {
  // EXT-X-TARGETDURATION is the longest segment rounded to the nearest integer (8216 4.3.3.1),
  // and no EXTINF may exceed it once rounded.
  long target = std::max(1L, min_target);
  for (double d : durations) target = std::max(target, std::lround(d));
  std::ostringstream o;
  o << "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-PLAYLIST-TYPE:" << (complete ? "VOD" : "EVENT")
    << "\n#EXT-X-INDEPENDENT-SEGMENTS\n"
    << "#EXT-X-TARGETDURATION:" << target << "\n#EXT-X-MEDIA-SEQUENCE:0\n";
  char buf[64];
  for (size_t i = 0; i < durations.size(); ++i) {
    std::snprintf(buf, sizeof(buf), "#EXTINF:%.6f,\n", durations[i]);
    o << buf << SegmentFileName(i) << "\n";
  }
  if (complete) o << "#EXT-X-ENDLIST\n";
  return o.str();
}

std::string RenderMasterPlaylist(const std::vector<VariantEntry>& variants,
                                 const std::string& audio_uri) {
  std::ostringstream m;
  m << "#EXTM3U\n#EXT-X-VERSION:4\n#EXT-X-INDEPENDENT-SEGMENTS\n";
  if (!audio_uri.empty())
    m << "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aac\",NAME=\"default\",LANGUAGE=\"und\","
         "DEFAULT=YES,AUTOSELECT=YES,CHANNELS=\"2\",URI=\""
      << audio_uri << "\"\n";
  for (const VariantEntry& v : variants) {
    char fps[32];
    std::snprintf(fps, sizeof(fps), "%.3f", v.frame_rate > 0 ? v.frame_rate : 30.0);
    m << "#EXT-X-STREAM-INF:BANDWIDTH=" << v.bandwidth
      << ",AVERAGE-BANDWIDTH=" << v.average_bandwidth << ",CODECS=\"" << v.codecs << "\""
      << ",RESOLUTION=" << v.width << "x" << v.height << ",FRAME-RATE=" << fps
      << (audio_uri.empty() ? "" : ",AUDIO=\"aac\"") << "\n"
      << v.uri << "\n";
  }
  return m.str();
}

}  // namespace zerofarm::transcode
