// HLS playlist text (RFC 8216): VOD media playlists and the master playlist.
// Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace zerofarm::transcode {

// A VOD media playlist listing segNNNNN.ts with these durations (seconds).
std::string RenderMediaPlaylist(const std::vector<double>& durations);

struct VariantEntry {
  std::string uri;                // "720p/index.m3u8"
  int64_t bandwidth = 0;          // peak bits per second, audio included
  int64_t average_bandwidth = 0;  // average bits per second, audio included
  std::string codecs;             // "avc1.64001f,mp4a.40.2"
  int width = 0, height = 0;
  double frame_rate = 0;
};

// The master playlist; `audio_uri` (empty for none) becomes the "aac" audio group.
std::string RenderMasterPlaylist(const std::vector<VariantEntry>& variants,
                                 const std::string& audio_uri);

// segNNNNN.ts
std::string SegmentFileName(size_t index);

}  // namespace zerofarm::transcode
