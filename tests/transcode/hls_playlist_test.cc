// HLS playlist syntax (RFC 8216).
#include "zerofarm/transcode/hls_playlist.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <sstream>

using namespace zerofarm::transcode;

namespace {
std::vector<std::string> Lines(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}
}  // namespace

TEST_CASE("a media playlist is a complete VOD list whose target bounds every segment",
          "[transcode][hls]") {
  std::vector<double> d{4.0, 4.04, 5.6, 1.2};
  auto lines = Lines(RenderMediaPlaylist(d));
  REQUIRE(lines.front() == "#EXTM3U");
  REQUIRE(lines.back() == "#EXT-X-ENDLIST");
  long target = -1;
  size_t extinf = 0;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].rfind("#EXT-X-TARGETDURATION:", 0) == 0) target = std::stol(lines[i].substr(22));
    if (lines[i].rfind("#EXTINF:", 0) == 0) {
      double v = std::stod(lines[i].substr(8));
      CHECK(std::lround(v) <= 6);
      REQUIRE(i + 1 < lines.size());
      CHECK(lines[i + 1] == SegmentFileName(extinf));
      ++extinf;
    }
  }
  CHECK(target == 6);
  CHECK(extinf == d.size());
  CHECK(std::count(lines.begin(), lines.end(), "#EXT-X-PLAYLIST-TYPE:VOD") == 1);
}

TEST_CASE("a master playlist lists each variant with its attributes and the audio group",
          "[transcode][hls]") {
  VariantEntry v{"720p/index.m3u8", 3000000, 2000000, "avc1.64001f,mp4a.40.2", 1280, 720, 29.97};
  auto text = RenderMasterPlaylist({v}, "audio/index.m3u8");
  auto lines = Lines(text);
  REQUIRE(lines.front() == "#EXTM3U");
  CHECK_THAT(text, Catch::Contains("#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aac\""));
  CHECK_THAT(text, Catch::Contains("URI=\"audio/index.m3u8\""));
  auto inf = std::find_if(lines.begin(), lines.end(), [](const std::string& l) {
    return l.rfind("#EXT-X-STREAM-INF:", 0) == 0;
  });
  REQUIRE(inf != lines.end());
  for (const char* attr :
       {"BANDWIDTH=3000000", "AVERAGE-BANDWIDTH=2000000", "CODECS=\"avc1.64001f,mp4a.40.2\"",
        "RESOLUTION=1280x720", "FRAME-RATE=29.970", "AUDIO=\"aac\""})
    CHECK_THAT(*inf, Catch::Contains(attr));
  CHECK(*(inf + 1) == "720p/index.m3u8");
}

TEST_CASE("a master playlist without audio names no audio group", "[transcode][hls]") {
  VariantEntry v{"360p/index.m3u8", 900000, 700000, "avc1.64001e", 640, 360, 25};
  auto text = RenderMasterPlaylist({v}, "");
  CHECK_THAT(text, !Catch::Contains("EXT-X-MEDIA"));
  CHECK_THAT(text, !Catch::Contains("AUDIO="));
}
