// RocksDb: owns the RocksDB instance and its column family handles; the one place where RocksDB
// options are chosen. Private to storage/. Thread-safe (RocksDB is); closes the database in the
// destructor, after which no handle may be used.
#pragma once

#include <rocksdb/db.h>

#include <memory>
#include <string>

#include "zerofarm/base/status.h"
#include "zerofarm/storage/store.h"

namespace zerofarm::storage {

inline constexpr const char* kMetaFamily = "meta";
inline constexpr const char* kChunksFamily = "chunks";

class RocksDb {
 public:
  // Creates options.dir when missing and opens (or creates) the database in it.
  static Result<std::unique_ptr<RocksDb>> Open(const Options& options);
  ~RocksDb();
  RocksDb(const RocksDb&) = delete;
  RocksDb& operator=(const RocksDb&) = delete;

  rocksdb::DB* db() const { return db_.get(); }
  rocksdb::ColumnFamilyHandle* meta() const { return meta_; }
  rocksdb::ColumnFamilyHandle* chunks() const { return chunks_; }

 private:
  RocksDb() = default;

  std::unique_ptr<rocksdb::DB> db_;
  rocksdb::ColumnFamilyHandle* default_ = nullptr;
  rocksdb::ColumnFamilyHandle* meta_ = nullptr;
  rocksdb::ColumnFamilyHandle* chunks_ = nullptr;
};

// Maps a RocksDB status to a store error code: not_found, corrupt, invalid_argument or
// io_error (everything else). `context` says what was being done.
Status FromRocks(const rocksdb::Status& status, const std::string& context);

}  // namespace zerofarm::storage
