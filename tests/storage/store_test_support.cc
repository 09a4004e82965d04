#include "store_test_support.h"

#include <stdlib.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <system_error>

namespace zerofarm::storage::testing {
namespace {

uint64_t BigEndian64(const std::string& bytes, size_t at) {
  uint64_t value = 0;
  for (size_t i = at; i < at + 8; ++i) value = (value << 8) | static_cast<unsigned char>(bytes[i]);
  return value;
}

}  // namespace

Options TestOptions(const TempDir& dir, bool blob_files) {
  Options options;
  options.dir = dir.path() / "store";
  options.block_size = kTestBlockSize;
  options.sync = true;
  options.blob_files = blob_files;
  options.block_files = false;
  return options;
}

Options FileTestOptions(const TempDir& dir) {
  Options options = TestOptions(dir);
  options.block_files = true;
  return options;
}

std::unique_ptr<Store> OpenStore(const Options& options) {
  Result<std::unique_ptr<Store>> store = Store::Open(options);
  INFO(store.status().ToString());
  REQUIRE(store.ok());
  return std::move(*store);
}

RawDb::RawDb(const std::filesystem::path& dir, bool blob_files) {
  std::vector<std::string> names;
  rocksdb::Status s = rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), dir.string(), &names);
  INFO(s.ToString());
  REQUIRE(s.ok());
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (const std::string& name : names) {
    rocksdb::ColumnFamilyOptions options;
    options.enable_blob_files = blob_files;
    descriptors.emplace_back(name, options);
  }
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  s = rocksdb::DB::Open(rocksdb::DBOptions(), dir.string(), descriptors, &handles, &raw);
  INFO(s.ToString());
  REQUIRE(s.ok());
  db_.reset(raw);
  for (size_t i = 0; i < names.size(); ++i) families_[names[i]] = handles[i];
}

RawDb::~RawDb() {
  for (auto& [name, handle] : families_)
    db_->DestroyColumnFamilyHandle(handle).PermitUncheckedError();
  db_->Close().PermitUncheckedError();
}

rocksdb::ColumnFamilyHandle* RawDb::family(const std::string& name) const {
  auto it = families_.find(name);
  REQUIRE(it != families_.end());
  return it->second;
}

std::vector<std::pair<std::string, std::string>> RawDb::Scan(const std::string& name) const {
  std::vector<std::pair<std::string, std::string>> out;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), family(name)));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    out.emplace_back(it->key().ToString(), it->value().ToString());
  }
  REQUIRE(it->status().ok());
  return out;
}

uint64_t BlockKeyObjectId(const std::string& key) {
  REQUIRE(key.size() == 16);
  return BigEndian64(key, 0);
}

uint64_t BlockKeyIndex(const std::string& key) {
  REQUIRE(key.size() == 16);
  return BigEndian64(key, 8);
}

size_t CountBlobFiles(const std::filesystem::path& dir) {
  size_t count = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() == ".blob") ++count;
  }
  return count;
}

}  // namespace zerofarm::storage::testing

namespace zerofarm::storage::testing {

std::vector<std::filesystem::path> BlockFiles(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> files;
  const std::filesystem::path blocks = dir / "blocks";
  if (!std::filesystem::exists(blocks)) return files;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(blocks)) {
    if (entry.is_regular_file()) files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

void CheckBlockOneCorrupt(Store& store, const std::string& name, const std::string& bytes) {
  Result<std::string> whole = store.GetObject(name);
  REQUIRE_FALSE(whole.ok());
  CHECK(whole.status().code() == ErrorCode::kCorrupt);
  CHECK_THAT(whole.status().message(), Catch::Contains(name) && Catch::Contains("block 1"));
  // A range that crosses into the damaged block fails; ranges before it still read.
  CHECK(store.ReadRange(name, kTestBlockSize - 5, 10).status().code() == ErrorCode::kCorrupt);
  CHECK(store.ReadRange(name, 0, kTestBlockSize).value() == bytes.substr(0, kTestBlockSize));
}

}  // namespace zerofarm::storage::testing
