#include "zerofarm/sandbox/verdict_cache.h"

#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "elf_builder.h"
#include "test_programs.h"

namespace zerofarm::sandbox {
namespace {

using sandbox_test::ElfBuilder;
using sandbox_test::TempDir;

// exit(0), and the same with a cli in front.
const std::vector<uint8_t> kExit = {0xb8, 0x3c, 0x00, 0x00, 0x00, 0x31, 0xff, 0x0f, 0x05};
const std::vector<uint8_t> kCliExit = {0xfa, 0xb8, 0x3c, 0x00, 0x00, 0x00, 0x31, 0xff, 0x0f, 0x05};

std::unique_ptr<VerdictCache> OpenCache(const std::filesystem::path& dir = {}) {
  Result<std::unique_ptr<VerdictCache>> cache = VerdictCache::Open({dir, 16});
  REQUIRE(cache.ok());
  return std::move(cache).value();
}

ValidationReport Run(VerdictCache& cache, const std::vector<std::byte>& program,
                     const ValidatorOptions& options = {}) {
  Result<ValidationReport> report = cache.Validate(program, options);
  REQUIRE(report.ok());
  return std::move(report).value();
}

std::vector<std::filesystem::path> JsonFiles(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().extension() == ".json") files.push_back(e.path());
  }
  return files;
}

TEST_CASE("a second validation of the same bytes is a cache hit with the same verdict",
          "[sandbox]") {
  const std::vector<std::byte> good = ElfBuilder(kExit).Build();
  const std::vector<std::byte> bad = ElfBuilder(kCliExit).Build();
  auto cache = OpenCache();

  const ValidationReport first = Run(*cache, good);
  CHECK(first.timing.cache == "miss");
  const ValidationReport second = Run(*cache, good);
  CHECK(second.timing.cache == "memory");
  CHECK(second.accepted() == first.accepted());
  CHECK(second.sha256 == first.sha256);
  CHECK(second.counts.instructions == first.counts.instructions);

  const ValidationReport rejected = Run(*cache, bad);
  CHECK(rejected.timing.cache == "miss");
  CHECK_FALSE(rejected.accepted());
  const ValidationReport rejected_again = Run(*cache, bad);
  CHECK(rejected_again.timing.cache == "memory");
  CHECK_FALSE(rejected_again.accepted());
  REQUIRE(rejected_again.reasons.size() == 1);
  CHECK(rejected_again.reasons[0].code == "forbidden_instruction");

  CHECK(cache->stats().misses == 2);
  CHECK(cache->stats().memory_hits == 2);
}

TEST_CASE("a sealed program already validated is answered by its identity, other memfds by content",
          "[sandbox]") {
  const std::vector<std::byte> good = ElfBuilder(kExit).Build();
  const std::vector<std::byte> bad = ElfBuilder(kCliExit).Build();
  auto cache = OpenCache();
  auto sealed = SealedProgram::FromBytes(good, "good");
  REQUIRE(sealed.ok());

  auto first = cache->ValidateSealed(*sealed);
  REQUIRE(first.ok());
  CHECK(first->timing.cache == "miss");
  auto again = cache->ValidateSealed(*sealed);
  REQUIRE(again.ok());
  CHECK(again->timing.cache == "sealed");
  CHECK(again->accepted());
  CHECK(again->sha256 == first->sha256);
  CHECK(cache->stats().sealed_hits == 1);

  // Another memfd with the same bytes is not the same identity: found by its hash instead.
  auto copy = SealedProgram::FromBytes(good, "copy");
  REQUIRE(copy.ok());
  CHECK(cache->ValidateSealed(*copy)->timing.cache == "memory");
  // One with other bytes, even right after the first memfd is gone, is validated afresh.
  sealed = SealedProgram::FromBytes(bad, "bad");
  REQUIRE(sealed.ok());
  auto rejected = cache->ValidateSealed(*sealed);
  REQUIRE(rejected.ok());
  CHECK(rejected->timing.cache == "miss");
  CHECK_FALSE(rejected->accepted());
  // Other options are another key, also for a sealed program.
  ValidatorOptions strict;
  strict.reject_data_regions = true;
  CHECK(cache->ValidateSealed(*copy, strict)->timing.cache == "miss");
  CHECK(cache->ValidateSealed(*copy, strict)->timing.cache == "sealed");
}

TEST_CASE("the key holds the options: other options validate again", "[sandbox]") {
  const std::vector<std::byte> good = ElfBuilder(kExit).Build();
  auto cache = OpenCache();
  CHECK(Run(*cache, good).timing.cache == "miss");
  ValidatorOptions strict;
  strict.reject_data_regions = true;
  CHECK(Run(*cache, good, strict).timing.cache == "miss");
  CHECK(Run(*cache, good, strict).timing.cache == "memory");
}

TEST_CASE("verdicts on disk serve a new cache and survive a restart", "[sandbox]") {
  TempDir dir;
  const std::filesystem::path cache_dir = dir.path() / "verdicts";
  const std::vector<std::byte> bad = ElfBuilder(kCliExit).Build();
  {
    auto cache = OpenCache(cache_dir);
    CHECK(Run(*cache, bad).timing.cache == "miss");
  }
  struct stat st;
  REQUIRE(::stat(cache_dir.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0700);
  REQUIRE(JsonFiles(cache_dir).size() == 1);
  CHECK(JsonFiles(cache_dir)[0].filename().string().rfind(Run(*OpenCache(), bad).sha256, 0) == 0);

  auto cache = OpenCache(cache_dir);
  const ValidationReport from_disk = Run(*cache, bad);
  CHECK(from_disk.timing.cache == "disk");
  CHECK_FALSE(from_disk.accepted());
  REQUIRE(from_disk.reasons.size() == 1);
  CHECK(from_disk.reasons[0].vaddr == sandbox_test::kCodeVaddr);
  CHECK(Run(*cache, bad).timing.cache == "memory");
  CHECK(cache->stats().disk_hits == 1);

  SECTION("a corrupt verdict file is a miss and is replaced") {
    const std::filesystem::path file = JsonFiles(cache_dir)[0];
    std::ofstream(file, std::ios::trunc) << "{\"verdict\": \"accepted\"";
    auto fresh = OpenCache(cache_dir);
    const ValidationReport again = Run(*fresh, bad);
    CHECK(again.timing.cache == "miss");
    CHECK_FALSE(again.accepted());
    CHECK(Run(*OpenCache(cache_dir), bad).timing.cache == "disk");
  }
  SECTION("a verdict about other bytes put in its place is not believed") {
    const std::vector<std::byte> good = ElfBuilder(kExit).Build();
    auto other = OpenCache(dir.path() / "other");
    CHECK(Run(*other, good).accepted());
    const std::filesystem::path good_file = JsonFiles(dir.path() / "other")[0];
    std::filesystem::copy_file(good_file, JsonFiles(cache_dir)[0],
                               std::filesystem::copy_options::overwrite_existing);
    const ValidationReport again = Run(*OpenCache(cache_dir), bad);
    CHECK(again.timing.cache == "miss");
    CHECK_FALSE(again.accepted());
  }
}

TEST_CASE("a cache directory others can write is refused", "[sandbox]") {
  TempDir dir;
  std::filesystem::permissions(dir.path(), std::filesystem::perms::all);
  Result<std::unique_ptr<VerdictCache>> cache = VerdictCache::Open({dir.path(), 16});
  REQUIRE_FALSE(cache.ok());
  CHECK(cache.status().code() == ErrorCode::kCacheDirUnsafe);
}

TEST_CASE("the memory cache stays within its entry limit", "[sandbox]") {
  Result<std::unique_ptr<VerdictCache>> opened = VerdictCache::Open({{}, 2});
  REQUIRE(opened.ok());
  VerdictCache& cache = **opened;
  std::vector<std::vector<std::byte>> programs;
  for (uint8_t i = 0; i < 3; ++i) {
    std::vector<uint8_t> code = kExit;
    code.push_back(i);  // different bytes, different hash
    programs.push_back(ElfBuilder(code).Build());
  }
  for (const auto& p : programs) CHECK(Run(cache, p).timing.cache == "miss");
  CHECK(Run(cache, programs[2]).timing.cache == "memory");
  CHECK(Run(cache, programs[0]).timing.cache == "miss");  // evicted first
}

}  // namespace
}  // namespace zerofarm::sandbox
