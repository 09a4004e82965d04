// Replacing, deleting and abandoning objects frees every block they had, checked by scanning the
// chunks column family underneath the store.
#include <catch2/catch.hpp>
#include <set>
#include <string>
#include <vector>

#include "store_test_support.h"

namespace zerofarm::storage {
namespace {

using testing::BlockKeyIndex;
using testing::BlockKeyObjectId;
using testing::kTestBlockSize;
using testing::OpenStore;
using testing::RawDb;
using testing::TempDir;
using testing::TestBytes;
using testing::TestOptions;

// Block keys left in the chunks column family of a closed store.
std::vector<std::string> BlockKeys(const Options& options) {
  RawDb raw(options.dir, options.blob_files);
  std::vector<std::string> keys;
  for (auto& [key, value] : raw.Scan("chunks")) keys.push_back(key);
  return keys;
}

TEST_CASE("overwriting an object replaces its bytes and frees the old blocks", "[storage]") {
  TempDir dir;
  Options options = TestOptions(dir, GENERATE(true, false));
  const std::string old_bytes = TestBytes(5 * kTestBlockSize + 3, 1);
  const std::string new_bytes = TestBytes(2 * kTestBlockSize + 9, 2);
  {
    std::unique_ptr<Store> store = OpenStore(options);
    REQUIRE(store->PutObject("obj", old_bytes).ok());
    SECTION("with PutObject") { REQUIRE(store->PutObject("obj", new_bytes).ok()); }
    SECTION("with a writer") {
      Result<std::unique_ptr<ObjectWriter>> writer = store->CreateObject("obj");
      REQUIRE(writer.ok());
      REQUIRE((*writer)->Append(new_bytes).ok());
      // Until the commit, readers see the old object.
      CHECK(store->GetObject("obj").value() == old_bytes);
      REQUIRE((*writer)->Commit().ok());
    }
    CHECK(store->GetObject("obj").value() == new_bytes);
    CHECK(store->Stat("obj").value().blocks == 3);
  }
  std::vector<std::string> keys = BlockKeys(options);
  REQUIRE(keys.size() == 3);
  std::set<uint64_t> ids;
  for (const std::string& key : keys) ids.insert(BlockKeyObjectId(key));
  CHECK(ids.size() == 1);
  CHECK(BlockKeyIndex(keys.back()) == 2);
}

TEST_CASE("deleting an object removes every one of its blocks", "[storage]") {
  TempDir dir;
  Options options = TestOptions(dir, GENERATE(true, false));
  {
    std::unique_ptr<Store> store = OpenStore(options);
    REQUIRE(store->PutObject("gone", TestBytes(4 * kTestBlockSize + 1, 1)).ok());
    REQUIRE(store->PutObject("kept", TestBytes(kTestBlockSize + 1, 2)).ok());
    REQUIRE(store->DeleteObject("gone").ok());
    CHECK(store->Stat("gone").status().code() == ErrorCode::kNotFound);
    CHECK(store->ListObjects("").value() == std::vector<std::string>{"kept"});
  }
  CHECK(BlockKeys(options).size() == 2);  // only "kept"'s
}

TEST_CASE("objects are listed and deleted by name prefix", "[storage]") {
  TempDir dir;
  Options options = TestOptions(dir);
  {
    std::unique_ptr<Store> store = OpenStore(options);
    for (const char* name : {"jobs/2/chunks/00001", "jobs/1/chunks/00002", "jobs/1/chunks/00001",
                             "jobs/1/source", "jobs/10/source"}) {
      REQUIRE(store->PutObject(name, TestBytes(kTestBlockSize + 100, 5)).ok());
    }
    CHECK(store->ListObjects("jobs/1/").value() ==
          std::vector<std::string>{"jobs/1/chunks/00001", "jobs/1/chunks/00002", "jobs/1/source"});
    CHECK(store->ListObjects("jobs/1").value().size() == 4);
    CHECK(store->ListObjects("").value().size() == 5);
    CHECK(store->ListObjects("none/").value().empty());

    CHECK(store->DeleteObjects("jobs/1/").value() == 3);
    CHECK(store->DeleteObjects("jobs/1/").value() == 0);
    CHECK(store->ListObjects("").value() ==
          std::vector<std::string>{"jobs/10/source", "jobs/2/chunks/00001"});
  }
  CHECK(BlockKeys(options).size() == 4);  // two objects of two blocks each
}

TEST_CASE("an abandoned writer leaves neither an object nor blocks behind", "[storage]") {
  TempDir dir;
  Options options = TestOptions(dir);
  {
    std::unique_ptr<Store> store = OpenStore(options);
    REQUIRE(store->PutObject("kept", "small").ok());
    {
      Result<std::unique_ptr<ObjectWriter>> writer = store->CreateObject("abandoned");
      REQUIRE(writer.ok());
      REQUIRE((*writer)->Append(TestBytes(3 * kTestBlockSize + 1, 1)).ok());
      CHECK(store->Stat("abandoned").status().code() == ErrorCode::kNotFound);
    }
    CHECK(store->Stat("abandoned").status().code() == ErrorCode::kNotFound);
    CHECK(store->ListObjects("").value() == std::vector<std::string>{"kept"});
  }
  CHECK(BlockKeys(options).size() == 1);
}

TEST_CASE("a reader opened before an overwrite keeps reading the object it opened", "[storage]") {
  TempDir dir;
  std::unique_ptr<Store> store = OpenStore(TestOptions(dir));
  const std::string old_bytes = TestBytes(3 * kTestBlockSize, 1);
  REQUIRE(store->PutObject("obj", old_bytes).ok());
  Result<std::unique_ptr<ObjectReader>> reader = store->OpenObject("obj");
  REQUIRE(reader.ok());

  SECTION("replaced") { REQUIRE(store->PutObject("obj", "new").ok()); }
  SECTION("deleted") { REQUIRE(store->DeleteObject("obj").ok()); }

  std::string buffer(old_bytes.size(), '\0');
  Result<size_t> n = (*reader)->Read(std::as_writable_bytes(std::span(buffer)));
  REQUIRE(n.ok());
  CHECK(buffer == old_bytes);
}

}  // namespace
}  // namespace zerofarm::storage
