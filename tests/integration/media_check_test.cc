// The independent checkers checked: RunCommand, the playlist reader and the ffprobe-based
// probes against synthetic data, the generated clips and the real corpus, and the whole output
// check against a reference output that the ffmpeg CLI builds in zerofarm's layout.

#include "media_check.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "clip_factory.h"
#include "corpus.h"
#include "hls_playlist.h"
#include "output_checks.h"
#include "run_command.h"

namespace zerofarm::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

VideoFrame FrameAt(double pts, bool key = false) {
  VideoFrame f;
  f.pts = pts;
  f.key = key;
  return f;
}

// Runs an ffmpeg command (without the binary name) and requires it to succeed.
void Ffmpeg(std::vector<std::string> args) {
  args.insert(args.begin(), {FfmpegPath(), "-nostdin", "-v", "error", "-y"});
  CommandResult r = RunCommand(args, kProbeTimeout);
  INFO(FormatCommand(args));
  INFO("stderr: " << r.err);
  REQUIRE(r.succeeded());
}

struct ReferenceRung {
  std::string name;
  int width;
  int height;
};

// What `zerofarm transcode` should produce, made with the ffmpeg CLI the way the design does
// it: IDRs on a shared 2 s grid in every rung, audio encoded once and muxed into HLS and MP4.
void MakeReferenceOutput(const std::string& source, const fs::path& out,
                         const std::vector<ReferenceRung>& rungs, bool has_audio) {
  fs::create_directories(out);
  const fs::path audio = out / "audio.m4a";
  if (has_audio) {
    Ffmpeg({"-i", source, "-map", "0:a:0", "-c:a", "aac", "-b:a", "128k", "-ar", "48000", "-ac",
            "2", audio.string()});
    fs::create_directories(out / "audio");
    Ffmpeg({"-i", audio.string(), "-c", "copy", "-f", "hls", "-hls_time", "2", "-hls_playlist_type",
            "vod", "-hls_segment_filename", (out / "audio" / "seg%03d.ts").string(),
            (out / "audio" / "index.m3u8").string()});
  }
  std::ofstream master(out / "master.m3u8");
  master << "#EXTM3U\n#EXT-X-VERSION:4\n#EXT-X-INDEPENDENT-SEGMENTS\n";
  if (has_audio) {
    master << "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aac\",NAME=\"audio\",DEFAULT=YES,"
              "AUTOSELECT=YES,URI=\"audio/index.m3u8\"\n";
  }
  for (const auto& r : rungs) {
    fs::create_directories(out / r.name);
    const std::string size = std::to_string(r.width) + ":" + std::to_string(r.height);
    Ffmpeg({"-i",
            source,
            "-map",
            "0:v:0",
            "-vf",
            "scale=" + size + ",setsar=1",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-x264-params",
            "scenecut=0:open-gop=0",
            "-force_key_frames",
            "expr:gte(t,n_forced*2)",
            "-fps_mode",
            "passthrough",
            "-an",
            "-f",
            "hls",
            "-hls_time",
            "2",
            "-hls_playlist_type",
            "vod",
            "-hls_segment_filename",
            (out / r.name / "seg%03d.ts").string(),
            (out / r.name / "index.m3u8").string()});
    std::vector<std::string> remux = {"-i", (out / r.name / "index.m3u8").string()};
    if (has_audio) remux.insert(remux.end(), {"-i", audio.string(), "-map", "1:a"});
    remux.insert(remux.end(), {"-map", "0:v", "-c", "copy", "-movflags", "+faststart",
                               (out / (r.name + ".mp4")).string()});
    Ffmpeg(remux);
    master << "#EXT-X-STREAM-INF:BANDWIDTH=900000,AVERAGE-BANDWIDTH=700000,CODECS=\"avc1.64001e"
           << (has_audio ? ",mp4a.40.2" : "") << "\",RESOLUTION=" << r.width << "x" << r.height
           << ",FRAME-RATE=30.000" << (has_audio ? ",AUDIO=\"aac\"" : "") << "\n"
           << r.name << "/index.m3u8\n";
  }
  master.close();
  Ffmpeg({"-i", source, "-frames:v", "1", (out / "thumbnail.jpg").string()});
  std::ofstream report(out / "report.json");
  report << "{\"renditions\": [";
  for (size_t i = 0; i < rungs.size(); ++i) {
    report << (i ? ", " : "") << "{\"name\": \"" << rungs[i].name << "\"}";
  }
  report << "]}\n";
}

// x264 open GOP: after a keyframe that is not the first, decode order brings a frame that is
// shown before it (a leading B-frame referencing the previous GOP).
bool HasOpenGop(const std::string& path) {
  CommandResult r = RunCommand({FfprobePath(), "-v", "error", "-select_streams", "v:0",
                                "-show_entries", "packet=pts,flags", "-of", "csv=p=0", path},
                               kProbeTimeout);
  if (!r.succeeded()) return false;
  std::istringstream lines(r.out);
  std::string line;
  bool first = true;
  long long open_key_pts = -1;
  while (std::getline(lines, line)) {
    auto comma = line.find(',');
    if (comma == std::string::npos) continue;
    long long pts = std::atoll(line.c_str());
    bool key = line.find('K', comma) != std::string::npos;
    if (open_key_pts >= 0 && pts < open_key_pts) return true;
    if (key) open_key_pts = first ? -1 : pts;
    first = false;
  }
  return false;
}

bool FileContains(const fs::path& path, const std::string& needle) {
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return bytes.find(needle) != std::string::npos;
}

}  // namespace

// --- RunCommand ---------------------------------------------------------------------------

TEST_CASE("RunCommand captures stdout and stderr and the exit status", "[support][slow]") {
  CommandResult r = RunCommand({"sh", "-c", "echo out; echo err >&2; exit 3"}, 60s);
  CHECK(r.started);
  CHECK_FALSE(r.timed_out);
  CHECK(r.exit_code == 3);
  CHECK(r.out == "out\n");
  CHECK(r.err == "err\n");
  CHECK_FALSE(r.succeeded());
}

TEST_CASE("RunCommand kills a command and its children when the deadline passes",
          "[support][slow]") {
  CommandResult r = RunCommand({"sh", "-c", "sleep 60 & sleep 60; echo never"}, 300ms);
  CHECK(r.started);
  CHECK(r.timed_out);
  CHECK(r.out.empty());
  CHECK_FALSE(r.succeeded());
}

TEST_CASE("RunCommand reports a program that cannot be started", "[support][slow]") {
  CommandResult r = RunCommand({"zerofarm-test-no-such-program"}, 60s);
  CHECK_FALSE(r.started);
  CHECK_FALSE(r.spawn_error.empty());
}

TEST_CASE("FormatCommand quotes what a shell would split", "[support][slow]") {
  CHECK(FormatCommand({"ffprobe", "-v", "error", "a b.mp4", "it's"}) ==
        "ffprobe -v error 'a b.mp4' 'it'\\''s'");
}

// --- Playlists and frame lists ------------------------------------------------------------

TEST_CASE("HLS attribute lists keep commas inside quoted strings", "[support]") {
  auto attrs = ParseHlsAttributes(
      "BANDWIDTH=2000000,CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=1280x720,AUDIO=\"aac\"");
  REQUIRE(attrs.ok());
  CHECK(attrs->at("BANDWIDTH") == "2000000");
  CHECK(attrs->at("CODECS") == "avc1.64001f,mp4a.40.2");
  CHECK(attrs->at("RESOLUTION") == "1280x720");
  CHECK(attrs->at("AUDIO") == "aac");
  CHECK_FALSE(ParseHlsAttributes("CODECS=\"avc1").ok());
  CHECK_FALSE(ParseHlsAttributes("A=1,A=2").ok());
}

TEST_CASE("a master playlist gives its variants and audio media", "[support]") {
  auto master = ParseMasterPlaylist(
      "#EXTM3U\n"
      "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aac\",NAME=\"audio\",URI=\"audio/index.m3u8\"\n"
      "#EXT-X-STREAM-INF:BANDWIDTH=1,RESOLUTION=640x360,AUDIO=\"aac\"\r\n"
      "360p/index.m3u8\n");
  REQUIRE(master.ok());
  REQUIRE(master->variants.size() == 1);
  CHECK(master->variants[0].uri == "360p/index.m3u8");
  CHECK(master->variants[0].attributes.at("RESOLUTION") == "640x360");
  REQUIRE(master->media.size() == 1);
  CHECK(master->media[0].at("URI") == "audio/index.m3u8");
  CHECK_FALSE(ParseMasterPlaylist("360p/index.m3u8\n").ok());
}

TEST_CASE("a media playlist gives its segments and whether it is complete", "[support]") {
  auto media = ParseMediaPlaylist(
      "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-PLAYLIST-TYPE:VOD\n"
      "#EXTINF:2.000,\nseg0.ts\n#EXTINF:1.5,\n#EXT-X-DISCONTINUITY\nseg1.ts\n#EXT-X-ENDLIST\n");
  REQUIRE(media.ok());
  CHECK(media->ended);
  CHECK(media->playlist_type == "VOD");
  CHECK(media->target_duration == 2);
  REQUIRE(media->segments.size() == 2);
  CHECK(media->segments[1].uri == "seg1.ts");
  CHECK(media->segments[1].duration == 1.5);
  auto live = ParseMediaPlaylist("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2,\nseg0.ts\n");
  REQUIRE(live.ok());
  CHECK_FALSE(live->ended);
}

TEST_CASE("a repeated or missing pts is found and named", "[support]") {
  CHECK(FindPtsProblem({FrameAt(0), FrameAt(0.04), FrameAt(0.08)}).empty());
  CHECK(FindPtsProblem({FrameAt(0), FrameAt(0.04), FrameAt(0.04)}).find("frame 2") == 0);
  CHECK(FindPtsProblem({FrameAt(0.04), FrameAt(0)}).find("frame 1") == 0);
  VideoFrame no_pts;
  CHECK(FindPtsProblem({FrameAt(0), no_pts}) == "frame 1 has no pts");
}

TEST_CASE("keyframe times are measured from the first frame", "[support]") {
  auto times =
      RelativeKeyframeTimes({FrameAt(1.4, true), FrameAt(1.5), FrameAt(3.4, true), FrameAt(3.5)});
  REQUIRE(times.size() == 2);
  CHECK(times[0] == Approx(0.0));
  CHECK(times[1] == Approx(2.0));
}

// --- The generated clips ------------------------------------------------------------------

TEST_CASE("every generated clip has the frames and timestamps and audio its recipe promises",
          "[integration][support][slow]") {
  for (const ClipInfo& info : AllClips()) {
    if (info.garbage) continue;
    DYNAMIC_SECTION(info.name) {
      INFO(info.description);
      auto path = MakeClip(info.clip);
      INFO(path.status().ToString());
      REQUIRE(path.ok());
      const std::string file = path->string();
      INFO(file);

      auto counted = CountDecodedFrames(file);
      REQUIRE(counted.ok());
      CHECK(*counted == info.frames);
      auto video = ProbeVideoFrames(file);
      REQUIRE(video.ok());
      CHECK(static_cast<int64_t>(video->frames.size()) == info.frames);
      INFO("ffprobe said: " << video->decoder_messages);
      CHECK(video->decoder_messages.empty());
      INFO("PTS problem: " << FindPtsProblem(video->frames));
      CHECK(FindPtsProblem(video->frames).empty());
      REQUIRE(!video->frames.empty());
      CHECK(video->frames.front().key);

      auto streams = ProbeStreams(file);
      REQUIRE(streams.ok());
      const StreamInfo* v = streams->First("video");
      REQUIRE(v != nullptr);
      CHECK(v->DisplayWidth() == info.display_width);
      CHECK(v->DisplayHeight() == info.display_height);

      auto audio = ProbeAudio(file);
      REQUIRE(audio.ok());
      CHECK(audio->has_value() == info.has_audio);
      if (audio->has_value()) {
        const AudioTrack& a = **audio;
        const double frame = 1024.0 / a.sample_rate;
        INFO("audio " << a.Duration() << " s from a " << info.audio_seconds << " s tone");
        CHECK(a.codec == "aac");
        CHECK(a.decoder_messages.empty());
        // Up to one frame of end padding, plus the priming frame where the container (MKV)
        // does not trim it.
        CHECK(a.Duration() >= info.audio_seconds - frame);
        CHECK(a.Duration() <= info.audio_seconds + 2 * frame);
        auto reference = SourceAudioDuration(file);
        REQUIRE(reference.ok());
        CHECK(reference->value_or(-1) == Approx(a.Duration()));
      }
      Status decodes = DecodesCleanly(file);
      INFO(decodes.ToString());
      CHECK(decodes.ok());

      const auto keys = RelativeKeyframeTimes(video->frames);
      const auto b_frames = std::count_if(video->frames.begin(), video->frames.end(),
                                          [](const VideoFrame& f) { return f.pict_type == 'B'; });
      switch (info.clip) {
        case Clip::kLongGopSingleKeyframe:
          CHECK(keys.size() == 1);
          CHECK(b_frames > 0);
          break;
        case Clip::kOpenGop:
          CHECK(keys.size() == 4);  // 200 frames, keyint 50
          CHECK(HasOpenGop(file));
          break;
        case Clip::kBFramePyramid:
          CHECK(b_frames > 0);
          CHECK(FileContains(*path, "b_pyramid=2"));  // x264 records its settings in an SEI
          break;
        case Clip::kVariableFrameRate: {
          double shortest = 1e9;
          double longest = 0;
          for (size_t i = 1; i < video->frames.size(); ++i) {
            double d = *video->frames[i].pts - *video->frames[i - 1].pts;
            shortest = std::min(shortest, d);
            longest = std::max(longest, d);
          }
          CHECK(shortest < 0.025);
          CHECK(longest > 0.25);
          break;
        }
        case Clip::kOddDimensions:
          CHECK(v->width == 321);
          CHECK(v->height == 241);
          CHECK(v->codec == "vp9");
          break;
        case Clip::kRotated:
          CHECK(v->width == 1280);
          CHECK(v->height == 720);
          CHECK(std::abs(v->rotation) == 90);
          break;
        case Clip::kPortrait:
          CHECK(v->width == 720);
          CHECK(v->rotation == 0);
          break;
        case Clip::kTenBit:
          CHECK(v->pix_fmt == "yuv420p10le");
          CHECK(v->profile == "High 10");
          break;
        default:
          break;
      }
    }
  }
}

TEST_CASE("the garbage clips are as broken as their names say", "[integration][support][slow]") {
  SECTION("empty") {
    auto path = MakeClip(Clip::kEmpty);
    REQUIRE(path.ok());
    CHECK(fs::file_size(*path) == 0);
    CHECK_FALSE(ProbeStreams(path->string()).ok());
  }
  SECTION("random bytes") {
    auto path = MakeClip(Clip::kRandomBytes);
    REQUIRE(path.ok());
    CHECK(fs::file_size(*path) == 256 * 1024);
    CHECK_FALSE(ProbeVideoFrames(path->string()).ok());
  }
  SECTION("truncated with the moov at the front") {
    auto path = MakeClip(Clip::kTruncatedFaststart);
    REQUIRE(path.ok());
    auto boxes = TopLevelBoxes(path->string());
    REQUIRE(boxes.ok());
    CHECK(std::find(boxes->begin(), boxes->end(), "moov") <
          std::find(boxes->begin(), boxes->end(), "mdat"));
    // The index promises 180 frames; the bytes hold about half of them.
    auto counted = CountDecodedFrames(path->string());
    CHECK((!counted.ok() || *counted < 180));
  }
  SECTION("truncated before the moov at the end") {
    auto path = MakeClip(Clip::kTruncatedMoovAtEnd);
    REQUIRE(path.ok());
    auto boxes = TopLevelBoxes(path->string());
    REQUIRE(boxes.ok());
    CHECK(std::find(boxes->begin(), boxes->end(), "moov") == boxes->end());
    CHECK_FALSE(ProbeStreams(path->string()).ok());
  }
}

TEST_CASE("a cached clip is reused rather than made again", "[integration][support][slow]") {
  auto first = MakeClip(Clip::kNoAudio);
  REQUIRE(first.ok());
  auto written = fs::last_write_time(*first);
  auto second = MakeClip(Clip::kNoAudio);
  REQUIRE(second.ok());
  CHECK(*first == *second);
  CHECK(fs::last_write_time(*second) == written);
}

// --- The corpus ---------------------------------------------------------------------------

TEST_CASE("the frame probes count what the corpus manifest says", "[integration][support][slow]") {
  auto dir = CorpusDir();
  if (!dir) {
    WARN("skipped: no corpus (set ZEROFARM_CORPUS to the folder holding MANIFEST.tsv)");
    return;
  }
  auto manifest = ReadCorpusManifest(*dir);
  INFO(manifest.status().ToString());
  REQUIRE(manifest.ok());
  REQUIRE(!manifest->empty());
  for (const CorpusEntry& e : *manifest) {
    DYNAMIC_SECTION(e.file) {
      INFO(e.what);
      const std::string file = (*dir / e.file).string();
      auto video = ProbeVideoFrames(file);
      if (e.transcode) {
        auto counted = CountDecodedFrames(file);
        INFO(counted.status().ToString());
        REQUIRE(counted.ok());
        CHECK(*counted == *e.frames);
        INFO(video.status().ToString());
        REQUIRE(video.ok());
        CHECK(static_cast<int64_t>(video->frames.size()) == *e.frames);
        auto source = DescribeSource(file, e.frames);
        INFO(source.status().ToString());
        REQUIRE(source.ok());
        CHECK(source->display_width > 0);
        CHECK(source->display_height > 0);
      } else {
        // An independent decoder also fails on every file zerofarm must refuse.
        bool clean = video.ok() && video->decoder_messages.empty() && !video->frames.empty();
        CHECK_FALSE(clean);
      }
    }
  }
}

// --- The whole output check against a reference made by the ffmpeg CLI --------------------

TEST_CASE("the output checks pass on a reference output made by the ffmpeg CLI",
          "[integration][support][slow]") {
  auto scratch = ScratchDir::Create("reference-output");
  REQUIRE(scratch.ok());
  SECTION("with audio") {
    auto clip = MakeClip(Clip::kAacAudio);
    REQUIRE(clip.ok());
    auto source = DescribeSource(clip->string());
    INFO(source.status().ToString());
    REQUIRE(source.ok());
    REQUIRE(source->audio_seconds.has_value());
    const fs::path out = scratch->path() / "out";
    MakeReferenceOutput(clip->string(), out, {{"360p", 640, 360}, {"240p", 426, 240}}, true);
    CheckTranscodeOutput(out, *source, {720, 360, 240});
  }
  SECTION("portrait, without audio") {
    auto clip = MakeClip(Clip::kPortrait);
    REQUIRE(clip.ok());
    auto source = DescribeSource(clip->string());
    REQUIRE(source.ok());
    CHECK_FALSE(source->audio_seconds.has_value());
    const fs::path out = scratch->path() / "out";
    MakeReferenceOutput(clip->string(), out, {{"360p", 360, 640}, {"240p", 240, 426}}, false);
    CheckTranscodeOutput(out, *source, {360, 240});
  }
}

}  // namespace zerofarm::test
