// Test clips made with the ffmpeg CLI, each exercising one hard case for frame exactness
// (keyframe layouts, timestamps, geometry, audio) or for clean rejection (garbage).
// Clips are cached in ClipCacheDir() under a name keyed by the commands that make them, so
// reruns reuse them and a changed recipe makes a new file. Safe to call from several test
// processes at once: each clip is written to a private name and renamed into place.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "zerofarm/base/status.h"

namespace zerofarm::test {

enum class Clip {
  kLongGopSingleKeyframe,  // one IDR at the start, 12 s, B-frames, AAC 44.1 kHz mono
  kOpenGop,                // x264 open-gop, keyint 50, 3 B-frames: non-IDR keyframes
  kBFramePyramid,          // 3 B-frames with b-pyramid (B-frames used as references)
  kVariableFrameRate,      // MKV, frames 17-49 ms apart and a 250 ms stall, AAC
  kOddDimensions,          // 321x241 VP9 in WebM
  kRotated,                // 1280x720 coded, display-matrix rotation 90 (shows 720x1280), AAC
  kPortrait,               // 720x1280 coded
  kNoAudio,                // 640x360, video only
  kAacAudio,               // 640x360 + AAC 48 kHz stereo sine tone
  kTenBit,                 // yuv420p10le, x264 High 10
  // Inputs that must be refused:
  kEmpty,               // zero bytes
  kRandomBytes,         // 256 KiB from a fixed-seed generator, named .mp4
  kTruncatedFaststart,  // MP4 with moov at the front, cut in half
  kTruncatedMoovAtEnd,  // MP4 with moov at the end, cut just before the moov
};

struct ClipInfo {
  Clip clip;
  const char* name;         // file stem and test label, e.g. "long-gop-single-keyframe"
  const char* description;  // one line for messages and docs
  bool garbage = false;     // must be rejected
  bool has_audio = false;
  int display_width = 0;  // as shown (rotation applied); 0 for garbage
  int display_height = 0;
  int64_t frames = 0;        // frames the recipe makes (the tests still count them)
  double audio_seconds = 0;  // length of the generated tone, 0 without audio
};

const ClipInfo& InfoFor(Clip clip);
std::span<const ClipInfo> AllClips();

// $ZEROFARM_TEST_CLIPS, else $TMPDIR/zerofarm-test-clips (TMPDIR defaulting to /tmp).
std::filesystem::path ClipCacheDir();

// The path of the clip, generating it first when the cache has no copy.
Result<std::filesystem::path> MakeClip(Clip clip);

// Any other clip: `ffmpeg -nostdin -v error -y ARGS OUT`, cached in ClipCacheDir() as
// "<stem>-<key><ext>" with a key of the arguments (the same arguments reuse the file), made
// under a private name and renamed into place. `name` is "stem.ext", e.g. "noise.mkv".
Result<std::filesystem::path> MakeCachedClip(const std::string& name,
                                             const std::vector<std::string>& ffmpeg_args);

}  // namespace zerofarm::test
