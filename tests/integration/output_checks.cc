#include "output_checks.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "hls_playlist.h"
#include "media_check.h"

namespace zerofarm::test {
namespace {

namespace fs = std::filesystem;

// Keyframe times of two renditions may differ by their time bases' rounding (90 kHz in
// MPEG-TS, the track timescale in MP4), never by a frame.
constexpr double kTimeTolerance = 0.001;

// MPEG-TS cannot signal the AAC encoder delay (MP4 does, with an edit list), so a player of
// the HLS audio plays the one priming frame of the single whole-track encode. One frame more
// than that is allowed; per-chunk audio encoding, with a priming frame at every seam, is not.
constexpr double kHlsAudioPriming = 1024.0 / 48000.0;

// ffprobe prints times with six decimals; a difference of two such values is off by up to 2 us.
constexpr double kPrintedTimeSlack = 1e-5;

struct Rung {
  std::string name;  // "720p"
  int short_side = 0;
  int width = 0;  // from RESOLUTION
  int height = 0;
};

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::string Str(const Status& s) { return s.ToString(); }

std::optional<std::pair<int, int>> ParseResolution(const std::string& text) {
  auto x = text.find('x');
  if (x == std::string::npos) return std::nullopt;
  char* end = nullptr;
  long w = std::strtol(text.c_str(), &end, 10);
  if (end != text.c_str() + x) return std::nullopt;
  long h = std::strtol(text.c_str() + x + 1, &end, 10);
  if (*end != '\0' || w <= 0 || h <= 0) return std::nullopt;
  return std::make_pair(static_cast<int>(w), static_cast<int>(h));
}

// "720p/index.m3u8" -> "720p"; empty when the URI is not of that shape.
std::string RungNameFromUri(const std::string& uri) {
  constexpr std::string_view kSuffix = "/index.m3u8";
  if (uri.size() <= kSuffix.size() ||
      uri.compare(uri.size() - kSuffix.size(), kSuffix.size(), kSuffix) != 0) {
    return "";
  }
  std::string name = uri.substr(0, uri.size() - kSuffix.size());
  if (name.size() < 2 || name.back() != 'p') return "";
  for (size_t i = 0; i + 1 < name.size(); ++i) {
    if (!std::isdigit(static_cast<unsigned char>(name[i]))) return "";
  }
  return name;
}

bool JsonMentions(const nlohmann::json& j, const std::string& name) {
  if (j.is_string()) {
    const auto& s = j.get_ref<const std::string&>();
    return s == name || s.rfind(name + "/", 0) == 0 || s == name + ".mp4";
  }
  if (j.is_object()) {
    for (const auto& [key, value] : j.items()) {
      if (key == name || JsonMentions(value, name)) return true;
    }
  }
  if (j.is_array()) {
    for (const auto& v : j) {
      if (JsonMentions(v, name)) return true;
    }
  }
  return false;
}

std::string Join(const std::vector<double>& v) {
  std::ostringstream s;
  s.precision(3);
  s << std::fixed;
  for (size_t i = 0; i < v.size(); ++i) s << (i ? " " : "") << v[i];
  return s.str();
}

bool SameTimes(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::abs(a[i] - b[i]) > kTimeTolerance) return false;
  }
  return true;
}

// The video of one rendition as decoded through one path (playlist or MP4).
void CheckDecodedVideo(const std::string& what, const Result<VideoFrames>& video,
                       const SourceFacts& source, const Rung& rung) {
  INFO(what);
  REQUIRE(video.ok());
  INFO("ffprobe said: " << video->decoder_messages);
  CHECK(video->decoder_messages.empty());
  CHECK(static_cast<int64_t>(video->frames.size()) == source.frames);
  INFO("PTS problem: " << FindPtsProblem(video->frames));
  CHECK(FindPtsProblem(video->frames).empty());
  size_t wrong_size = static_cast<size_t>(std::count_if(
      video->frames.begin(), video->frames.end(),
      [&](const VideoFrame& f) { return f.width != rung.width || f.height != rung.height; }));
  CHECK(wrong_size == 0);
  REQUIRE(!video->frames.empty());
  CHECK(video->frames.front().key);
}

void CheckGeometry(const Rung& rung, const SourceFacts& source, const StreamInfo& coded) {
  INFO("rung " << rung.name << " is " << rung.width << "x" << rung.height << ", source shows "
               << source.display_width << "x" << source.display_height);
  CHECK(rung.width % 2 == 0);
  CHECK(rung.height % 2 == 0);
  CHECK(rung.short_side == std::min(rung.width, rung.height));
  CHECK(rung.short_side <= std::min(source.display_width, source.display_height));
  // HLS over MPEG-TS cannot carry a display matrix: the pixels themselves must be upright.
  CHECK(coded.rotation == 0);
  CHECK(coded.width == rung.width);
  CHECK(coded.height == rung.height);
  const int shown_w = coded.DisplayWidth();
  const int shown_h = coded.DisplayHeight();
  CHECK((shown_w >= shown_h) == (source.display_width >= source.display_height));
  // The long side follows from the short side and the source's display aspect ratio, to
  // within rounding to even.
  const double source_aspect = static_cast<double>(source.display_width) / source.display_height;
  if (shown_w >= shown_h) {
    CHECK(std::abs(shown_w - shown_h * source_aspect) <= 2.0);
  } else {
    CHECK(std::abs(shown_h - shown_w / source_aspect) <= 2.0);
  }
}

// The frames of each segment on its own: a keyframe opens every segment, so any segment can
// start playback or a rendition switch.
void CheckSegments(const fs::path& dir, const MediaPlaylist& playlist, const SourceFacts& source) {
  int64_t total = 0;
  for (size_t i = 0; i < playlist.segments.size(); ++i) {
    const auto& seg = playlist.segments[i];
    INFO("segment " << i << ": " << seg.uri);
    const fs::path path = dir / seg.uri;
    REQUIRE(fs::is_regular_file(path));
    CHECK(seg.duration > 0);
    CHECK(std::lround(seg.duration) <= std::lround(playlist.target_duration));
    auto video = ProbeVideoFrames(path.string());
    INFO(Str(video.status()));
    REQUIRE(video.ok());
    total += static_cast<int64_t>(video->frames.size());
    REQUIRE(!video->frames.empty());
    CHECK(video->frames.front().key);
    CHECK(std::count_if(video->frames.begin(), video->frames.end(),
                        [](const VideoFrame& f) { return f.key; }) >= 1);
  }
  CHECK(total == source.frames);
}

struct RungKeyframes {
  std::vector<double> hls;
  std::vector<double> mp4;
};

RungKeyframes CheckRung(const fs::path& out, const Rung& rung, const SourceFacts& source) {
  INFO("rung " << rung.name);
  RungKeyframes keys;
  const fs::path playlist_path = out / rung.name / "index.m3u8";
  REQUIRE(fs::is_regular_file(playlist_path));
  auto playlist = ReadMediaPlaylist(playlist_path);
  INFO(Str(playlist.status()));
  REQUIRE(playlist.ok());
  // Without #EXT-X-ENDLIST a client treats the playlist as live and waits for more segments.
  REQUIRE(playlist->ended);
  REQUIRE(!playlist->segments.empty());

  // HLS: video only.
  auto info = ProbeStreams(playlist_path.string());
  INFO(Str(info.status()));
  REQUIRE(info.ok());
  CHECK(info->Count("video") == 1);
  CHECK(info->Count("audio") == 0);
  const StreamInfo* coded = info->First("video");
  REQUIRE(coded != nullptr);
  CHECK(coded->codec == "h264");
  CheckGeometry(rung, source, *coded);

  auto hls_video = ProbeVideoFrames(playlist_path.string());
  CheckDecodedVideo("via " + rung.name + "/index.m3u8", hls_video, source, rung);
  keys.hls = RelativeKeyframeTimes(hls_video->frames);
  CheckSegments(out / rung.name, *playlist, source);

  // The progressive MP4: faststart, video and (when the source has it) audio.
  const fs::path mp4 = out / (rung.name + ".mp4");
  INFO(mp4.filename().string());
  REQUIRE(fs::is_regular_file(mp4));
  auto faststart = IsFaststart(mp4.string());
  INFO(Str(faststart.status()));
  REQUIRE(faststart.ok());
  CHECK(*faststart);
  auto mp4_info = ProbeStreams(mp4.string());
  INFO(Str(mp4_info.status()));
  REQUIRE(mp4_info.ok());
  CHECK(mp4_info->Count("video") == 1);
  CHECK(mp4_info->Count("audio") == (source.audio_seconds ? 1 : 0));
  if (const StreamInfo* v = mp4_info->First("video")) {
    CHECK(v->codec == "h264");
    CHECK(v->width == rung.width);
    CHECK(v->height == rung.height);
    CHECK(v->rotation == 0);
  }
  auto mp4_video = ProbeVideoFrames(mp4.string());
  CheckDecodedVideo("via " + rung.name + ".mp4", mp4_video, source, rung);
  keys.mp4 = RelativeKeyframeTimes(mp4_video->frames);
  {
    INFO("HLS keyframes: " << Join(keys.hls));
    INFO("MP4 keyframes: " << Join(keys.mp4));
    CHECK(SameTimes(keys.hls, keys.mp4));
  }
  if (source.audio_seconds) {
    auto audio = ProbeAudio(mp4.string());
    INFO(Str(audio.status()));
    REQUIRE(audio.ok());
    REQUIRE(audio->has_value());
    const AudioTrack& a = **audio;
    INFO("MP4 audio " << a.Duration() << " s, source " << *source.audio_seconds << " s");
    INFO("ffprobe said: " << a.decoder_messages);
    CHECK(a.codec == "aac");
    CHECK(a.decoder_messages.empty());
    // An MP4 edit list can delay a track or skip its priming, and FFmpeg 5.1's muxer writes
    // only one of the two: when the source's audio starts after its video, the priming frame
    // stays in the track (silent, and timed so that the real audio starts where it should).
    CHECK(a.Duration() >= *source.audio_seconds - kAacFrameSeconds - kPrintedTimeSlack);
    CHECK(a.Duration() <=
          *source.audio_seconds + kAacFrameSeconds + kHlsAudioPriming + kPrintedTimeSlack);
  }
  Status decodes = DecodesCleanly(mp4.string());
  INFO(Str(decodes));
  CHECK(decodes.ok());
  return keys;
}

void CheckMasterVariant(const MasterPlaylist::Variant& v, const SourceFacts& source, Rung* rung) {
  INFO("variant " << v.uri);
  const auto& a = v.attributes;
  for (const char* required :
       {"BANDWIDTH", "AVERAGE-BANDWIDTH", "CODECS", "RESOLUTION", "FRAME-RATE"}) {
    INFO("attribute " << required);
    CHECK(a.count(required) == 1);
  }
  auto number = [&](const char* key) {
    auto it = a.find(key);
    return it == a.end() ? 0.0 : std::atof(it->second.c_str());
  };
  CHECK(number("BANDWIDTH") > 0);
  CHECK(number("AVERAGE-BANDWIDTH") > 0);
  CHECK(number("AVERAGE-BANDWIDTH") <= number("BANDWIDTH"));
  CHECK(number("FRAME-RATE") > 0);
  const std::string codecs = a.count("CODECS") ? a.at("CODECS") : "";
  CHECK(codecs.find("avc1.") != std::string::npos);
  CHECK((codecs.find("mp4a.") != std::string::npos) == source.audio_seconds.has_value());
  if (source.audio_seconds) {
    CHECK(a.count("AUDIO") == 1);
    if (a.count("AUDIO")) CHECK(a.at("AUDIO") == "aac");
  } else {
    CHECK(a.count("AUDIO") == 0);
  }
  rung->name = RungNameFromUri(v.uri);
  REQUIRE(!rung->name.empty());
  rung->short_side = std::atoi(rung->name.c_str());
  auto res = ParseResolution(a.count("RESOLUTION") ? a.at("RESOLUTION") : "");
  REQUIRE(res.has_value());
  rung->width = res->first;
  rung->height = res->second;
}

// The rungs the contract asks for: the requested ones up to the source's short side, or one
// at the source's own size (short side rounded down to even) when none fits.
void CheckRungSet(const std::vector<Rung>& rungs, const SourceFacts& source,
                  const std::vector<int>& ladder) {
  const int source_short = std::min(source.display_width, source.display_height);
  std::set<int> expected;
  for (int s : ladder) {
    if (s <= source_short) expected.insert(s);
  }
  if (expected.empty()) expected.insert(source_short - source_short % 2);
  std::set<int> got;
  std::ostringstream names;
  for (const auto& r : rungs) {
    got.insert(r.short_side);
    names << r.name << " ";
  }
  INFO("rungs in master.m3u8: " << names.str() << "; source short side " << source_short);
  CHECK(got.size() == rungs.size());  // no rung twice
  CHECK(got == expected);
}

void CheckAudioRendition(const fs::path& out, const SourceFacts& source) {
  const fs::path playlist_path = out / "audio" / "index.m3u8";
  if (!source.audio_seconds) {
    CHECK_FALSE(fs::exists(playlist_path));
    return;
  }
  INFO("audio/index.m3u8");
  REQUIRE(fs::is_regular_file(playlist_path));
  auto playlist = ReadMediaPlaylist(playlist_path);
  INFO(Str(playlist.status()));
  REQUIRE(playlist.ok());
  REQUIRE(playlist->ended);  // else ffprobe would wait for a live playlist to grow
  CHECK(!playlist->segments.empty());
  for (const auto& seg : playlist->segments) {
    INFO("segment " << seg.uri);
    CHECK(fs::is_regular_file(out / "audio" / seg.uri));
  }
  auto info = ProbeStreams(playlist_path.string());
  INFO(Str(info.status()));
  REQUIRE(info.ok());
  CHECK(info->Count("audio") == 1);
  CHECK(info->Count("video") == 0);
  auto audio = ProbeAudio(playlist_path.string());
  INFO(Str(audio.status()));
  REQUIRE(audio.ok());
  REQUIRE(audio->has_value());
  const AudioTrack& a = **audio;
  INFO("HLS audio " << a.Duration() << " s, source " << *source.audio_seconds << " s");
  INFO("ffprobe said: " << a.decoder_messages);
  CHECK(a.codec == "aac");
  CHECK(a.decoder_messages.empty());
  CHECK(a.Duration() >= *source.audio_seconds - kAacFrameSeconds - kPrintedTimeSlack);
  CHECK(a.Duration() <=
        *source.audio_seconds + kAacFrameSeconds + kHlsAudioPriming + kPrintedTimeSlack);
}

void CheckMasterAudio(const MasterPlaylist& master, const SourceFacts& source) {
  std::vector<const HlsAttributes*> audio;
  for (const auto& m : master.media) {
    auto type = m.find("TYPE");
    if (type != m.end() && type->second == "AUDIO") audio.push_back(&m);
  }
  if (!source.audio_seconds) {
    CHECK(audio.empty());
    return;
  }
  REQUIRE(audio.size() == 1);
  const HlsAttributes& m = *audio.front();
  CHECK(m.count("GROUP-ID") == 1);
  CHECK(m.count("URI") == 1);
  if (m.count("GROUP-ID")) CHECK(m.at("GROUP-ID") == "aac");
  if (m.count("URI")) CHECK(m.at("URI") == "audio/index.m3u8");
}

void CheckThumbnail(const fs::path& out) {
  const fs::path thumb = out / "thumbnail.jpg";
  INFO("thumbnail.jpg");
  REQUIRE(fs::is_regular_file(thumb));
  std::ifstream in(thumb, std::ios::binary);
  unsigned char magic[3] = {0, 0, 0};
  in.read(reinterpret_cast<char*>(magic), 3);
  CHECK((magic[0] == 0xFF && magic[1] == 0xD8 && magic[2] == 0xFF));
  auto info = ProbeStreams(thumb.string());
  INFO(Str(info.status()));
  REQUIRE(info.ok());
  const StreamInfo* v = info->First("video");
  REQUIRE(v != nullptr);
  CHECK(v->codec == "mjpeg");
  CHECK(v->width > 0);
  CHECK(v->height > 0);
}

void CheckReport(const fs::path& out, const std::vector<Rung>& rungs) {
  const fs::path report = out / "report.json";
  INFO("report.json");
  REQUIRE(fs::is_regular_file(report));
  std::ifstream in(report);
  auto doc = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  REQUIRE_FALSE(doc.is_discarded());
  for (const auto& r : rungs) {
    INFO("rung " << r.name << " named in report.json");
    CHECK(JsonMentions(doc, r.name));
  }
}

}  // namespace

Result<SourceFacts> DescribeSource(const std::string& path, std::optional<int64_t> frames) {
  SourceFacts facts;
  facts.path = path;
  auto info = ProbeStreams(path);
  if (!info.ok()) return info.status();
  const StreamInfo* v = info->First("video");
  if (v == nullptr) return Status::Error(ErrorCode::kNoVideoStream, path + ": no video stream");
  facts.display_width = v->DisplayWidth();
  facts.display_height = v->DisplayHeight();
  if (frames) {
    facts.frames = *frames;
  } else {
    auto counted = CountDecodedFrames(path);
    if (!counted.ok()) return counted.status();
    facts.frames = *counted;
  }
  auto audio = SourceAudioDuration(path);
  if (!audio.ok()) return audio.status();
  facts.audio_seconds = *audio;
  return facts;
}

const std::vector<std::string>& AnyRejectionPhrase() {
  static const std::vector<std::string> kPhrases = {"no video stream",   "undecodable",
                                                    "encrypted",         "truncated",
                                                    "unsupported codec", "not a media file"};
  return kPhrases;
}

void CheckTranscodeOutput(const fs::path& out, const SourceFacts& source,
                          const std::vector<int>& ladder) {
  INFO("output in " << out.string());
  const fs::path master_path = out / "master.m3u8";
  REQUIRE(fs::is_regular_file(master_path));
  auto master = ReadMasterPlaylist(master_path);
  INFO(Str(master.status()));
  REQUIRE(master.ok());
  REQUIRE(!master->variants.empty());

  std::vector<Rung> rungs(master->variants.size());
  for (size_t i = 0; i < rungs.size(); ++i) {
    CheckMasterVariant(master->variants[i], source, &rungs[i]);
  }
  CheckRungSet(rungs, source, ladder);
  CheckMasterAudio(*master, source);

  std::optional<std::pair<std::string, RungKeyframes>> first;
  for (const auto& rung : rungs) {
    RungKeyframes keys = CheckRung(out, rung, source);
    if (!first) {
      first.emplace(rung.name, keys);
      continue;
    }
    INFO("keyframes of " << first->first << ": " << Join(first->second.hls));
    INFO("keyframes of " << rung.name << ": " << Join(keys.hls));
    CHECK(SameTimes(first->second.hls, keys.hls));
    CHECK(SameTimes(first->second.mp4, keys.mp4));
  }

  CheckAudioRendition(out, source);

  // A client of the master playlist: every rendition and the audio decode without a complaint.
  Status decodes = DecodesCleanly(master_path.string(), {"-map", "0:v", "-map", "0:a?"});
  INFO(Str(decodes));
  CHECK(decodes.ok());

  CheckThumbnail(out);
  CheckReport(out, rungs);
}

void CheckCleanRejection(const CommandResult& run, const fs::path& out,
                         const std::vector<std::string>& phrases) {
  INFO("stderr: " << run.err);
  INFO("stdout: " << run.out);
  INFO("ended with " << run.DescribeEnd());
  REQUIRE(run.started);
  CHECK_FALSE(run.timed_out);
  CHECK(run.term_signal == 0);  // a crash is not a refusal
  CHECK(run.exit_code != 0);

  // The sandbox's host-layer warnings (printed once per process on a host that lacks a layer)
  // are not about the input; the rest must be the one error line.
  std::string text;
  std::istringstream lines(run.err);
  for (std::string line; std::getline(lines, line);)
    if (line.rfind("zerofarm sandbox: ", 0) != 0) text += line + "\n";
  if (!text.empty() && text.back() == '\n') text.pop_back();
  CHECK(!text.empty());
  CHECK(text.find('\n') == std::string::npos);  // exactly one line
  CHECK(text.rfind("zerofarm: error:", 0) == 0);
  const std::string lower = Lower(text);
  const bool named = std::any_of(phrases.begin(), phrases.end(), [&](const std::string& p) {
    return lower.find(Lower(p)) != std::string::npos;
  });
  std::ostringstream wanted;
  for (const auto& p : phrases) wanted << "\"" << p << "\" ";
  INFO("expected one of: " << wanted.str());
  CHECK(named);
  CHECK_FALSE(fs::exists(out / "master.m3u8"));
}

}  // namespace zerofarm::test
