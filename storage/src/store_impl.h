// StoreImpl: the Store on RocksDB and block files, and the block and manifest operations its
// writers and readers share. Private to storage/. Thread-safe: RocksDB serializes writes; a
// striped mutex per object name makes "read the old manifest, replace it, unlink its block file"
// atomic; one mutex guards id allocation.
#pragma once

#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <array>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "dir_syncer.h"
#include "manifest.h"
#include "rocks_db.h"
#include "zerofarm/storage/store.h"

namespace zerofarm::storage {

class StoreImpl final : public Store {
 public:
  // Takes over an open database: removes the blocks of writers that never committed and the
  // block files no manifest names, then loads the id counter.
  static Result<std::unique_ptr<StoreImpl>> Create(std::unique_ptr<RocksDb> db,
                                                   const Options& options);

  Result<std::unique_ptr<ObjectWriter>> CreateObject(std::string_view name) override;
  Result<std::unique_ptr<ObjectReader>> OpenObject(std::string_view name) override;
  Result<ObjectInfo> Stat(std::string_view name) override;
  Status PutObject(std::string_view name, std::string_view bytes) override;
  Result<std::string> GetObject(std::string_view name) override;
  Result<std::string> ReadRange(std::string_view name, uint64_t offset, uint64_t length) override;
  Status DeleteObject(std::string_view name) override;
  Result<std::vector<std::string>> ListObjects(std::string_view prefix) override;
  Result<size_t> DeleteObjects(std::string_view prefix) override;

  Status PutMeta(std::string_view key, std::string_view value) override;
  Result<std::optional<std::string>> GetMeta(std::string_view key) override;
  Status DeleteMeta(std::string_view key) override;
  Result<std::vector<std::pair<std::string, std::string>>> ListMeta(
      std::string_view prefix) override;
  StoreMemory Memory() override;

  // --- Shared with ObjectWriterImpl and ObjectReaderImpl. ---

  // Writes (synced) block `index` of uncommitted object `id`. A non-empty `pending_name` adds the
  // object's pending marker to the same batch: the first block of an object must carry it, so
  // that no block is ever on disk without a marker for Open to find after a crash.
  Status WriteBlock(uint64_t id, uint64_t index, std::span<const std::byte> bytes,
                    std::string_view pending_name);
  // In one synced batch: the last block (when not empty), the manifest under `name`, the removal
  // of the pending marker (when `pending`) and of the blocks of the object it replaces. Then,
  // when the replaced object had a block file, unlinks it (a failure leaves an orphan for Open).
  // A file-backed `manifest` requires its block file to be synced already.
  Status CommitObject(std::string_view name, const Manifest& manifest,
                      std::span<const std::byte> last_block, bool pending);
  // Drops every block of uncommitted object `id` and its pending marker. Best effort and not
  // synced: if it is lost, the next Open does the same from the marker.
  void AbandonObject(uint64_t id);
  // Reads block `index` of `manifest` at `snapshot` (null: latest) into `out` without its
  // checksum trailer, after checking its length and checksum ("corrupt" names object and block).
  Status ReadBlock(std::string_view name, const Manifest& manifest, uint64_t index,
                   const rocksdb::Snapshot* snapshot, rocksdb::PinnableSlice* out);

  // Whether objects of at least one full block are written to block files (Options).
  bool block_files() const { return options_.block_files; }
  bool sync() const { return options_.sync; }
  const std::filesystem::path& blocks_dir() const { return blocks_dir_; }
  // Starts the fsync of block file `id`'s shard directory, which must follow the file's
  // creation, so that it runs while the file is written and synced. Only with sync().
  std::future<Status> SyncShardLater(uint64_t id);

 private:
  StoreImpl(std::unique_ptr<RocksDb> db, const Options& options);

  Status RemovePendingObjects();
  Status RemoveOrphanFiles();
  Status LoadIdCounter();
  Result<uint64_t> AllocateId();
  Result<std::optional<Manifest>> ReadManifest(std::string_view name,
                                               const rocksdb::Snapshot* snapshot);
  // Deletes the object under its name lock with `write`; sets *existed, and *file_id to the id
  // of its block file, which the caller unlinks once the deletion is synced.
  Status DeleteObjectLocked(std::string_view name, const rocksdb::WriteOptions& write,
                            bool* existed, std::optional<uint64_t>* file_id);
  // Unlinks a block file whose manifest is gone; a failure leaves an orphan for the next Open.
  void UnlinkBlockFile(uint64_t id);
  std::mutex& NameLock(std::string_view name);
  Status Write(rocksdb::WriteBatch* batch, const std::string& context);
  Status Write(rocksdb::WriteBatch* batch, const rocksdb::WriteOptions& write,
               const std::string& context);
  Status PutBlock(rocksdb::WriteBatch* batch, uint64_t id, uint64_t index,
                  std::span<const std::byte> bytes);
  void DeleteBlocks(rocksdb::WriteBatch* batch, const Manifest& manifest);

  std::unique_ptr<RocksDb> db_;
  const Options options_;
  const std::filesystem::path blocks_dir_;
  rocksdb::WriteOptions write_options_;

  std::mutex id_mu_;
  uint64_t next_id_ = 1;   // guarded by id_mu_
  uint64_t id_limit_ = 1;  // ids below this are leased (persisted); guarded by id_mu_

  std::array<std::mutex, 64> name_locks_;

  std::unique_ptr<DirSyncer> dir_syncer_;  // with sync and block files
};

}  // namespace zerofarm::storage
