// The corpus of real clips (see its MANIFEST.tsv); scratch directories are in scratch_dir.h.
// Functions read the environment and the file system only; thread-compatible.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "scratch_dir.h"
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

}  // namespace zerofarm::test
