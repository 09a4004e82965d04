// The corpus of real clips (see its MANIFEST.tsv) and per-test scratch directories.
// Functions read the environment and the file system only; thread-compatible.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "zerofarm/base/status.h"

namespace zerofarm::test {

// $ZEROFARM_CORPUS, else "${ZF_SOURCE_DIR}/../shared/media/corpus"; nullopt when that folder
// has no MANIFEST.tsv (tests then skip with a message).
std::optional<std::filesystem::path> CorpusDir();

struct CorpusEntry {
  std::string file;        // name inside the corpus folder
  bool transcode = false;  // "transcode": must come out frame-exact; "reject": refused cleanly
  std::optional<int64_t> frames;  // video frames FFmpeg decodes, for transcode entries
  std::string what;
};

// Parses MANIFEST.tsv (a header line, then file, expect, frames, what; tab-separated).
Result<std::vector<CorpusEntry>> ReadCorpusManifest(const std::filesystem::path& dir);

// A fresh directory under $TMPDIR (or /tmp), removed with everything in it on destruction
// unless ZEROFARM_KEEP_TEST_OUTPUT is set. Move-only.
class ScratchDir {
 public:
  // `label` becomes part of the name, sanitised to [A-Za-z0-9._-].
  static Result<ScratchDir> Create(const std::string& label);
  ScratchDir(ScratchDir&& other) noexcept : path_(std::move(other.path_)) { other.path_.clear(); }
  ScratchDir& operator=(ScratchDir&& other) noexcept;
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  ~ScratchDir();

  const std::filesystem::path& path() const { return path_; }

 private:
  explicit ScratchDir(std::filesystem::path path) : path_(std::move(path)) {}
  void Remove() noexcept;
  std::filesystem::path path_;
};

// $TMPDIR, or /tmp when unset.
std::filesystem::path TempRoot();

}  // namespace zerofarm::test
