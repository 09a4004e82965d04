// A short synthetic clip for engine tests: ffmpeg's testsrc2 at 25 fps with a keyframe every
// second (H.264, ultrafast) and a sine tone (AAC), written to DIR/clip.mp4.
#pragma once

#include <filesystem>
#include <string>

#include "zerofarm/base/status.h"

namespace zerofarm::test {

Result<std::filesystem::path> MakeTestPattern(const std::filesystem::path& dir, int seconds,
                                              const std::string& size = "320x180");

}  // namespace zerofarm::test
