#include "store_impl.h"

#include <rocksdb/iterator.h>
#include <rocksdb/snapshot.h>

#include <functional>
#include <limits>
#include <unordered_set>
#include <utility>

#include "block.h"
#include "block_file.h"
#include "keys.h"
#include "object_reader.h"
#include "object_writer.h"
#include "read_range.h"

namespace zerofarm::storage {
namespace {

// Limits on caller input, checked before anything is written.
constexpr size_t kMaxNameBytes = 4096;           // object names and metadata keys
constexpr size_t kMaxMetaValueBytes = 16 << 20;  // metadata records are small by contract
constexpr uint64_t kIdLease = 1024;              // ids persisted per counter write

std::string_view View(const rocksdb::Slice& slice) { return {slice.data(), slice.size()}; }

Status CheckName(std::string_view name, const char* what) {
  if (name.empty())
    return Status::Error(ErrorCode::kInvalidArgument, std::string(what) + " is empty");
  if (name.size() > kMaxNameBytes) {
    return Status::Error(ErrorCode::kInvalidArgument,
                         std::string(what) + " is " + std::to_string(name.size()) +
                             " bytes, limit " + std::to_string(kMaxNameBytes));
  }
  return Status::Ok();
}

std::string Quoted(std::string_view name) {
  std::string out;  // appended piecewise: "'" + std::string trips GCC 12's -Wrestrict at -O3
  out.reserve(name.size() + 2);
  out.append("'").append(name).append("'");
  return out;
}

// Calls visit(key, value) for every key of `family` that starts with `prefix`, in key order.
template <class Visit>
Status ScanPrefix(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* family, const std::string& prefix,
                  Visit visit) {
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions(), family));
  for (it->Seek(prefix); it->Valid() && View(it->key()).starts_with(prefix); it->Next()) {
    ZF_RETURN_IF_ERROR(visit(View(it->key()), View(it->value())));
  }
  return FromRocks(it->status(), "scan " + Quoted(prefix));
}

}  // namespace

StoreImpl::StoreImpl(std::unique_ptr<RocksDb> db, const Options& options)
    : db_(std::move(db)), options_(options), blocks_dir_(options.dir / kBlocksDir) {
  write_options_.sync = options.sync;
  if (options.sync && options.block_files) dir_syncer_ = std::make_unique<DirSyncer>();
}

Result<std::unique_ptr<StoreImpl>> StoreImpl::Create(std::unique_ptr<RocksDb> db,
                                                     const Options& options) {
  std::unique_ptr<StoreImpl> store(new StoreImpl(std::move(db), options));
  ZF_RETURN_IF_ERROR(store->RemovePendingObjects());
  ZF_RETURN_IF_ERROR(PrepareBlockDirs(store->blocks_dir_, options.sync));
  ZF_RETURN_IF_ERROR(store->RemoveOrphanFiles());
  ZF_RETURN_IF_ERROR(store->LoadIdCounter());
  return store;
}

// --- Open-time recovery. ---

Status StoreImpl::RemovePendingObjects() {
  rocksdb::WriteBatch batch;
  Status s = ScanPrefix(
      db_->db(), db_->meta(), std::string(keys::kPendingPrefix),
      [&](std::string_view key, std::string_view) {
        if (key.size() != keys::kPendingPrefix.size() + 8) {
          return Status::Error(ErrorCode::kCorrupt, "malformed pending marker key of " +
                                                        std::to_string(key.size()) + " bytes");
        }
        uint64_t id = keys::ReadBigEndian64(key.substr(keys::kPendingPrefix.size()));
        batch.DeleteRange(db_->chunks(), keys::Block(id, 0), keys::Block(id + 1, 0))
            .PermitUncheckedError();  // only a batch size limit could fail; none is set
        batch.Delete(db_->meta(), std::string(key)).PermitUncheckedError();
        return Status::Ok();
      });
  ZF_RETURN_IF_ERROR(s);
  if (batch.Count() == 0) return Status::Ok();
  return Write(&batch, "remove uncommitted objects");
}

// A block file is live only while a committed manifest names it: files of writers that never
// committed (abandoned, or killed before the manifest was written) and of objects deleted or
// replaced before the unlink went through are removed here. The manifests are scanned only when
// there are files.
Status StoreImpl::RemoveOrphanFiles() {
  Result<std::unordered_set<uint64_t>> present = ListBlockFiles(blocks_dir_);
  if (!present.ok()) return present.status();
  if (present->empty()) return Status::Ok();
  std::unordered_set<uint64_t> live;
  ZF_RETURN_IF_ERROR(ScanPrefix(db_->db(), db_->meta(), std::string(keys::kObjectPrefix),
                                [&](std::string_view, std::string_view value) {
                                  std::optional<Manifest> m = DecodeManifest(value);
                                  if (m && m->in_file && present->contains(m->id))
                                    live.insert(m->id);
                                  return Status::Ok();
                                }));
  if (live.size() == present->size()) return Status::Ok();
  size_t removed = 0;
  return SweepBlockFiles(blocks_dir_, live, &removed);
}

Status StoreImpl::LoadIdCounter() {
  std::string value;
  rocksdb::Status s =
      db_->db()->Get(rocksdb::ReadOptions(), db_->meta(), std::string(keys::kNextObjectId), &value);
  if (s.IsNotFound()) return Status::Ok();
  ZF_RETURN_IF_ERROR(FromRocks(s, "read object id counter"));
  if (value.size() != 8) return Status::Error(ErrorCode::kCorrupt, "malformed object id counter");
  std::lock_guard lock(id_mu_);
  next_id_ = id_limit_ = keys::ReadBigEndian64(value);
  return Status::Ok();
}

Result<uint64_t> StoreImpl::AllocateId() {
  std::lock_guard lock(id_mu_);
  if (next_id_ == id_limit_) {
    // Ids are never reused: the counter is persisted before any id of the new lease is handed
    // out, and an id's blocks are keyed by it. id + 1 must stay representable (see DeleteRange).
    if (id_limit_ > std::numeric_limits<uint64_t>::max() - kIdLease - 1) {
      return Status::Error(ErrorCode::kIoError, "object ids exhausted");
    }
    uint64_t limit = id_limit_ + kIdLease;
    std::string value;
    keys::AppendBigEndian64(&value, limit);
    rocksdb::WriteBatch batch;
    ZF_RETURN_IF_ERROR(FromRocks(batch.Put(db_->meta(), std::string(keys::kNextObjectId), value),
                                 "lease object ids"));
    ZF_RETURN_IF_ERROR(Write(&batch, "lease object ids"));
    id_limit_ = limit;
  }
  return next_id_++;
}

// --- Helpers. ---

std::mutex& StoreImpl::NameLock(std::string_view name) {
  return name_locks_[std::hash<std::string_view>{}(name) % name_locks_.size()];
}

Status StoreImpl::Write(rocksdb::WriteBatch* batch, const std::string& context) {
  return Write(batch, write_options_, context);
}

Status StoreImpl::Write(rocksdb::WriteBatch* batch, const rocksdb::WriteOptions& write,
                        const std::string& context) {
  return FromRocks(db_->db()->Write(write, batch), context);
}

Status StoreImpl::PutBlock(rocksdb::WriteBatch* batch, uint64_t id, uint64_t index,
                           std::span<const std::byte> bytes) {
  std::string key = keys::Block(id, index);
  std::array<char, kChecksumSize> trailer = EncodeChecksum(BlockChecksum(bytes));
  rocksdb::Slice key_part(key);
  rocksdb::Slice value_parts[2] = {
      rocksdb::Slice(reinterpret_cast<const char*>(bytes.data()), bytes.size()),
      rocksdb::Slice(trailer.data(), trailer.size())};
  return FromRocks(batch->Put(db_->chunks(), rocksdb::SliceParts(&key_part, 1),
                              rocksdb::SliceParts(value_parts, 2)),
                   "stage block " + std::to_string(index));
}

void StoreImpl::DeleteBlocks(rocksdb::WriteBatch* batch, const Manifest& manifest) {
  if (manifest.in_file) return;  // the caller unlinks the file once the batch is written
  for (uint64_t i = 0; i < manifest.blocks; ++i) {
    batch->Delete(db_->chunks(), keys::Block(manifest.id, i)).PermitUncheckedError();
  }
}

Result<std::optional<Manifest>> StoreImpl::ReadManifest(std::string_view name,
                                                        const rocksdb::Snapshot* snapshot) {
  rocksdb::ReadOptions read;
  read.snapshot = snapshot;
  std::string value;
  rocksdb::Status s = db_->db()->Get(read, db_->meta(), keys::Object(name), &value);
  if (s.IsNotFound()) return std::optional<Manifest>();
  ZF_RETURN_IF_ERROR(FromRocks(s, "read manifest of object " + Quoted(name)));
  std::optional<Manifest> manifest = DecodeManifest(value);
  if (!manifest)
    return Status::Error(ErrorCode::kCorrupt, "object " + Quoted(name) + ": malformed manifest");
  return manifest;
}

// --- Shared with writers and readers. ---

std::future<Status> StoreImpl::SyncShardLater(uint64_t id) {
  return dir_syncer_->Sync(BlockShardPath(blocks_dir_, id));
}

Status StoreImpl::WriteBlock(uint64_t id, uint64_t index, std::span<const std::byte> bytes,
                             std::string_view pending_name) {
  rocksdb::WriteBatch batch;
  if (!pending_name.empty()) {
    ZF_RETURN_IF_ERROR(
        FromRocks(batch.Put(db_->meta(), keys::Pending(id),
                            rocksdb::Slice(pending_name.data(), pending_name.size())),
                  "stage pending marker"));
  }
  ZF_RETURN_IF_ERROR(PutBlock(&batch, id, index, bytes));
  return Write(&batch, "write block " + std::to_string(index));
}

Status StoreImpl::CommitObject(std::string_view name, const Manifest& manifest,
                               std::span<const std::byte> last_block, bool pending) {
  rocksdb::WriteBatch batch;
  if (!last_block.empty()) {
    ZF_RETURN_IF_ERROR(PutBlock(&batch, manifest.id, manifest.blocks - 1, last_block));
  }
  ZF_RETURN_IF_ERROR(FromRocks(batch.Put(db_->meta(), keys::Object(name), EncodeManifest(manifest)),
                               "stage manifest"));
  if (pending) batch.Delete(db_->meta(), keys::Pending(manifest.id)).PermitUncheckedError();

  std::lock_guard lock(NameLock(name));
  Result<std::optional<Manifest>> old = ReadManifest(name, nullptr);
  // A damaged manifest is replaced all the same, so that writing the object again repairs it
  // (the blocks it pointed to cannot be found and stay behind; a block file goes at next Open).
  if (!old.ok() && old.status().code() != ErrorCode::kCorrupt) return old.status();
  const bool replaces = old.ok() && old->has_value() && (*old)->id != manifest.id;
  if (replaces) DeleteBlocks(&batch, **old);
  ZF_RETURN_IF_ERROR(Write(&batch, "commit object " + Quoted(name)));
  if (replaces && (*old)->in_file) UnlinkBlockFile((*old)->id);
  return Status::Ok();
}

void StoreImpl::UnlinkBlockFile(uint64_t id) {
  std::error_code ec;
  std::filesystem::remove(BlockFilePath(blocks_dir_, id), ec);  // on failure: Open sweeps it
}

void StoreImpl::AbandonObject(uint64_t id) {
  rocksdb::WriteBatch batch;
  batch.DeleteRange(db_->chunks(), keys::Block(id, 0), keys::Block(id + 1, 0))
      .PermitUncheckedError();
  batch.Delete(db_->meta(), keys::Pending(id)).PermitUncheckedError();
  rocksdb::WriteOptions write;
  write.sync = false;
  // Ignored on failure: the pending marker stays and the next Open removes the blocks.
  db_->db()->Write(write, &batch).PermitUncheckedError();
}

Status StoreImpl::ReadBlock(std::string_view name, const Manifest& manifest, uint64_t index,
                            const rocksdb::Snapshot* snapshot, rocksdb::PinnableSlice* out) {
  std::string where = "object " + Quoted(name) + " block " + std::to_string(index) + " of " +
                      std::to_string(manifest.blocks);
  rocksdb::ReadOptions read;
  read.snapshot = snapshot;
  // The block's own xxHash64 below checks every byte end to end, so RocksDB's per-record
  // checksum is skipped here: in portable builds its blob and WAL CRC32c runs in software and
  // cut blob reads to a quarter (see BENCHMARKS.md). Manifest reads keep RocksDB's checks.
  read.verify_checksums = false;
  read.fill_cache = false;  // blocks are megabytes; caching them would evict the index blocks
  out->Reset();
  rocksdb::Status s = db_->db()->Get(read, db_->chunks(), keys::Block(manifest.id, index), out);
  if (s.IsNotFound()) return Status::Error(ErrorCode::kCorrupt, where + ": block is missing");
  ZF_RETURN_IF_ERROR(FromRocks(s, "read " + where));
  uint64_t expected = manifest.BlockLength(index) + kChecksumSize;
  if (out->size() != expected) {
    return Status::Error(ErrorCode::kCorrupt, where + ": " + std::to_string(out->size()) +
                                                  " stored bytes, expected " +
                                                  std::to_string(expected));
  }
  BlockCheck check = VerifyBlock(View(*out));
  if (!check.ok) {
    return Status::Error(ErrorCode::kCorrupt,
                         where + ": " + ChecksumMismatch(check.stored, check.computed));
  }
  out->remove_suffix(kChecksumSize);
  return Status::Ok();
}

// --- Objects. ---

Result<std::unique_ptr<ObjectWriter>> StoreImpl::CreateObject(std::string_view name) {
  ZF_RETURN_IF_ERROR(CheckName(name, "object name"));
  Result<uint64_t> id = AllocateId();
  if (!id.ok()) return id.status();
  return std::unique_ptr<ObjectWriter>(
      new ObjectWriterImpl(this, std::string(name), *id, options_.block_size));
}

Result<std::unique_ptr<ObjectReader>> StoreImpl::OpenObject(std::string_view name) {
  ZF_RETURN_IF_ERROR(CheckName(name, "object name"));
  // A block file is unlinked only after the manifest naming it is gone, so a file missing at
  // open means the object was replaced or deleted since its manifest was read: read it again.
  // Once open, the file stays readable whatever happens to the object (the snapshot's part).
  std::optional<uint64_t> missing_id;
  for (int attempt = 0; attempt < 16; ++attempt) {
    auto snapshot = std::make_unique<rocksdb::ManagedSnapshot>(db_->db());
    Result<std::optional<Manifest>> manifest = ReadManifest(name, snapshot->snapshot());
    if (!manifest.ok()) return manifest.status();
    if (!manifest->has_value()) {
      return Status::Error(ErrorCode::kNotFound, "object " + Quoted(name) + " not found");
    }
    if (!(*manifest)->in_file) {
      return std::unique_ptr<ObjectReader>(
          new ObjectReaderImpl(this, std::string(name), **manifest, std::move(snapshot), {}));
    }
    snapshot.reset();
    const uint64_t id = (*manifest)->id;
    Result<UniqueFd> file = OpenBlockFile(BlockFilePath(blocks_dir_, id));
    if (file.ok()) {
      return std::unique_ptr<ObjectReader>(
          new ObjectReaderImpl(this, std::string(name), **manifest, nullptr, std::move(*file)));
    }
    if (file.status().code() != ErrorCode::kNotFound) return file.status();
    if (missing_id == id) {
      return Status::Error(
          ErrorCode::kCorrupt,
          "object " + Quoted(name) + ": block file is missing (" + file.status().message() + ")");
    }
    missing_id = id;
  }
  return Status::Error(ErrorCode::kIoError,
                       "object " + Quoted(name) + " kept being replaced while opened");
}

Result<ObjectInfo> StoreImpl::Stat(std::string_view name) {
  ZF_RETURN_IF_ERROR(CheckName(name, "object name"));
  Result<std::optional<Manifest>> manifest = ReadManifest(name, nullptr);
  if (!manifest.ok()) return manifest.status();
  if (!manifest->has_value()) {
    return Status::Error(ErrorCode::kNotFound, "object " + Quoted(name) + " not found");
  }
  return ObjectInfo{(*manifest)->size, (*manifest)->blocks};
}

Status StoreImpl::PutObject(std::string_view name, std::string_view bytes) {
  // Up to one block this is a single synced batch: the writer only writes at Commit.
  Result<std::unique_ptr<ObjectWriter>> writer = CreateObject(name);
  if (!writer.ok()) return writer.status();
  ZF_RETURN_IF_ERROR((*writer)->Append(bytes));
  return (*writer)->Commit();
}

Result<std::string> StoreImpl::GetObject(std::string_view name) {
  return ReadRange(name, 0, std::numeric_limits<uint64_t>::max());
}

Result<std::string> StoreImpl::ReadRange(std::string_view name, uint64_t offset, uint64_t length) {
  Result<std::unique_ptr<ObjectReader>> reader = OpenObject(name);
  if (!reader.ok()) return reader.status();
  return ReadRangeFrom(**reader, name, offset, length);
}

Status StoreImpl::DeleteObjectLocked(std::string_view name, const rocksdb::WriteOptions& write,
                                     bool* existed, std::optional<uint64_t>* file_id) {
  *existed = false;
  file_id->reset();
  Result<std::optional<Manifest>> manifest = ReadManifest(name, nullptr);
  // A damaged manifest is deleted all the same (as in CommitObject).
  if (!manifest.ok() && manifest.status().code() != ErrorCode::kCorrupt) return manifest.status();
  if (manifest.ok() && !manifest->has_value()) return Status::Ok();
  rocksdb::WriteBatch batch;
  batch.Delete(db_->meta(), keys::Object(name)).PermitUncheckedError();
  if (manifest.ok()) DeleteBlocks(&batch, **manifest);
  ZF_RETURN_IF_ERROR(Write(&batch, write, "delete object " + Quoted(name)));
  *existed = true;
  if (manifest.ok() && (*manifest)->in_file) *file_id = (*manifest)->id;
  return Status::Ok();
}

Status StoreImpl::DeleteObject(std::string_view name) {
  ZF_RETURN_IF_ERROR(CheckName(name, "object name"));
  std::lock_guard lock(NameLock(name));
  bool existed = false;
  std::optional<uint64_t> file_id;
  ZF_RETURN_IF_ERROR(DeleteObjectLocked(name, write_options_, &existed, &file_id));
  if (file_id) UnlinkBlockFile(*file_id);
  return Status::Ok();
}

Result<std::vector<std::string>> StoreImpl::ListObjects(std::string_view prefix) {
  std::vector<std::string> names;
  Status s = ScanPrefix(db_->db(), db_->meta(), keys::Object(prefix),
                        [&](std::string_view key, std::string_view) {
                          names.emplace_back(key.substr(keys::kObjectPrefix.size()));
                          return Status::Ok();
                        });
  if (!s.ok()) return s;
  return names;
}

Result<size_t> StoreImpl::DeleteObjects(std::string_view prefix) {
  Result<std::vector<std::string>> names = ListObjects(prefix);
  if (!names.ok()) return names.status();
  // One unsynced batch per object, then one WAL sync covering them all.
  rocksdb::WriteOptions unsynced;
  unsynced.sync = false;
  // Block files are unlinked only after that sync: a manifest must never outlive its file.
  size_t deleted = 0;
  std::vector<uint64_t> files;
  for (const std::string& name : *names) {
    std::lock_guard lock(NameLock(name));
    bool existed = false;
    std::optional<uint64_t> file_id;
    ZF_RETURN_IF_ERROR(DeleteObjectLocked(name, unsynced, &existed, &file_id));
    if (existed) ++deleted;
    if (file_id) files.push_back(*file_id);
  }
  if (options_.sync && deleted > 0) {
    ZF_RETURN_IF_ERROR(FromRocks(db_->db()->SyncWAL(), "sync deletion of " + Quoted(prefix)));
  }
  for (uint64_t id : files) UnlinkBlockFile(id);
  return deleted;
}

// --- Metadata records. ---

Status StoreImpl::PutMeta(std::string_view key, std::string_view value) {
  ZF_RETURN_IF_ERROR(CheckName(key, "metadata key"));
  if (value.size() > kMaxMetaValueBytes) {
    return Status::Error(ErrorCode::kInvalidArgument,
                         "metadata record " + Quoted(key) + " is " + std::to_string(value.size()) +
                             " bytes, limit " + std::to_string(kMaxMetaValueBytes));
  }
  return FromRocks(db_->db()->Put(write_options_, db_->meta(), keys::Meta(key),
                                  rocksdb::Slice(value.data(), value.size())),
                   "put metadata " + Quoted(key));
}

Result<std::optional<std::string>> StoreImpl::GetMeta(std::string_view key) {
  ZF_RETURN_IF_ERROR(CheckName(key, "metadata key"));
  std::string value;
  rocksdb::Status s = db_->db()->Get(rocksdb::ReadOptions(), db_->meta(), keys::Meta(key), &value);
  if (s.IsNotFound()) return std::optional<std::string>();
  ZF_RETURN_IF_ERROR(FromRocks(s, "get metadata " + Quoted(key)));
  return std::optional<std::string>(std::move(value));
}

Status StoreImpl::DeleteMeta(std::string_view key) {
  ZF_RETURN_IF_ERROR(CheckName(key, "metadata key"));
  return FromRocks(db_->db()->Delete(write_options_, db_->meta(), keys::Meta(key)),
                   "delete metadata " + Quoted(key));
}

Result<std::vector<std::pair<std::string, std::string>>> StoreImpl::ListMeta(
    std::string_view prefix) {
  std::vector<std::pair<std::string, std::string>> records;
  Status s = ScanPrefix(db_->db(), db_->meta(), keys::Meta(prefix),
                        [&](std::string_view key, std::string_view value) {
                          records.emplace_back(key.substr(keys::kMetaPrefix.size()), value);
                          return Status::Ok();
                        });
  if (!s.ok()) return s;
  return records;
}

StoreMemory StoreImpl::Memory() {
  StoreMemory m;
  rocksdb::DB* db = db_->db();
  uint64_t v = 0;
  if (db->GetAggregatedIntProperty(rocksdb::DB::Properties::kCurSizeAllMemTables, &v)) {
    m.memtable_bytes = v;
  }
  if (db->GetAggregatedIntProperty(rocksdb::DB::Properties::kEstimateTableReadersMem, &v)) {
    m.table_reader_bytes = v;
  }
  // Each family's table factory has a block cache of its own (no shared cache is configured).
  for (rocksdb::ColumnFamilyHandle* family :
       {db->DefaultColumnFamily(), db_->meta(), db_->chunks()}) {
    if (db->GetIntProperty(family, rocksdb::DB::Properties::kBlockCacheUsage, &v)) {
      m.block_cache_bytes += v;
    }
  }
  return m;
}

}  // namespace zerofarm::storage
