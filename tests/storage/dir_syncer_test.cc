// DirSyncer (storage/src/dir_syncer.h): the background directory fsyncs a block file's commit
// waits for.
#include "dir_syncer.h"

#include <catch2/catch.hpp>
#include <filesystem>
#include <future>
#include <string>
#include <vector>

#include "store_test_support.h"

namespace zerofarm::storage {
namespace {

namespace fs = std::filesystem;

using testing::TempDir;

TEST_CASE("directory syncs requested together all complete and a missing one fails by name",
          "[storage]") {
  TempDir dir;
  const fs::path a = dir.path() / "a";
  const fs::path b = dir.path() / "b";
  fs::create_directories(a);
  fs::create_directories(b);
  DirSyncer syncer;
  std::vector<std::future<Status>> synced;
  for (int i = 0; i < 20; ++i) synced.push_back(syncer.Sync(i % 3 == 0 ? b : a));
  std::future<Status> missing = syncer.Sync(dir.path() / "missing");
  for (std::future<Status>& done : synced) {
    Status s = done.get();
    INFO(s.ToString());
    CHECK(s.ok());
  }
  Status s = missing.get();
  CHECK(s.code() == ErrorCode::kIoError);
  CHECK(s.message().find("missing") != std::string::npos);
}

TEST_CASE("a directory syncer destroyed with syncs queued finishes them first", "[storage]") {
  TempDir dir;
  std::vector<std::future<Status>> synced;
  {
    DirSyncer syncer;
    for (int i = 0; i < 10; ++i) synced.push_back(syncer.Sync(dir.path()));
  }
  for (std::future<Status>& done : synced) {
    REQUIRE(done.wait_for(std::chrono::seconds(0)) == std::future_status::ready);
    CHECK(done.get().ok());
  }
}

}  // namespace
}  // namespace zerofarm::storage
