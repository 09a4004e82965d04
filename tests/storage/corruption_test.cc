// Damage done to stored blocks underneath the store is reported as "corrupt", naming the object
// and the block, while undamaged blocks stay readable.
#include <catch2/catch.hpp>
#include <string>

#include "store_test_support.h"

namespace zerofarm::storage {
namespace {

using testing::BlockKeyIndex;
using testing::kTestBlockSize;
using testing::OpenStore;
using testing::RawDb;
using testing::TempDir;
using testing::TestBytes;
using testing::TestOptions;

TEST_CASE("damage to a stored block is reported as corrupt naming the object and block",
          "[storage]") {
  const bool blob_files = GENERATE(true, false);
  CAPTURE(blob_files);
  TempDir dir;
  Options options = TestOptions(dir, blob_files);
  const std::string bytes = TestBytes(3 * kTestBlockSize + 10, 1);
  {
    std::unique_ptr<Store> store = OpenStore(options);
    REQUIRE(store->PutObject("jobs/7/chunks/00001", bytes).ok());
  }
  {
    RawDb raw(options.dir, blob_files);
    rocksdb::ColumnFamilyHandle* chunks = raw.family("chunks");
    bool damaged = false;
    for (auto& [key, value] : raw.Scan("chunks")) {
      if (BlockKeyIndex(key) != 1) continue;
      REQUIRE(value.size() == kTestBlockSize + 8);
      rocksdb::Status s;
      SECTION("a flipped byte in the data") {
        value[1234] = static_cast<char>(value[1234] ^ 0x01);
        s = raw.db()->Put(rocksdb::WriteOptions(), chunks, key, value);
      }
      SECTION("a flipped byte in the checksum") {
        value[value.size() - 1] = static_cast<char>(value.back() ^ 0x80);
        s = raw.db()->Put(rocksdb::WriteOptions(), chunks, key, value);
      }
      SECTION("a truncated block") {
        s = raw.db()->Put(rocksdb::WriteOptions(), chunks, key, value.substr(0, 100));
      }
      SECTION("a missing block") { s = raw.db()->Delete(rocksdb::WriteOptions(), chunks, key); }
      REQUIRE(s.ok());
      damaged = true;
    }
    REQUIRE(damaged);
  }

  std::unique_ptr<Store> store = OpenStore(options);
  testing::CheckBlockOneCorrupt(*store, "jobs/7/chunks/00001", bytes);
  CHECK(store->ReadRange("jobs/7/chunks/00001", 2 * kTestBlockSize, 100).value() ==
        bytes.substr(2 * kTestBlockSize, 100));

  // A streaming reader hands out block 0, then reports the damage.
  Result<std::unique_ptr<ObjectReader>> reader = store->OpenObject("jobs/7/chunks/00001");
  REQUIRE(reader.ok());
  std::string buffer(bytes.size(), '\0');
  Result<size_t> first = (*reader)->Read(std::as_writable_bytes(std::span(buffer)));
  REQUIRE(first.ok());
  CHECK(*first == kTestBlockSize);
  CHECK(buffer.substr(0, kTestBlockSize) == bytes.substr(0, kTestBlockSize));
  Result<size_t> second = (*reader)->Read(std::as_writable_bytes(std::span(buffer)));
  CHECK(second.status().code() == ErrorCode::kCorrupt);
}

TEST_CASE("an object with a damaged manifest is reported and can be deleted or rewritten",
          "[storage]") {
  TempDir dir;
  Options options = TestOptions(dir);
  {
    std::unique_ptr<Store> store = OpenStore(options);
    REQUIRE(store->PutObject("obj", TestBytes(kTestBlockSize + 1, 1)).ok());
  }
  {
    RawDb raw(options.dir, options.blob_files);
    REQUIRE(raw.db()->Put(rocksdb::WriteOptions(), raw.family("meta"), "o/obj", "garbage").ok());
  }
  std::unique_ptr<Store> store = OpenStore(options);
  CHECK(store->Stat("obj").status().code() == ErrorCode::kCorrupt);
  CHECK(store->GetObject("obj").status().code() == ErrorCode::kCorrupt);
  SECTION("rewritten") {
    REQUIRE(store->PutObject("obj", "repaired").ok());
    CHECK(store->GetObject("obj").value() == "repaired");
  }
  SECTION("deleted") {
    REQUIRE(store->DeleteObject("obj").ok());
    CHECK(store->Stat("obj").status().code() == ErrorCode::kNotFound);
  }
}

}  // namespace
}  // namespace zerofarm::storage
