// A small, strict reader for the HLS playlists zerofarm writes (RFC 8216), used by tests to
// find renditions and segments without trusting zerofarm's own writer.
// Pure functions over text or one file; thread-safe.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "zerofarm/base/status.h"

namespace zerofarm::test {

// An attribute list (RESOLUTION=1280x720,CODECS="avc1.64001f,mp4a.40.2"), quotes removed.
using HlsAttributes = std::map<std::string, std::string>;
Result<HlsAttributes> ParseHlsAttributes(std::string_view text);

struct MasterPlaylist {
  struct Variant {
    HlsAttributes attributes;  // of its #EXT-X-STREAM-INF line
    std::string uri;           // the line after it, e.g. "720p/index.m3u8"
  };
  std::vector<Variant> variants;
  std::vector<HlsAttributes> media;  // every #EXT-X-MEDIA line
};

struct MediaPlaylist {
  struct Segment {
    double duration = 0;  // from #EXTINF
    std::string uri;
  };
  double target_duration = 0;
  bool ended = false;         // #EXT-X-ENDLIST present
  std::string playlist_type;  // #EXT-X-PLAYLIST-TYPE, e.g. "VOD"
  std::vector<Segment> segments;
};

Result<MasterPlaylist> ParseMasterPlaylist(std::string_view text);
Result<MediaPlaylist> ParseMediaPlaylist(std::string_view text);

// The segment URIs of a media playlist, in order (an EVENT playlist without an end too).
Result<std::vector<std::string>> ListedSegments(std::string_view text);

Result<MasterPlaylist> ReadMasterPlaylist(const std::filesystem::path& path);
Result<MediaPlaylist> ReadMediaPlaylist(const std::filesystem::path& path);

}  // namespace zerofarm::test
