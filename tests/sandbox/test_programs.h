// Helpers for tests that build real programs with the system toolchain at test time.
#pragma once

#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "scratch_dir.h"

namespace zerofarm::sandbox_test {

// A fresh directory under $TMPDIR (or /tmp), removed with its contents on destruction.
using TempDir = test::TempDir;

// Whether `gcc` runs here; toolchain tests warn and skip themselves when it does not.
bool HaveGcc();

// Writes `source` to dir/name and runs `gcc <flags> -o dir/<stem> dir/name`. Returns the
// output path, or nullopt with the compiler's output in *log.
std::optional<std::filesystem::path> Compile(const TempDir& dir, const std::string& name,
                                             const std::string& source, const std::string& flags,
                                             std::string* log);

// Runs `strip` on `program` in place (removing its symbol table); false with strip's output
// in *log when that fails.
bool Strip(const std::filesystem::path& program, std::string* log);

std::vector<std::byte> ReadFile(const std::filesystem::path& path);
void WriteFile(const std::filesystem::path& path, const std::vector<std::byte>& data);

}  // namespace zerofarm::sandbox_test
