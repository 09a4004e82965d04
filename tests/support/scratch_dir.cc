// ScratchDir, TempDir (scratch_dir.h).
#include "scratch_dir.h"

#include <stdlib.h>

#include <cerrno>
#include <cstdlib>
#include <stdexcept>

namespace zerofarm::test {

std::filesystem::path TempRoot() {
  const char* tmp = std::getenv("TMPDIR");
  return (tmp != nullptr && *tmp != '\0') ? std::filesystem::path(tmp)
                                          : std::filesystem::path("/tmp");
}

Result<ScratchDir> ScratchDir::Create(const std::string& label) {
  std::string clean;
  for (char c : label) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    clean += ok ? c : '_';
  }
  std::string templ = (TempRoot() / ("zerofarm-test-" + clean + "-XXXXXX")).string();
  if (::mkdtemp(templ.data()) == nullptr) return ErrnoError("mkdtemp " + templ, errno);
  return ScratchDir(std::filesystem::path(templ));
}

ScratchDir& ScratchDir::operator=(ScratchDir&& other) noexcept {
  if (this != &other) {
    Remove();
    path_ = std::move(other.path_);
    other.path_.clear();
  }
  return *this;
}

ScratchDir::~ScratchDir() { Remove(); }

void ScratchDir::Remove() noexcept {
  if (path_.empty()) return;
  const char* keep = std::getenv("ZEROFARM_KEEP_TEST_OUTPUT");
  if (keep == nullptr || *keep == '\0') {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  path_.clear();
}

namespace {
ScratchDir MustCreate(const std::string& label) {
  auto dir = ScratchDir::Create(label);
  if (!dir.ok()) throw std::runtime_error("no scratch directory: " + dir.status().ToString());
  return std::move(*dir);
}
}  // namespace

TempDir::TempDir(const std::string& label) : dir_(MustCreate(label)) {}

}  // namespace zerofarm::test
