// Metadata records: synced single-key writes, point reads and sorted prefix listings.
#include <catch2/catch.hpp>
#include <string>
#include <utility>
#include <vector>

#include "store_test_support.h"

namespace zerofarm::storage {
namespace {

using testing::OpenStore;
using testing::TempDir;
using testing::TestOptions;

using Records = std::vector<std::pair<std::string, std::string>>;

TEST_CASE("metadata records read back as written and survive a reopen", "[storage]") {
  TempDir dir;
  Options options = TestOptions(dir);
  const std::string binary("a\0b\xff", 4);
  {
    std::unique_ptr<Store> store = OpenStore(options);
    REQUIRE(store->PutMeta("jobs/1", "queued").ok());
    REQUIRE(store->PutMeta("jobs/1", "running").ok());  // overwrite
    REQUIRE(store->PutMeta("empty", "").ok());
    REQUIRE(store->PutMeta("binary", binary).ok());
  }
  std::unique_ptr<Store> store = OpenStore(options);
  CHECK(store->GetMeta("jobs/1").value() == std::optional<std::string>("running"));
  CHECK(store->GetMeta("empty").value() == std::optional<std::string>(""));
  CHECK(store->GetMeta("binary").value() == std::optional<std::string>(binary));

  Result<std::optional<std::string>> missing = store->GetMeta("jobs/2");
  REQUIRE(missing.ok());
  CHECK_FALSE(missing->has_value());

  REQUIRE(store->DeleteMeta("jobs/1").ok());
  CHECK_FALSE(store->GetMeta("jobs/1").value().has_value());
  CHECK(store->DeleteMeta("jobs/1").ok());  // deleting a missing record is fine
}

TEST_CASE("metadata records are listed by prefix in key order", "[storage]") {
  TempDir dir;
  std::unique_ptr<Store> store = OpenStore(TestOptions(dir));
  for (const char* key :
       {"tasks/b/2", "tasks/a/1", "tasks/a/10", "tasks/a/2", "tasksx", "jobs/1"}) {
    REQUIRE(store->PutMeta(key, std::string("v:") + key).ok());
  }
  CHECK(store->ListMeta("tasks/a/").value() == Records{{"tasks/a/1", "v:tasks/a/1"},
                                                       {"tasks/a/10", "v:tasks/a/10"},
                                                       {"tasks/a/2", "v:tasks/a/2"}});
  CHECK(store->ListMeta("tasks/").value().size() == 4);
  CHECK(store->ListMeta("tasks").value().size() == 5);
  CHECK(store->ListMeta("").value().size() == 6);
  CHECK(store->ListMeta("nothing/").value().empty());
}

TEST_CASE("metadata keys and object names do not collide", "[storage]") {
  TempDir dir;
  std::unique_ptr<Store> store = OpenStore(TestOptions(dir));
  REQUIRE(store->PutMeta("x", "meta").ok());
  REQUIRE(store->PutObject("x", "object").ok());
  CHECK(store->GetMeta("x").value() == std::optional<std::string>("meta"));
  CHECK(store->GetObject("x").value() == "object");
  CHECK(store->ListMeta("").value() == Records{{"x", "meta"}});
  CHECK(store->ListObjects("").value() == std::vector<std::string>{"x"});
  REQUIRE(store->DeleteObject("x").ok());
  CHECK(store->GetMeta("x").value() == std::optional<std::string>("meta"));
}

}  // namespace
}  // namespace zerofarm::storage
