#include "clip_factory.h"

#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <vector>

#include "corpus.h"
#include "media_check.h"
#include "run_command.h"

namespace zerofarm::test {
namespace {

namespace fs = std::filesystem;
using Args = std::vector<std::string>;

constexpr std::chrono::seconds kGenerateTimeout{600};

// Bumped when the way recipes turn into files changes without the commands changing.
constexpr const char* kRecipeVersion = "clip-recipe-1";

constexpr ClipInfo Video(Clip clip, const char* name, const char* description, int width,
                         int height, int64_t frames, double audio_seconds = 0) {
  return ClipInfo{.clip = clip,
                  .name = name,
                  .description = description,
                  .garbage = false,
                  .has_audio = audio_seconds > 0,
                  .display_width = width,
                  .display_height = height,
                  .frames = frames,
                  .audio_seconds = audio_seconds};
}

constexpr ClipInfo Garbage(Clip clip, const char* name, const char* description) {
  return ClipInfo{.clip = clip, .name = name, .description = description, .garbage = true};
}

constexpr std::array<ClipInfo, 14> kClips = {
    Video(Clip::kLongGopSingleKeyframe, "long-gop-single-keyframe",
          "640x360 30 fps 12 s H.264, one IDR at the start, 3 B-frames, AAC 44.1 kHz mono", 640,
          360, 360, 12.0),
    Video(Clip::kOpenGop, "open-gop",
          "640x360 25 fps 8 s H.264 open GOP (keyint 50, 3 B-frames, non-IDR keyframes)", 640, 360,
          200),
    Video(Clip::kBFramePyramid, "b-frame-pyramid",
          "640x360 30 fps 6 s H.264 with 3 B-frames and b-pyramid=normal", 640, 360, 180),
    Video(Clip::kVariableFrameRate, "variable-frame-rate",
          "640x360 MKV, 240 frames 17-49 ms apart with a 250 ms stall, AAC 44.1 kHz mono", 640, 360,
          240, 8.2),
    Video(Clip::kOddDimensions, "odd-dimensions", "321x241 25 fps 5 s VP9 in WebM", 321, 241, 125),
    Video(Clip::kRotated, "rotated",
          "1280x720 30 fps 4 s H.264 with display rotation 90 (shown 720x1280), AAC", 720, 1280,
          120, 4.0),
    Video(Clip::kPortrait, "portrait", "720x1280 30 fps 4 s H.264, coded portrait", 720, 1280, 120),
    Video(Clip::kNoAudio, "no-audio", "640x360 30 fps 5 s H.264, no audio stream", 640, 360, 150),
    Video(Clip::kAacAudio, "aac-audio", "640x360 30 fps 6 s H.264 + AAC 48 kHz stereo 440 Hz tone",
          640, 360, 180, 6.0),
    Video(Clip::kTenBit, "ten-bit", "640x360 30 fps 4 s H.264 High 10, yuv420p10le", 640, 360, 120),
    Garbage(Clip::kEmpty, "empty", "a zero-byte file named .mp4"),
    Garbage(Clip::kRandomBytes, "random-bytes", "256 KiB of fixed-seed random bytes named .mp4"),
    Garbage(Clip::kTruncatedFaststart, "truncated-faststart",
            "an MP4 with its moov at the front, cut in half"),
    Garbage(Clip::kTruncatedMoovAtEnd, "truncated-moov-at-end",
            "an MP4 with its moov at the end, cut just before the moov"),
};

enum class Post { kNone, kCheckRotation, kCutHalf, kCutBeforeMoov, kEmpty, kRandom };

// How a clip is made: ffmpeg steps (without the binary name and output path; "{prev}" names the
// previous step's output), then a post-processing step done here.
struct Recipe {
  std::string ext;
  std::vector<Args> steps;
  Post post = Post::kNone;
};

constexpr uint64_t kRandomSeed = 0x5eed2024u;
constexpr size_t kRandomBytes = 256 * 1024;

Args Concat(std::initializer_list<Args> parts) {
  Args all;
  for (const auto& p : parts) all.insert(all.end(), p.begin(), p.end());
  return all;
}

// Motion (testsrc2) with temporal noise on top, so the encoder has real work and texture.
Args VideoSource(int w, int h, int rate, double seconds, int seed, const std::string& extra = "") {
  std::string graph = "testsrc2=size=" + std::to_string(w) + "x" + std::to_string(h) +
                      ":rate=" + std::to_string(rate) + ":duration=" + std::to_string(seconds);
  if (!extra.empty()) graph += "," + extra;
  graph += ",noise=alls=12:allf=t+u:all_seed=" + std::to_string(seed);
  return {"-f", "lavfi", "-i", graph};
}

Args ToneSource(int frequency, int sample_rate, double seconds) {
  return {"-f", "lavfi", "-i",
          "sine=frequency=" + std::to_string(frequency) + ":sample_rate=" +
              std::to_string(sample_rate) + ":duration=" + std::to_string(seconds)};
}

Args X264(const std::string& params, const std::string& pix_fmt = "yuv420p") {
  return {"-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", pix_fmt, "-x264-params", params};
}

Args Aac(int channels) { return {"-c:a", "aac", "-b:a", "96k", "-ac", std::to_string(channels)}; }

const Args kHead = {"-nostdin", "-v", "error", "-y"};
const Args kBitexact = {"-fflags", "+bitexact", "-flags:v", "+bitexact", "-flags:a", "+bitexact"};
const Args kVideoAndTone = {"-map", "0:v", "-map", "1:a"};

Recipe RecipeFor(Clip clip) {
  switch (clip) {
    case Clip::kLongGopSingleKeyframe:
      return {
          ".mp4",
          {Concat({kHead, VideoSource(640, 360, 30, 12, 7), ToneSource(440, 44100, 12),
                   kVideoAndTone, X264("keyint=infinite:min-keyint=infinite:scenecut=0:bframes=3"),
                   Aac(1), kBitexact})}};
    case Clip::kOpenGop:
      return {".mp4",
              {Concat({kHead, VideoSource(640, 360, 25, 8, 11),
                       X264("keyint=50:min-keyint=50:scenecut=0:open-gop=1:bframes=3:b-adapt=0"),
                       kBitexact})}};
    case Clip::kBFramePyramid:
      return {".mp4",
              {Concat({kHead, VideoSource(640, 360, 30, 6, 17),
                       X264("keyint=90:bframes=3:b-pyramid=normal:b-adapt=2"), kBitexact})}};
    case Clip::kVariableFrameRate:
      // Made at 30 fps, then retimed: durations 33 ms +- 16 ms and a 250 ms stall at frame 120,
      // in a millisecond time base passed through unchanged.
      return {
          ".mkv",
          {Concat({kHead,
                   VideoSource(640, 360, 30, 8, 13,
                               "settb=1/1000,setpts='(N*0.033+0.016*sin(N)+0.25*gte(N\\,120))/TB'"),
                   ToneSource(660, 44100, 8.2),
                   kVideoAndTone,
                   {"-fps_mode", "passthrough", "-enc_time_base:v", "1:1000"},
                   X264("keyint=60:bframes=2"),
                   Aac(1),
                   kBitexact})}};
    case Clip::kOddDimensions:
      // testsrc2 rounds sizes to even for YUV; crop in 4:4:4 to reach odd ones.
      return {".webm",
              {Concat({kHead,
                       VideoSource(322, 242, 25, 5, 19, "format=yuv444p,crop=321:241:0:0"),
                       {"-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-b:v",
                        "400k", "-pix_fmt", "yuv420p"},
                       kBitexact})}};
    case Clip::kRotated:
      // FFmpeg 5.1 keeps the rotate tag only when stream copying, so rotate in a remux.
      return {".mp4",
              {Concat({kHead, VideoSource(1280, 720, 30, 4, 23), ToneSource(550, 48000, 4),
                       kVideoAndTone, X264("keyint=60:bframes=3"), Aac(2), kBitexact}),
               Concat({kHead,
                       {"-i", "{prev}", "-map", "0", "-c", "copy", "-metadata:s:v:0", "rotate=90"},
                       kBitexact})},
              Post::kCheckRotation};
    case Clip::kPortrait:
      return {".mp4",
              {Concat({kHead, VideoSource(720, 1280, 30, 4, 29), X264("keyint=60:bframes=3"),
                       kBitexact})}};
    case Clip::kNoAudio:
      return {".mp4",
              {Concat({kHead, VideoSource(640, 360, 30, 5, 31), X264("keyint=60:bframes=3"),
                       kBitexact})}};
    case Clip::kAacAudio:
      return {".mp4",
              {Concat({kHead, VideoSource(640, 360, 30, 6, 37), ToneSource(440, 48000, 6),
                       kVideoAndTone, X264("keyint=60:bframes=3"), Aac(2), kBitexact})}};
    case Clip::kTenBit:
      return {".mp4",
              {Concat({kHead,
                       VideoSource(640, 360, 30, 4, 41),
                       X264("keyint=60:bframes=3", "yuv420p10le"),
                       {"-profile:v", "high10"},
                       kBitexact})}};
    case Clip::kEmpty:
      return {".mp4", {}, Post::kEmpty};
    case Clip::kRandomBytes:
      return {".mp4", {}, Post::kRandom};
    case Clip::kTruncatedFaststart:
      return {".mp4",
              {Concat({kHead,
                       VideoSource(640, 360, 30, 6, 43),
                       ToneSource(440, 48000, 6),
                       kVideoAndTone,
                       X264("keyint=60:bframes=3"),
                       Aac(2),
                       {"-movflags", "+faststart"},
                       kBitexact})},
              Post::kCutHalf};
    case Clip::kTruncatedMoovAtEnd:
      return {".mp4",
              {Concat({kHead, VideoSource(640, 360, 30, 6, 47), ToneSource(440, 48000, 6),
                       kVideoAndTone, X264("keyint=60:bframes=3"), Aac(2), kBitexact})},
              Post::kCutBeforeMoov};
  }
  return {};
}

uint64_t Fnv1a(const std::string& text) {
  uint64_t h = 0xcbf29ce484222325u;
  for (unsigned char c : text) {
    h ^= c;
    h *= 0x100000001b3u;
  }
  return h;
}

std::string CacheKey(const Recipe& recipe) {
  std::string text = kRecipeVersion;
  text += '\n' + recipe.ext + '\n' + std::to_string(static_cast<int>(recipe.post));
  text += '\n' + FfmpegPath();
  for (const auto& step : recipe.steps) {
    text += '\n' + FormatCommand(step);
  }
  if (recipe.post == Post::kRandom) {
    text += '\n' + std::to_string(kRandomSeed) + ':' + std::to_string(kRandomBytes);
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(Fnv1a(text)));
  return std::string(hex, 12);
}

Status RunFfmpeg(Args args, const fs::path& prev, const fs::path& out) {
  for (auto& a : args) {
    if (a == "{prev}") a = prev.string();
  }
  Args argv = {FfmpegPath()};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.push_back(out.string());
  CommandResult r = RunCommand(argv, kGenerateTimeout);
  if (!r.succeeded()) {
    return Status::Error(ErrorCode::kClipGenerationFailed,
                         FormatCommand(argv) + ": " + r.DescribeEnd() + ": " + r.err);
  }
  return Status::Ok();
}

Status WriteBytes(const fs::path& path, const std::vector<char>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) return Status::Error(ErrorCode::kWriteFailed, "cannot write " + path.string());
  return Status::Ok();
}

Result<std::vector<char>> ReadBytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::Error(ErrorCode::kOpenFailed, "cannot open " + path.string());
  return std::vector<char>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Byte offset of the top-level box `type`, by walking box headers.
Result<uint64_t> BoxOffset(const std::vector<char>& bytes, const std::string& type) {
  uint64_t pos = 0;
  auto byte = [&](uint64_t i) {
    return static_cast<uint64_t>(static_cast<unsigned char>(bytes[i]));
  };
  while (pos + 8 <= bytes.size()) {
    uint64_t size =
        (byte(pos) << 24) | (byte(pos + 1) << 16) | (byte(pos + 2) << 8) | byte(pos + 3);
    std::string t(bytes.data() + pos + 4, 4);
    if (t == type) return pos;
    if (size == 1 && pos + 16 <= bytes.size()) {
      size = 0;
      for (uint64_t i = 8; i < 16; ++i) size = (size << 8) | byte(pos + i);
    }
    if (size < 8) break;
    pos += size;
  }
  return Status::Error(ErrorCode::kNoBox, "no top-level '" + type + "' box");
}

Status Rename(const fs::path& from, const fs::path& to) {
  std::error_code ec;
  fs::rename(from, to, ec);
  if (ec)
    return Status::Error(ErrorCode::kIoError,
                         "cannot rename " + from.string() + ": " + ec.message());
  return Status::Ok();
}

Status Finish(Post post, const fs::path& made, const fs::path& out) {
  switch (post) {
    case Post::kNone:
      return Rename(made, out);
    case Post::kCheckRotation: {
      auto info = ProbeStreams(made.string());
      if (!info.ok()) return info.status();
      const StreamInfo* v = info->First("video");
      if (v == nullptr || (v->rotation != 90 && v->rotation != -90 && v->rotation != 270)) {
        return Status::Error(ErrorCode::kClipGenerationFailed,
                             "the rotate=90 metadata did not become a display matrix");
      }
      return Rename(made, out);
    }
    case Post::kEmpty:
      return WriteBytes(out, {});
    case Post::kRandom: {
      std::mt19937_64 gen(kRandomSeed);
      std::vector<char> bytes(kRandomBytes);
      for (size_t i = 0; i < bytes.size(); i += 8) {
        uint64_t v = gen();
        for (size_t k = 0; k < 8 && i + k < bytes.size(); ++k) {
          bytes[i + k] = static_cast<char>((v >> (8 * k)) & 0xff);
        }
      }
      return WriteBytes(out, bytes);
    }
    case Post::kCutHalf:
    case Post::kCutBeforeMoov: {
      auto bytes = ReadBytes(made);
      if (!bytes.ok()) return bytes.status();
      auto moov = BoxOffset(*bytes, "moov");
      auto mdat = BoxOffset(*bytes, "mdat");
      if (!moov.ok() || !mdat.ok())
        return Status::Error(ErrorCode::kClipGenerationFailed, "no moov/mdat");
      uint64_t cut = 0;
      if (post == Post::kCutHalf) {
        if (*moov > *mdat)
          return Status::Error(ErrorCode::kClipGenerationFailed, "moov is not at the front");
        cut = bytes->size() / 2;
      } else {
        if (*moov < *mdat)
          return Status::Error(ErrorCode::kClipGenerationFailed, "moov is not at the end");
        cut = *moov;
      }
      bytes->resize(cut);
      return WriteBytes(out, *bytes);
    }
  }
  return Status::Error(ErrorCode::kClipGenerationFailed, "unknown post-processing step");
}

}  // namespace

const ClipInfo& InfoFor(Clip clip) {
  for (const auto& info : kClips) {
    if (info.clip == clip) return info;
  }
  std::abort();  // every enumerator has an entry in kClips
}

std::span<const ClipInfo> AllClips() { return kClips; }

fs::path ClipCacheDir() {
  if (const char* env = std::getenv("ZEROFARM_TEST_CLIPS"); env != nullptr && *env != '\0') {
    return env;
  }
  return TempRoot() / "zerofarm-test-clips";
}

Result<fs::path> MakeClip(Clip clip) {
  const ClipInfo& info = InfoFor(clip);
  const Recipe recipe = RecipeFor(clip);
  const fs::path dir = ClipCacheDir();
  const fs::path out = dir / (std::string(info.name) + "-" + CacheKey(recipe) + recipe.ext);
  std::error_code ec;
  if (fs::is_regular_file(out, ec)) return out;
  fs::create_directories(dir, ec);
  if (ec)
    return Status::Error(ErrorCode::kIoError,
                         "cannot create " + dir.string() + ": " + ec.message());

  // Private names for this process; the finished clip is renamed into place atomically.
  const std::string unique = std::to_string(::getpid());
  auto part = [&](int n) {
    return dir /
           (std::string(info.name) + ".part-" + unique + "-" + std::to_string(n) + recipe.ext);
  };
  const fs::path staged = dir / (std::string(info.name) + ".staged-" + unique + recipe.ext);
  Status status;
  fs::path prev;
  for (size_t i = 0; i < recipe.steps.size() && status.ok(); ++i) {
    fs::path next = part(static_cast<int>(i));
    status = RunFfmpeg(recipe.steps[i], prev, next);
    if (!prev.empty()) fs::remove(prev, ec);
    prev = next;
  }
  if (status.ok()) status = Finish(recipe.post, prev, staged);
  if (status.ok()) status = Rename(staged, out);
  if (!prev.empty()) fs::remove(prev, ec);
  fs::remove(staged, ec);
  if (!status.ok()) return status.WithContext(std::string("making clip ") + info.name);
  return out;
}

Result<fs::path> MakeCachedClip(const std::string& name, const std::vector<std::string>& args) {
  const fs::path as_named(name);
  const std::string stem = as_named.stem().string(), ext = as_named.extension().string();
  char key[17];
  std::snprintf(key, sizeof key, "%016llx",
                static_cast<unsigned long long>(Fnv1a(std::string(kRecipeVersion) + '\n' +
                                                      FfmpegPath() + '\n' + FormatCommand(args))));
  const fs::path dir = ClipCacheDir();
  const fs::path out = dir / (stem + "-" + std::string(key, 12) + ext);
  std::error_code ec;
  if (fs::is_regular_file(out, ec)) return out;
  fs::create_directories(dir, ec);
  if (ec)
    return Status::Error(ErrorCode::kIoError,
                         "cannot create " + dir.string() + ": " + ec.message());
  const fs::path part = dir / (stem + ".part-" + std::to_string(::getpid()) + ext);
  Status status = RunFfmpeg(Concat({{"-nostdin", "-v", "error", "-y"}, args}), {}, part);
  if (status.ok()) status = Rename(part, out);
  fs::remove(part, ec);
  if (!status.ok()) return status.WithContext("making clip " + name);
  return out;
}

}  // namespace zerofarm::test
