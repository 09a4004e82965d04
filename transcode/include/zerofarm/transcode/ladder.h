// The rendition ladder: which rungs a source gets and the x264 settings of each.
// Pure functions; thread-safe.
//
// A rung names the short side of the frame ("720p" is 1280x720 landscape, 720x1280 portrait).
// The display aspect ratio (sample aspect and rotation applied) is kept, dimensions are even,
// rungs above the source's short side are skipped (never upscale), and a source smaller than
// every rung gets one rung at its own size.
#pragma once

#include <array>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "zerofarm/base/status.h"

namespace zerofarm::transcode {

struct RungSettings {
  std::string name;  // "720p"
  int width = 0;     // output frame, even
  int height = 0;
  int crf = 23;          // capped CRF: quality target...
  int maxrate_kbps = 0;  // ...under a VBV cap
  int bufsize_kbps = 0;
  std::string level;  // H.264 level fitting the frame size and rate, e.g. "3.1"
  std::string profile = "high";
};

// The most rungs a ladder may have. Every rung is one output channel of a worker, and the
// sandbox gives a program at most 64 channels, 4 of which are its input, report, stderr and
// the thumbnail: a longer ladder could never run, so it is refused when it is asked for.
inline constexpr size_t kMaxRungs = 60;

// The x264 presets a video may ask for, fastest first ("placebo" is not one: it costs many
// times "veryslow" for no visible gain, which a shared farm cannot afford).
inline constexpr std::array<std::string_view, 9> kX264Presets = {
    "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"};
// Whether `name` is one of kX264Presets.
bool IsX264Preset(std::string_view name);

// Parses "1080p,720p,480p,360p" into short-side heights (descending, deduplicated); refuses
// more than kMaxRungs distinct rungs.
Result<std::vector<int>> ParseLadder(const std::string& spec);

// The rungs for a source whose *displayed* frame (rotation and SAR applied) is
// display_width x display_height, at `fps` frames per second.
std::vector<RungSettings> PlanLadder(const std::vector<int>& short_sides, int display_width,
                                     int display_height, double fps);

// The lowest H.264 level whose frame-size, macroblock-rate and bitrate limits admit this
// encode ("5.2" when nothing lower fits).
std::string H264LevelFor(int width, int height, double fps, int maxrate_kbps);

}  // namespace zerofarm::transcode
