// Scratch directories for tests: one kind, removed with everything in them when the test is
// done. Thread-compatible.
#pragma once

#include <filesystem>
#include <string>

#include "zerofarm/base/status.h"

namespace zerofarm::test {

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

// A ScratchDir made in the constructor, for tests that cannot go on without one: throws
// std::runtime_error (which Catch reports as the test's failure) when it cannot be made.
class TempDir {
 public:
  explicit TempDir(const std::string& label = "tmp");
  const std::filesystem::path& path() const { return dir_.path(); }

 private:
  ScratchDir dir_;
};

}  // namespace zerofarm::test
