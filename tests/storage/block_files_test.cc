// Objects of at least one full block keep their blocks in a file of their own under DIR/blocks:
// they read back whole and by range, damage to the file is "corrupt" naming the block, no file
// outlives its object (replaced, deleted, abandoned, never committed), open readers keep their
// bytes, and stores written with every block in RocksDB still read.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "store_test_support.h"

namespace zerofarm::storage {
namespace {

namespace fs = std::filesystem;

using testing::BlockFiles;
using testing::FileTestOptions;
using testing::kTestBlockSize;
using testing::OpenStore;
using testing::RawDb;
using testing::TempDir;
using testing::TestBytes;
using testing::TestOptions;

constexpr uint64_t kToTheEnd = std::numeric_limits<uint64_t>::max();

size_t ChunkCount(const Options& options) {
  RawDb raw(options.dir, options.blob_files);
  return raw.Scan("chunks").size();
}

std::string ReadAll(ObjectReader& reader) {
  std::string out;
  std::string buffer(10000, '\0');  // not a divisor of the block size: reads straddle blocks
  for (;;) {
    Result<size_t> n = reader.Read(std::as_writable_bytes(std::span(buffer)));
    INFO(n.status().ToString());
    REQUIRE(n.ok());
    if (*n == 0) break;
    out.append(buffer, 0, *n);
  }
  return out;
}

// Flips one byte of a file at `offset`.
void FlipByte(const fs::path& path, uint64_t offset) {
  std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
  REQUIRE(file);
  char byte = 0;
  file.seekg(static_cast<std::streamoff>(offset));
  REQUIRE(file.get(byte));
  file.seekp(static_cast<std::streamoff>(offset));
  REQUIRE(file.put(static_cast<char>(byte ^ 0x01)));
}

TEST_CASE("a multi-block object is stored in a block file and a small one inline", "[storage]") {
  TempDir dir;
  Options options = FileTestOptions(dir);
  const std::string big = TestBytes(3 * kTestBlockSize + 10, 1);
  const std::string exact = TestBytes(kTestBlockSize, 2);
  const std::string small = TestBytes(kTestBlockSize - 1, 3);
  {
    std::unique_ptr<Store> store = OpenStore(options);
    REQUIRE(store->PutObject("big", big).ok());
    REQUIRE(store->PutObject("exact", exact).ok());
    REQUIRE(store->PutObject("small", small).ok());
    CHECK(store->Stat("big").value().blocks == 4);
    CHECK(store->Stat("big").value().size == big.size());
    CHECK(store->ListObjects("").value() == std::vector<std::string>{"big", "exact", "small"});
  }
  // Two files holding exactly the objects' bytes; only the small object's block in RocksDB.
  std::vector<fs::path> files = BlockFiles(options.dir);
  REQUIRE(files.size() == 2);
  std::vector<uintmax_t> sizes = {fs::file_size(files[0]), fs::file_size(files[1])};
  std::sort(sizes.begin(), sizes.end());
  CHECK(sizes == std::vector<uintmax_t>{exact.size(), big.size()});
  CHECK(ChunkCount(options) == 1);

  std::unique_ptr<Store> store = OpenStore(options);
  CHECK(store->GetObject("big").value() == big);
  CHECK(store->GetObject("exact").value() == exact);
  CHECK(store->GetObject("small").value() == small);
  Result<std::unique_ptr<ObjectReader>> reader = store->OpenObject("big");
  REQUIRE(reader.ok());
  CHECK(ReadAll(**reader) == big);

  const uint64_t b = kTestBlockSize;
  for (uint64_t offset : {uint64_t{0}, uint64_t{1}, b - 1, b, b + 1, 2 * b - 1, 3 * b, 3 * b + 9}) {
    for (uint64_t length :
         {uint64_t{0}, uint64_t{1}, uint64_t{2}, b, b + 2, 2 * b + 1, kToTheEnd}) {
      CAPTURE(offset, length);
      Result<std::string> range = store->ReadRange("big", offset, length);
      INFO(range.status().ToString());
      REQUIRE(range.ok());
      CHECK(*range == big.substr(offset, length == kToTheEnd ? std::string::npos : length));
    }
  }
}

TEST_CASE("objects streamed into block files in pieces of any size read back exactly",
          "[storage]") {
  TempDir dir;
  Options options = FileTestOptions(dir);
  std::unique_ptr<Store> store = OpenStore(options);
  const size_t b = kTestBlockSize;
  int seed = 0;
  for (size_t size : {b - 1, b, b + 1, 3 * b, 3 * b + 17}) {
    for (size_t piece : {size_t{1000}, b - 1, b, b + 1, 3 * b + 5}) {
      CAPTURE(size, piece);
      const std::string bytes = TestBytes(size, ++seed);
      Result<std::unique_ptr<ObjectWriter>> writer = store->CreateObject("obj");
      REQUIRE(writer.ok());
      for (size_t at = 0; at < size; at += piece) {
        REQUIRE((*writer)->Append(std::string_view(bytes).substr(at, piece)).ok());
      }
      Status committed = (*writer)->Commit();
      INFO(committed.ToString());
      REQUIRE(committed.ok());
      CHECK(store->Stat("obj").value().blocks == (size + b - 1) / b);
      CHECK(store->GetObject("obj").value() == bytes);
      CHECK(BlockFiles(options.dir).size() == (size >= b ? 1 : 0));
    }
  }
}

TEST_CASE("the append that completes the first block writes it to the block file at once",
          "[storage]") {
  TempDir dir;
  Options options = FileTestOptions(dir);
  std::unique_ptr<Store> store = OpenStore(options);
  constexpr size_t b = kTestBlockSize;
  // A whole block handed over in one append; held bytes completed by part of an append; held
  // bytes completed exactly.
  const std::vector<size_t> pieces =
      GENERATE(values<std::vector<size_t>>({{b}, {b / 4, b / 2, b / 2 + 7}, {b - 1, 1}}));
  CAPTURE(pieces);
  size_t size = 0;
  for (size_t piece : pieces) size += piece;
  const std::string bytes = TestBytes(size, 7);

  Result<std::unique_ptr<ObjectWriter>> writer = store->CreateObject("obj");
  REQUIRE(writer.ok());
  size_t at = 0;
  for (size_t piece : pieces) {
    CHECK(BlockFiles(options.dir).empty());  // nothing is written before a block is full
    REQUIRE((*writer)->Append(std::string_view(bytes).substr(at, piece)).ok());
    at += piece;
  }
  // Before Commit, the first block is in the file already, and the object is not visible.
  std::vector<fs::path> files = BlockFiles(options.dir);
  REQUIRE(files.size() == 1);
  CHECK(fs::file_size(files[0]) == size);
  CHECK(store->Stat("obj").status().code() == ErrorCode::kNotFound);

  SECTION("committed") {
    REQUIRE((*writer)->Commit().ok());
    writer->reset();
    store.reset();
    store = OpenStore(options);
    CHECK(store->Stat("obj").value().blocks == (size + b - 1) / b);
    CHECK(store->GetObject("obj").value() == bytes);
    CHECK(BlockFiles(options.dir) == files);
  }
  SECTION("abandoned") {
    writer->reset();
    CHECK(BlockFiles(options.dir).empty());
    CHECK(store->Stat("obj").status().code() == ErrorCode::kNotFound);
  }
}

TEST_CASE("a flipped byte in a block file is reported as corrupt naming the object and block",
          "[storage]") {
  TempDir dir;
  Options options = FileTestOptions(dir);
  const std::string bytes = TestBytes(3 * kTestBlockSize + 10, 1);
  {
    std::unique_ptr<Store> store = OpenStore(options);
    REQUIRE(store->PutObject("jobs/7/chunks/00001", bytes).ok());
  }
  std::vector<fs::path> files = BlockFiles(options.dir);
  REQUIRE(files.size() == 1);
  SECTION("a flipped byte") { FlipByte(files[0], kTestBlockSize + 1234); }
  SECTION("a truncated file") {
    fs::resize_file(files[0], kTestBlockSize + 100);
    // Block 2 and 3 are short too; block 1 is the first the read meets.
  }

  std::unique_ptr<Store> store = OpenStore(options);
  testing::CheckBlockOneCorrupt(*store, "jobs/7/chunks/00001", bytes);

  // Rewriting the object repairs it and drops the damaged file.
  REQUIRE(store->PutObject("jobs/7/chunks/00001", bytes).ok());
  CHECK(store->GetObject("jobs/7/chunks/00001").value() == bytes);
  std::vector<fs::path> after = BlockFiles(options.dir);
  REQUIRE(after.size() == 1);
  CHECK(after[0] != files[0]);
}

TEST_CASE("a writer abandoned after writing full blocks leaves no block file", "[storage]") {
  TempDir dir;
  Options options = FileTestOptions(dir);
  std::unique_ptr<Store> store = OpenStore(options);
  REQUIRE(store->PutObject("kept", TestBytes(2 * kTestBlockSize, 1)).ok());
  {
    Result<std::unique_ptr<ObjectWriter>> writer = store->CreateObject("abandoned");
    REQUIRE(writer.ok());
    REQUIRE((*writer)->Append(TestBytes(3 * kTestBlockSize + 5, 2)).ok());
    CHECK(BlockFiles(options.dir).size() == 2);  // its full blocks are already in its file
  }
  CHECK(BlockFiles(options.dir).size() == 1);
  store.reset();
  store = OpenStore(options);
  CHECK(BlockFiles(options.dir).size() == 1);
  CHECK(store->Stat("abandoned").status().code() == ErrorCode::kNotFound);
  CHECK(store->GetObject("kept").value() == TestBytes(2 * kTestBlockSize, 1));
}

TEST_CASE("block files that no manifest names are removed at open", "[storage]") {
  TempDir dir;
  Options options = FileTestOptions(dir);
  const std::string bytes = TestBytes(2 * kTestBlockSize + 1, 1);
  {
    std::unique_ptr<Store> store = OpenStore(options);
    REQUIRE(store->PutObject("obj", bytes).ok());
  }
  std::vector<fs::path> live = BlockFiles(options.dir);
  REQUIRE(live.size() == 1);
  // A file left by a writer that died before its commit (id never committed), one with a name
  // that is no block file, and a stray directory.
  const fs::path blocks = options.dir / "blocks";
  std::ofstream(blocks / "00" / "0000000000ffff00") << "orphan bytes";
  std::ofstream(blocks / "ab" / "not-a-block-file") << "junk";
  fs::create_directories(blocks / "ab" / "0000000000abcdab");
  REQUIRE(BlockFiles(options.dir).size() == 3);

  std::unique_ptr<Store> store = OpenStore(options);
  CHECK(BlockFiles(options.dir) == live);
  CHECK(!fs::exists(blocks / "ab" / "0000000000abcdab"));
  CHECK(store->GetObject("obj").value() == bytes);
}

TEST_CASE("overwriting and deleting file-backed objects leaves no block file behind", "[storage]") {
  TempDir dir;
  Options options = FileTestOptions(dir);
  std::unique_ptr<Store> store = OpenStore(options);
  const std::string first = TestBytes(5 * kTestBlockSize + 3, 1);
  const std::string second = TestBytes(2 * kTestBlockSize + 9, 2);
  REQUIRE(store->PutObject("jobs/1/a", first).ok());
  REQUIRE(store->PutObject("jobs/1/b", first).ok());
  REQUIRE(store->PutObject("jobs/1/c", first).ok());
  REQUIRE(BlockFiles(options.dir).size() == 3);

  SECTION("overwritten by a file-backed object") {
    REQUIRE(store->PutObject("jobs/1/a", second).ok());
    CHECK(store->GetObject("jobs/1/a").value() == second);
    CHECK(BlockFiles(options.dir).size() == 3);
  }
  SECTION("overwritten by a small object") {
    REQUIRE(store->PutObject("jobs/1/a", "small").ok());
    CHECK(store->GetObject("jobs/1/a").value() == "small");
    CHECK(BlockFiles(options.dir).size() == 2);
  }
  SECTION("deleted") {
    REQUIRE(store->DeleteObject("jobs/1/a").ok());
    CHECK(store->Stat("jobs/1/a").status().code() == ErrorCode::kNotFound);
    CHECK(BlockFiles(options.dir).size() == 2);
  }
  SECTION("deleted by prefix") {
    CHECK(store->DeleteObjects("jobs/1/").value() == 3);
    CHECK(store->ListObjects("").value().empty());
    CHECK(BlockFiles(options.dir).empty());
  }
  store.reset();
  OpenStore(options);  // and nothing was left for the sweep to find wrong
}

TEST_CASE("a reader opened before a replace or delete reads the old bytes in full", "[storage]") {
  TempDir dir;
  Options options = FileTestOptions(dir);
  std::unique_ptr<Store> store = OpenStore(options);
  const std::string old_bytes = TestBytes(4 * kTestBlockSize + 7, 1);
  REQUIRE(store->PutObject("obj", old_bytes).ok());
  Result<std::unique_ptr<ObjectReader>> reader = store->OpenObject("obj");
  REQUIRE(reader.ok());
  // Part of the object is read before the change, the rest after.
  std::string head(kTestBlockSize + 5, '\0');
  REQUIRE((*reader)->Read(std::as_writable_bytes(std::span(head))).value() == head.size());

  SECTION("replaced") {
    REQUIRE(store->PutObject("obj", TestBytes(3 * kTestBlockSize, 2)).ok());
    CHECK(store->GetObject("obj").value() == TestBytes(3 * kTestBlockSize, 2));
  }
  SECTION("deleted") {
    REQUIRE(store->DeleteObject("obj").ok());
    CHECK(BlockFiles(options.dir).empty());
  }
  CHECK(head + ReadAll(**reader) == old_bytes);
  REQUIRE((*reader)->Seek(0).ok());
  CHECK(ReadAll(**reader) == old_bytes);
}

TEST_CASE("a store written with every block in RocksDB still reads with block files on",
          "[storage]") {
  TempDir dir;
  Options inline_options = TestOptions(dir);  // block_files off: the layout before block files
  const std::string old_big = TestBytes(3 * kTestBlockSize + 10, 1);
  const std::string old_small = TestBytes(100, 2);
  {
    std::unique_ptr<Store> store = OpenStore(inline_options);
    REQUIRE(store->PutObject("old/big", old_big).ok());
    REQUIRE(store->PutObject("old/small", old_small).ok());
  }
  REQUIRE(BlockFiles(inline_options.dir).empty());
  REQUIRE(ChunkCount(inline_options) == 5);

  Options options = inline_options;
  options.block_files = true;
  const std::string new_big = TestBytes(2 * kTestBlockSize + 3, 3);
  {
    std::unique_ptr<Store> store = OpenStore(options);
    CHECK(store->GetObject("old/big").value() == old_big);
    CHECK(store->GetObject("old/small").value() == old_small);
    CHECK(store->ReadRange("old/big", kTestBlockSize - 1, 2).value() ==
          old_big.substr(kTestBlockSize - 1, 2));
    REQUIRE(store->PutObject("new/big", new_big).ok());
    // Replacing an object of the old layout with a file-backed one frees its blocks.
    REQUIRE(store->PutObject("old/big", new_big).ok());
    CHECK(store->GetObject("old/big").value() == new_big);
  }
  CHECK(ChunkCount(options) == 1);
  CHECK(BlockFiles(options.dir).size() == 2);
  // And back: a store opened with block files off still reads file-backed objects.
  std::unique_ptr<Store> store = OpenStore(inline_options);
  CHECK(store->GetObject("new/big").value() == new_big);
  CHECK(store->GetObject("old/big").value() == new_big);
  CHECK(store->GetObject("old/small").value() == old_small);
}

}  // namespace
}  // namespace zerofarm::storage
