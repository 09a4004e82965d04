#include "rocks_db.h"

#include <rocksdb/filter_policy.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/utilities/table_properties_collectors.h>

#include <system_error>
#include <vector>

namespace zerofarm::storage {
namespace {

// Database-wide options: a storage node shares its cores with transcoding, so background work is
// kept to two jobs; old WALs are bounded because the small meta family would otherwise keep
// every WAL alive until it flushes.
rocksdb::DBOptions DbOptions() {
  rocksdb::DBOptions o;
  o.create_if_missing = true;
  o.create_missing_column_families = true;
  o.paranoid_checks = true;
  o.max_background_jobs = 2;
  o.max_total_wal_size = 256 << 20;
  o.bytes_per_sync = 1 << 20;  // smooth SST/blob writeback instead of one burst per file
  o.keep_log_file_num = 4;
  o.max_log_file_size = 16 << 20;
  return o;
}

// Manifests and metadata records: small values read by point lookups and prefix scans.
rocksdb::ColumnFamilyOptions MetaOptions() {
  rocksdb::ColumnFamilyOptions o;
  o.write_buffer_size = 16 << 20;
  rocksdb::BlockBasedTableOptions table;
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  return o;
}

// Block data: large values of already-compressed video, so no compression anywhere. With blob
// files, values of at least min_blob_size go to blob files and compaction only rewrites the small
// keys; garbage collection reclaims blob files of deleted objects during compaction.
rocksdb::ColumnFamilyOptions ChunkOptions(bool blob_files) {
  rocksdb::ColumnFamilyOptions o;
  o.compression = rocksdb::kNoCompression;
  o.bottommost_compression = rocksdb::kNoCompression;
  o.write_buffer_size = 64 << 20;
  o.max_write_buffer_number = 3;
  o.target_file_size_base = 64 << 20;
  o.enable_blob_files = blob_files;
  o.min_blob_size = 64 << 10;  // small objects (playlists, manifests of jobs) stay in SSTs
  o.blob_file_size = 256 << 20;
  o.blob_compression_type = rocksdb::kNoCompression;
  o.enable_blob_garbage_collection = true;
  o.blob_garbage_collection_age_cutoff = 0.25;
  o.blob_garbage_collection_force_threshold = 0.5;  // compact when half of old blob files is dead
  o.blob_compaction_readahead_size = 2 << 20;
  // Job cleanup deletes chunks in bulk; files that are mostly tombstones are compacted soon, so
  // the space of deleted objects comes back without waiting for more writes.
  o.table_properties_collector_factories.push_back(
      rocksdb::NewCompactOnDeletionCollectorFactory(/*sliding_window_size=*/128,
                                                    /*deletion_trigger=*/32,
                                                    /*deletion_ratio=*/0.5));
  rocksdb::BlockBasedTableOptions table;
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  o.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  return o;
}

}  // namespace

Result<std::unique_ptr<RocksDb>> RocksDb::Open(const Options& options) {
  std::error_code ec;
  std::filesystem::create_directories(options.dir, ec);
  if (ec) {
    return Status::Error(ErrorCode::kIoError,
                         "create directory " + options.dir.string() + ": " + ec.message());
  }
  std::vector<rocksdb::ColumnFamilyDescriptor> families = {
      {rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions()},
      {kMetaFamily, MetaOptions()},
      {kChunksFamily, ChunkOptions(options.blob_files)},
  };
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s =
      rocksdb::DB::Open(DbOptions(), options.dir.string(), families, &handles, &raw);
  if (!s.ok()) return FromRocks(s, "open store in " + options.dir.string());

  std::unique_ptr<RocksDb> db(new RocksDb());
  db->db_.reset(raw);
  db->default_ = handles[0];
  db->meta_ = handles[1];
  db->chunks_ = handles[2];
  return db;
}

RocksDb::~RocksDb() {
  if (!db_) return;
  for (rocksdb::ColumnFamilyHandle* handle : {default_, meta_, chunks_}) {
    // Destroying a handle only fails for a null handle; there is nothing to do about it here.
    if (handle != nullptr) db_->DestroyColumnFamilyHandle(handle).PermitUncheckedError();
  }
  db_->Close().PermitUncheckedError();  // closing waits for background work; errors are moot
}

Status FromRocks(const rocksdb::Status& status, const std::string& context) {
  if (status.ok()) return Status::Ok();
  std::string message = context + ": " + status.ToString();
  if (status.IsNotFound()) return Status::Error(ErrorCode::kNotFound, message);
  if (status.IsCorruption()) return Status::Error(ErrorCode::kCorrupt, message);
  if (status.IsInvalidArgument() || status.IsNotSupported()) {
    return Status::Error(ErrorCode::kInvalidArgument, message);
  }
  return Status::Error(ErrorCode::kIoError, message);
}

}  // namespace zerofarm::storage
