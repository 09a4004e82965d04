#include "test_pattern.h"

#include "clip_factory.h"

namespace zerofarm::test {

Result<std::filesystem::path> MakeTestPattern(const std::filesystem::path& dir, int seconds,
                                              const std::string& size) {
  const std::string d = std::to_string(seconds);
  auto cached = MakeCachedClip(
      "pattern-" + size + "-" + d + "s.mp4",
      {"-f", "lavfi", "-i", "testsrc2=size=" + size + ":rate=25:duration=" + d, "-f", "lavfi", "-i",
       "sine=duration=" + d, "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-c:a", "aac"});
  if (!cached.ok()) return cached.status();
  const std::filesystem::path clip = dir / "clip.mp4";
  std::error_code ec;
  std::filesystem::copy_file(*cached, clip, std::filesystem::copy_options::overwrite_existing, ec);
  if (ec)
    return Status::Error(ErrorCode::kIoError, "cannot copy the test pattern: " + ec.message());
  return clip;
}

}  // namespace zerofarm::test
