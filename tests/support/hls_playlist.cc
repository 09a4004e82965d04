#include "hls_playlist.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

namespace zerofarm::test {
namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.back() == '\r' || s.back() == ' ' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  return s;
}

std::vector<std::string_view> Lines(std::string_view text) {
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    line = Trim(line);
    if (!line.empty()) lines.push_back(line);
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
  return lines;
}

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

Status CheckHeader(const std::vector<std::string_view>& lines) {
  if (lines.empty() || lines.front() != "#EXTM3U") {
    return Status::Error(ErrorCode::kBadPlaylist, "the playlist does not start with #EXTM3U");
  }
  return Status::Ok();
}

Result<std::string> ReadWhole(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::Error(ErrorCode::kOpenFailed, "cannot open " + path.string());
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

Result<HlsAttributes> ParseHlsAttributes(std::string_view text) {
  HlsAttributes attrs;
  size_t i = 0;
  while (i < text.size()) {
    auto eq = text.find('=', i);
    if (eq == std::string_view::npos) {
      return Status::Error(ErrorCode::kBadAttributes,
                           "attribute without '=' in: " + std::string(text));
    }
    std::string name(Trim(text.substr(i, eq - i)));
    std::string value;
    i = eq + 1;
    if (i < text.size() && text[i] == '"') {
      auto close = text.find('"', i + 1);
      if (close == std::string_view::npos) {
        return Status::Error(ErrorCode::kBadAttributes,
                             "unterminated quoted string in: " + std::string(text));
      }
      value = std::string(text.substr(i + 1, close - i - 1));
      i = close + 1;
    } else {
      auto comma = text.find(',', i);
      value =
          std::string(Trim(text.substr(i, comma == std::string_view::npos ? comma : comma - i)));
      i = comma == std::string_view::npos ? text.size() : comma;
    }
    if (name.empty())
      return Status::Error(ErrorCode::kBadAttributes,
                           "empty attribute name in: " + std::string(text));
    if (!attrs.emplace(name, value).second) {
      return Status::Error(ErrorCode::kBadAttributes,
                           "attribute " + name + " given twice in: " + std::string(text));
    }
    if (i < text.size()) {
      if (text[i] != ',') {
        return Status::Error(ErrorCode::kBadAttributes,
                             "expected ',' after " + name + " in: " + std::string(text));
      }
      ++i;
    }
  }
  return attrs;
}

Result<MasterPlaylist> ParseMasterPlaylist(std::string_view text) {
  auto lines = Lines(text);
  ZF_RETURN_IF_ERROR(CheckHeader(lines));
  MasterPlaylist master;
  for (size_t i = 1; i < lines.size(); ++i) {
    std::string_view line = lines[i];
    constexpr std::string_view kStreamInf = "#EXT-X-STREAM-INF:";
    constexpr std::string_view kMedia = "#EXT-X-MEDIA:";
    if (StartsWith(line, kStreamInf)) {
      auto attrs = ParseHlsAttributes(line.substr(kStreamInf.size()));
      if (!attrs.ok()) return attrs.status();
      if (i + 1 >= lines.size() || lines[i + 1].front() == '#') {
        return Status::Error(ErrorCode::kBadPlaylist,
                             "#EXT-X-STREAM-INF without a URI line after it");
      }
      master.variants.push_back({std::move(*attrs), std::string(lines[i + 1])});
      ++i;
    } else if (StartsWith(line, kMedia)) {
      auto attrs = ParseHlsAttributes(line.substr(kMedia.size()));
      if (!attrs.ok()) return attrs.status();
      master.media.push_back(std::move(*attrs));
    } else if (StartsWith(line, "#EXTINF")) {
      return Status::Error(ErrorCode::kBadPlaylist,
                           "a master playlist with #EXTINF (a media playlist?)");
    }
  }
  return master;
}

Result<std::vector<std::string>> ListedSegments(std::string_view text) {
  auto playlist = ParseMediaPlaylist(text);
  if (!playlist.ok()) return playlist.status();
  std::vector<std::string> uris;
  for (const auto& segment : playlist->segments) uris.push_back(segment.uri);
  return uris;
}

Result<MediaPlaylist> ParseMediaPlaylist(std::string_view text) {
  auto lines = Lines(text);
  ZF_RETURN_IF_ERROR(CheckHeader(lines));
  MediaPlaylist playlist;
  bool have_target = false;
  for (size_t i = 1; i < lines.size(); ++i) {
    std::string_view line = lines[i];
    constexpr std::string_view kTarget = "#EXT-X-TARGETDURATION:";
    constexpr std::string_view kType = "#EXT-X-PLAYLIST-TYPE:";
    constexpr std::string_view kInf = "#EXTINF:";
    if (StartsWith(line, kTarget)) {
      playlist.target_duration = std::atof(std::string(line.substr(kTarget.size())).c_str());
      have_target = true;
    } else if (StartsWith(line, kType)) {
      playlist.playlist_type = std::string(line.substr(kType.size()));
    } else if (line == "#EXT-X-ENDLIST") {
      playlist.ended = true;
    } else if (StartsWith(line, "#EXT-X-STREAM-INF")) {
      return Status::Error(ErrorCode::kBadPlaylist, "a media playlist with #EXT-X-STREAM-INF");
    } else if (StartsWith(line, kInf)) {
      std::string value(line.substr(kInf.size()));
      char* end = nullptr;
      double duration = std::strtod(value.c_str(), &end);
      if (end == value.c_str()) {
        return Status::Error(ErrorCode::kBadPlaylist,
                             "unreadable duration in " + std::string(line));
      }
      // Skip tags between #EXTINF and its URI (e.g. #EXT-X-BYTERANGE, #EXT-X-DISCONTINUITY).
      size_t j = i + 1;
      while (j < lines.size() && lines[j].front() == '#') ++j;
      if (j >= lines.size()) {
        return Status::Error(ErrorCode::kBadPlaylist, "#EXTINF without a segment URI after it");
      }
      playlist.segments.push_back({duration, std::string(lines[j])});
      i = j;
    }
  }
  if (!have_target) return Status::Error(ErrorCode::kBadPlaylist, "no #EXT-X-TARGETDURATION");
  return playlist;
}

Result<MasterPlaylist> ReadMasterPlaylist(const std::filesystem::path& path) {
  auto text = ReadWhole(path);
  if (!text.ok()) return text.status();
  auto parsed = ParseMasterPlaylist(*text);
  if (!parsed.ok()) return parsed.status().WithContext(path.string());
  return parsed;
}

Result<MediaPlaylist> ReadMediaPlaylist(const std::filesystem::path& path) {
  auto text = ReadWhole(path);
  if (!text.ok()) return text.status();
  auto parsed = ParseMediaPlaylist(*text);
  if (!parsed.ok()) return parsed.status().WithContext(path.string());
  return parsed;
}

}  // namespace zerofarm::test
