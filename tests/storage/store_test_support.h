// Shared setup for the storage tests: temporary store directories, deterministic bytes, and
// direct RocksDB access to the files of a closed Store (to inspect or damage what it wrote).
#pragma once

#include <rocksdb/db.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "scratch_dir.h"
#include "test_bytes.h"
#include "zerofarm/storage/store.h"

namespace zerofarm::storage::testing {

// A fresh directory under the system temp dir, removed with everything in it on destruction.
using TempDir = test::TempDir;

inline constexpr size_t kTestBlockSize = 64 << 10;

// Store options for tests: small blocks so objects span several, syncing on, every block in
// RocksDB (Options::block_files off), where the tests that inspect RocksDB look for them.
Options TestOptions(const TempDir& dir, bool blob_files = true);
// The same with block files on (the default layout): objects of a block or more in files.
Options FileTestOptions(const TempDir& dir);
// Opens a store and REQUIREs success.
std::unique_ptr<Store> OpenStore(const Options& options);
using zerofarm::test::TestBytes;  // deterministic bytes (tests/support/test_bytes.h)

// The RocksDB database of a closed Store, opened with every column family it has.
// With `blob_files`, values written (or recovered from the WAL) go to blob files as the store's
// own would. Closes the database on destruction.
class RawDb {
 public:
  RawDb(const std::filesystem::path& dir, bool blob_files);
  ~RawDb();
  RawDb(const RawDb&) = delete;
  RawDb& operator=(const RawDb&) = delete;

  rocksdb::DB* db() const { return db_.get(); }
  rocksdb::ColumnFamilyHandle* family(const std::string& name) const;
  // Every (key, value) of a column family, in key order.
  std::vector<std::pair<std::string, std::string>> Scan(const std::string& family) const;

 private:
  std::unique_ptr<rocksdb::DB> db_;
  std::map<std::string, rocksdb::ColumnFamilyHandle*> families_;
};

// Block keys in the chunks column family: 8-byte big-endian object id, 8-byte block index.
uint64_t BlockKeyObjectId(const std::string& key);
uint64_t BlockKeyIndex(const std::string& key);

// Number of *.blob files in a store directory.
size_t CountBlobFiles(const std::filesystem::path& dir);

// Paths of the block files under a store directory (DIR/blocks/<shard>/<id>), sorted.
std::vector<std::filesystem::path> BlockFiles(const std::filesystem::path& dir);

// Checks (Catch) that object `name`, written as `bytes`, has a damaged block 1 and nothing else
// found yet: a whole read is "corrupt" naming object and block, a range crossing into block 1
// is "corrupt" too, and block 0 still reads.
void CheckBlockOneCorrupt(Store& store, const std::string& name, const std::string& bytes);

}  // namespace zerofarm::storage::testing
