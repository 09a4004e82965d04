#include "corpus.h"

#include <stdlib.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace zerofarm::test {
namespace {

std::vector<std::string> SplitTabs(const std::string& line) {
  std::vector<std::string> fields;
  std::string field;
  std::istringstream in(line);
  while (std::getline(in, field, '\t')) fields.push_back(field);
  return fields;
}

}  // namespace

std::optional<std::filesystem::path> CorpusDir() {
  std::filesystem::path dir;
  if (const char* env = std::getenv("ZEROFARM_CORPUS"); env != nullptr && *env != '\0') {
    dir = env;
  } else {
    dir = std::filesystem::path(ZF_SOURCE_DIR) / ".." / "shared" / "media" / "corpus";
  }
  std::error_code ec;
  if (!std::filesystem::is_regular_file(dir / "MANIFEST.tsv", ec)) return std::nullopt;
  return std::filesystem::weakly_canonical(dir, ec);
}

Result<std::vector<CorpusEntry>> ReadCorpusManifest(const std::filesystem::path& dir) {
  std::ifstream in(dir / "MANIFEST.tsv");
  if (!in)
    return Status::Error(ErrorCode::kOpenFailed, "cannot open " + (dir / "MANIFEST.tsv").string());
  std::vector<CorpusEntry> entries;
  std::string line;
  int line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line_no == 1) continue;  // the header: file expect frames what
    auto fields = SplitTabs(line);
    if (fields.size() < 3) {
      return Status::Error(ErrorCode::kBadManifest,
                           "MANIFEST.tsv line " + std::to_string(line_no) +
                               ": expected at least 3 tab-separated fields");
    }
    CorpusEntry e;
    e.file = fields[0];
    if (fields[1] == "transcode") {
      e.transcode = true;
    } else if (fields[1] != "reject") {
      return Status::Error(ErrorCode::kBadManifest, "MANIFEST.tsv line " + std::to_string(line_no) +
                                                        ": expect is neither transcode nor reject");
    }
    if (e.transcode) {
      char* end = nullptr;
      long long n = std::strtoll(fields[2].c_str(), &end, 10);
      if (fields[2].empty() || *end != '\0' || n <= 0) {
        return Status::Error(ErrorCode::kBadManifest,
                             "MANIFEST.tsv line " + std::to_string(line_no) +
                                 ": a transcode entry needs a frame count");
      }
      e.frames = n;
    }
    if (fields.size() > 3) e.what = fields[3];
    entries.push_back(std::move(e));
  }
  return entries;
}

}  // namespace zerofarm::test
