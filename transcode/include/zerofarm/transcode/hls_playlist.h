// HLS playlist text (RFC 8216): media playlists (VOD, or EVENT while a video is still being
// published) and the master playlist.
// Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace zerofarm::transcode {

// A media playlist listing segNNNNN.ts with these durations (seconds). Complete: a VOD playlist
// ending in EXT-X-ENDLIST. Not complete: an EVENT playlist (the list only grows; a player keeps
// reloading it). EXT-X-TARGETDURATION is the longest segment rounded, and at least
// `min_target` (an EVENT playlist's target must not change while it grows, so it is given the
// longest segment the video will have).
std::string RenderMediaPlaylist(const std::vector<double>& durations, bool complete = true,
                                long min_target = 1);

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
