#include "zerofarm/transcode/ladder.h"

#include <algorithm>
#include <cmath>
#include <sstream>

namespace zerofarm::transcode {
namespace {

int EvenRound(double v) {
  int r = static_cast<int>(std::lround(v / 2.0)) * 2;
  return std::max(r, 2);
}

// Bitrate caps for 30 fps content; higher frame rates get 1.5x.
int MaxrateFor(int short_side) {
  if (short_side >= 2160) return 16000;
  if (short_side >= 1440) return 10000;
  if (short_side >= 1080) return 6000;
  if (short_side >= 720) return 3500;
  if (short_side >= 480) return 1500;
  if (short_side >= 360) return 800;
  if (short_side >= 240) return 500;
  return 300;
}

}  // namespace

bool IsX264Preset(std::string_view name) {
  return std::find(kX264Presets.begin(), kX264Presets.end(), name) != kX264Presets.end();
}

Result<std::vector<int>> ParseLadder(const std::string& spec) {
  std::vector<int> out;
  std::stringstream in(spec);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (item.empty()) continue;
    if (item.back() == 'p' || item.back() == 'P') item.pop_back();
    char* end = nullptr;
    long v = std::strtol(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0' || v < 16 || v > 4320)
      return Status::Error(ErrorCode::kInvalidArgument,
                           "ladder rung '" + item + "' is not a height like 720p (16-4320)");
    out.push_back(static_cast<int>(v));
  }
  if (out.empty()) return Status::Error(ErrorCode::kInvalidArgument, "the ladder names no rung");
  std::sort(out.rbegin(), out.rend());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  if (out.size() > kMaxRungs)
    return Status::Error(ErrorCode::kInvalidArgument,
                         "the ladder names " + std::to_string(out.size()) + " rungs; at most " +
                             std::to_string(kMaxRungs) + " fit a worker's channels");
  return out;
}

std::string H264LevelFor(int width, int height, double fps, int maxrate_kbps) {
  struct Level {
    const char* name;
    long max_fs;    // macroblocks per frame
    long max_mbps;  // macroblocks per second
    long max_br;    // kbit/s, High profile (1.25x Main)
  };
  static constexpr Level kLevels[] = {
      {"3.0", 1620, 40500, 12500},     {"3.1", 3600, 108000, 17500},
      {"3.2", 5120, 216000, 25000},    {"4.0", 8192, 245760, 25000},
      {"4.1", 8192, 245760, 62500},    {"4.2", 8704, 522240, 62500},
      {"5.0", 22080, 589824, 168750},  {"5.1", 36864, 983040, 300000},
      {"5.2", 36864, 2073600, 300000},
  };
  long mbs = static_cast<long>(((width + 15) / 16) * ((height + 15) / 16));
  double mbps = static_cast<double>(mbs) * std::max(fps, 1.0);
  for (const Level& l : kLevels) {
    // MaxFS also bounds each dimension: sqrt(8 * MaxFS) macroblocks.
    long max_dim = static_cast<long>(std::sqrt(8.0 * l.max_fs));
    if (mbs <= l.max_fs && mbps <= l.max_mbps && maxrate_kbps <= l.max_br &&
        (width + 15) / 16 <= max_dim && (height + 15) / 16 <= max_dim)
      return l.name;
  }
  return "5.2";
}

std::vector<RungSettings> PlanLadder(const std::vector<int>& short_sides, int display_width,
                                     int display_height, double fps) {
  std::vector<RungSettings> rungs;
  if (display_width <= 0 || display_height <= 0) return rungs;
  const bool portrait = display_height > display_width;
  const int source_short = std::min(display_width, display_height);
  const double aspect = static_cast<double>(std::max(display_width, display_height)) /
                        static_cast<double>(source_short);
  auto make = [&](int short_side) {
    RungSettings r;
    int s = std::max(2, short_side - short_side % 2);
    int l = EvenRound(s * aspect);
    r.width = portrait ? s : l;
    r.height = portrait ? l : s;
    r.name = std::to_string(s) + "p";
    int base = MaxrateFor(s);
    r.maxrate_kbps = fps > 31.0 ? base * 3 / 2 : base;
    r.bufsize_kbps = r.maxrate_kbps * 2;
    r.level = H264LevelFor(r.width, r.height, fps, r.maxrate_kbps);
    return r;
  };
  for (int s : short_sides)
    if (s <= source_short) rungs.push_back(make(s));
  if (rungs.empty()) rungs.push_back(make(source_short));
  return rungs;
}

}  // namespace zerofarm::transcode
