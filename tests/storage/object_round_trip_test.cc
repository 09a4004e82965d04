// Objects read back exactly as written: whole, streamed and by range, at every block edge.
#include <catch2/catch.hpp>
#include <limits>
#include <string>

#include "store_test_support.h"

namespace zerofarm::storage {
namespace {

using testing::kTestBlockSize;
using testing::OpenStore;
using testing::TempDir;
using testing::TestBytes;
using testing::TestOptions;

constexpr uint64_t kToTheEnd = std::numeric_limits<uint64_t>::max();

// Reads a whole object through an ObjectReader with a buffer of `buffer_size` bytes.
std::string StreamAll(Store& store, const std::string& name, size_t buffer_size) {
  Result<std::unique_ptr<ObjectReader>> reader = store.OpenObject(name);
  INFO(reader.status().ToString());
  REQUIRE(reader.ok());
  std::string out;
  std::string buffer(buffer_size, '\0');
  for (;;) {
    Result<size_t> n = (*reader)->Read(std::as_writable_bytes(std::span(buffer)));
    INFO(n.status().ToString());
    REQUIRE(n.ok());
    if (*n == 0) break;
    out.append(buffer, 0, *n);
  }
  return out;
}

// Writes `bytes` through an ObjectWriter in pieces of `piece` bytes.
void WriteInPieces(Store& store, const std::string& name, const std::string& bytes, size_t piece) {
  Result<std::unique_ptr<ObjectWriter>> writer = store.CreateObject(name);
  REQUIRE(writer.ok());
  for (size_t at = 0; at < bytes.size(); at += piece) {
    REQUIRE((*writer)->Append(std::string_view(bytes).substr(at, piece)).ok());
  }
  REQUIRE((*writer)->size() == bytes.size());
  Status committed = (*writer)->Commit();
  INFO(committed.ToString());
  REQUIRE(committed.ok());
}

TEST_CASE("an object reads back exactly as written whatever its size", "[storage]") {
  const bool blob_files = GENERATE(true, false);
  const size_t size =
      GENERATE(size_t{0}, size_t{1}, size_t{1000}, kTestBlockSize - 1, kTestBlockSize,
               kTestBlockSize + 1, 3 * kTestBlockSize, 3 * kTestBlockSize + 17);
  CAPTURE(blob_files, size);
  TempDir dir;
  Options options = TestOptions(dir, blob_files);
  const std::string bytes = TestBytes(size, size);
  const uint64_t blocks = (size + kTestBlockSize - 1) / kTestBlockSize;

  {
    std::unique_ptr<Store> store = OpenStore(options);
    SECTION("written in one call") { REQUIRE(store->PutObject("obj", bytes).ok()); }
    SECTION("streamed in pieces that straddle blocks") {
      WriteInPieces(*store, "obj", bytes, 10007);
    }
    SECTION("streamed in pieces of exactly one block") {
      WriteInPieces(*store, "obj", bytes, kTestBlockSize);
    }
    SECTION("streamed in one append larger than a block") {
      WriteInPieces(*store, "obj", bytes, bytes.size() + 1);
    }

    Result<ObjectInfo> info = store->Stat("obj");
    REQUIRE(info.ok());
    CHECK(info->size == size);
    CHECK(info->blocks == blocks);
    Result<std::string> read = store->GetObject("obj");
    REQUIRE(read.ok());
    CHECK(*read == bytes);
  }
  // Reopening replays the WAL into blob files or SSTs; the bytes must not change.
  std::unique_ptr<Store> store = OpenStore(options);
  Result<std::string> read = store->GetObject("obj");
  REQUIRE(read.ok());
  CHECK(*read == bytes);
  CHECK(StreamAll(*store, "obj", 7777) == bytes);
  CHECK(StreamAll(*store, "obj", kTestBlockSize) == bytes);
  CHECK(StreamAll(*store, "obj", 3 * kTestBlockSize + 5) == bytes);
}

TEST_CASE("range reads return the right bytes at block edges", "[storage]") {
  TempDir dir;
  std::unique_ptr<Store> store = OpenStore(TestOptions(dir));
  const std::string bytes = TestBytes(3 * kTestBlockSize + 10, 7);
  REQUIRE(store->PutObject("obj", bytes).ok());

  const uint64_t b = kTestBlockSize;
  const uint64_t offset = GENERATE_COPY(uint64_t{0}, uint64_t{1}, b - 1, b, b + 1, 2 * b - 1, 3 * b,
                                        bytes.size() - 1, bytes.size());
  const uint64_t length =
      GENERATE_COPY(uint64_t{0}, uint64_t{1}, uint64_t{2}, b, b + 2, 2 * b + 1, kToTheEnd);
  CAPTURE(offset, length);
  Result<std::string> range = store->ReadRange("obj", offset, length);
  INFO(range.status().ToString());
  REQUIRE(range.ok());
  CHECK(*range == bytes.substr(offset, length));
}

TEST_CASE("a range starting past the end of an object is refused", "[storage]") {
  TempDir dir;
  std::unique_ptr<Store> store = OpenStore(TestOptions(dir));
  REQUIRE(store->PutObject("obj", "0123456789").ok());
  Result<std::string> range = store->ReadRange("obj", 11, 1);
  REQUIRE_FALSE(range.ok());
  CHECK(range.status().code() == ErrorCode::kInvalidArgument);
  Result<std::string> at_end = store->ReadRange("obj", 10, 5);
  REQUIRE(at_end.ok());
  CHECK(at_end->empty());
}

TEST_CASE("a reader seeks anywhere in an object and streams from there", "[storage]") {
  TempDir dir;
  std::unique_ptr<Store> store = OpenStore(TestOptions(dir));
  const std::string bytes = TestBytes(2 * kTestBlockSize + 300, 11);
  REQUIRE(store->PutObject("obj", bytes).ok());
  Result<std::unique_ptr<ObjectReader>> reader = store->OpenObject("obj");
  REQUIRE(reader.ok());
  ObjectReader& r = **reader;
  CHECK(r.size() == bytes.size());

  for (uint64_t offset : {uint64_t{kTestBlockSize - 3}, uint64_t{5}, uint64_t{2 * kTestBlockSize},
                          uint64_t{bytes.size() - 1}}) {
    CAPTURE(offset);
    REQUIRE(r.Seek(offset).ok());
    std::string buffer(kTestBlockSize, '\0');
    Result<size_t> n = r.Read(std::as_writable_bytes(std::span(buffer)));
    REQUIRE(n.ok());
    CHECK(buffer.substr(0, *n) == bytes.substr(offset, kTestBlockSize));
  }
  REQUIRE(r.Seek(bytes.size()).ok());
  std::string buffer(16, '\0');
  Result<size_t> n = r.Read(std::as_writable_bytes(std::span(buffer)));
  REQUIRE(n.ok());
  CHECK(*n == 0);

  Status past_end = r.Seek(bytes.size() + 1);
  CHECK(past_end.code() == ErrorCode::kInvalidArgument);
}

TEST_CASE("a missing object is reported as not_found and deleting it is fine", "[storage]") {
  TempDir dir;
  std::unique_ptr<Store> store = OpenStore(TestOptions(dir));
  CHECK(store->Stat("nope").status().code() == ErrorCode::kNotFound);
  CHECK(store->GetObject("nope").status().code() == ErrorCode::kNotFound);
  CHECK(store->OpenObject("nope").status().code() == ErrorCode::kNotFound);
  CHECK(store->ReadRange("nope", 0, 1).status().code() == ErrorCode::kNotFound);
  CHECK(store->DeleteObject("nope").ok());
}

TEST_CASE("invalid names and options are refused with invalid_argument", "[storage]") {
  TempDir dir;
  Options options = TestOptions(dir);
  SECTION("a zero block size") {
    options.block_size = 0;
    CHECK(Store::Open(options).status().code() == ErrorCode::kInvalidArgument);
  }
  SECTION("an empty directory") {
    options.dir.clear();
    CHECK(Store::Open(options).status().code() == ErrorCode::kInvalidArgument);
  }
  SECTION("empty and oversized object names") {
    std::unique_ptr<Store> store = OpenStore(options);
    CHECK(store->PutObject("", "x").code() == ErrorCode::kInvalidArgument);
    CHECK(store->CreateObject("").status().code() == ErrorCode::kInvalidArgument);
    CHECK(store->PutObject(std::string(5000, 'n'), "x").code() == ErrorCode::kInvalidArgument);
    CHECK(store->PutMeta("", "x").code() == ErrorCode::kInvalidArgument);
  }
}

TEST_CASE("a writer refuses to append or commit again after its commit", "[storage]") {
  TempDir dir;
  std::unique_ptr<Store> store = OpenStore(TestOptions(dir));
  Result<std::unique_ptr<ObjectWriter>> writer = store->CreateObject("obj");
  REQUIRE(writer.ok());
  REQUIRE((*writer)->Append("abc").ok());
  REQUIRE((*writer)->Commit().ok());
  CHECK((*writer)->Append("more").code() == ErrorCode::kInvalidArgument);
  CHECK((*writer)->Commit().code() == ErrorCode::kInvalidArgument);
  writer->reset();  // destroying a committed writer must not abandon the object
  Result<std::string> read = store->GetObject("obj");
  REQUIRE(read.ok());
  CHECK(*read == "abc");
}

TEST_CASE("objects written after a reopen never collide with earlier ones", "[storage]") {
  TempDir dir;
  Options options = TestOptions(dir);
  const std::string first = TestBytes(2 * kTestBlockSize + 1, 1);
  const std::string second = TestBytes(2 * kTestBlockSize + 2, 2);
  {
    std::unique_ptr<Store> store = OpenStore(options);
    REQUIRE(store->PutObject("first", first).ok());
  }
  {
    std::unique_ptr<Store> store = OpenStore(options);
    REQUIRE(store->PutObject("second", second).ok());
  }
  std::unique_ptr<Store> store = OpenStore(options);
  CHECK(store->GetObject("first").value() == first);
  CHECK(store->GetObject("second").value() == second);
}

TEST_CASE("full blocks go to blob files exactly when blob files are on", "[storage]") {
  const bool blob_files = GENERATE(true, false);
  CAPTURE(blob_files);
  TempDir dir;
  Options options = TestOptions(dir, blob_files);
  const std::string bytes = TestBytes(4 * kTestBlockSize, 3);
  {
    std::unique_ptr<Store> store = OpenStore(options);
    REQUIRE(store->PutObject("obj", bytes).ok());
  }
  std::unique_ptr<Store> store = OpenStore(options);  // the WAL is flushed at recovery
  CHECK((testing::CountBlobFiles(options.dir) > 0) == blob_files);
  CHECK(store->GetObject("obj").value() == bytes);
}

}  // namespace
}  // namespace zerofarm::storage
