#include "test_pattern.h"

#include "run_command.h"

namespace zerofarm::test {

Result<std::filesystem::path> MakeTestPattern(const std::filesystem::path& dir, int seconds,
                                              const std::string& size) {
  const std::filesystem::path clip = dir / "clip.mp4";
  const std::string d = std::to_string(seconds);
  auto r = RunCommand(
      {"ffmpeg",     "-v",      "error",   "-y",
       "-f",         "lavfi",   "-i",      "testsrc2=size=" + size + ":rate=25:duration=" + d,
       "-f",         "lavfi",   "-i",      "sine=duration=" + d,
       "-c:v",       "libx264", "-preset", "ultrafast",
       "-g",         "25",      "-c:a",    "aac",
       clip.string()},
      std::chrono::seconds(120));
  if (!r.succeeded())
    return Status::Error("io_error", "ffmpeg could not make the test pattern: " + r.err);
  return clip;
}

}  // namespace zerofarm::test
