// Store: an embedded object store on RocksDB and plain files for one storage node.
//
// Objects are byte strings named by path-like keys ("jobs/<id>/chunks/00003"), cut into blocks
// of Options::block_size, each with an xxHash64 checksum verified on every read (a mismatch is
// "corrupt", naming object and block). An object's manifest (size, block count, where its blocks
// are) lives in a "meta" column family, as do small metadata records (Put/GetMeta).
// Where blocks live: an object of at least one full block keeps all its blocks back to back in a
// file of its own, DIR/blocks/<shard>/<id>, with their checksums in the manifest; a smaller
// object's block stays in RocksDB's "chunks" column family (as every block did before block
// files; such stores still open and read, and Options::block_files = false keeps that layout).
// Durability: every mutating call returns only after its data is synced to disk, so an
// acknowledged write survives kill -9 and power loss. A commit syncs the object's block file and
// its directory, then writes the manifest in one synced RocksDB batch (WAL fsync) that also
// removes the object it replaces; the replaced or deleted object's file is unlinked only after
// that batch. An object becomes visible only when its writer commits; a crash before commit
// leaves no visible object. What a crash leaves behind is removed at the next Open: blocks in
// RocksDB through their writer's pending marker, and every block file no manifest names.
// Thread safety: a Store is safe for concurrent use from many threads. An ObjectWriter or
// ObjectReader must be used by one thread at a time and must not outlive its Store. An open
// ObjectReader keeps reading the object it opened even if it is replaced or deleted meanwhile.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "zerofarm/base/status.h"

namespace zerofarm::storage {

struct Options {
  std::filesystem::path dir;    // created when missing
  size_t block_size = 4 << 20;  // bytes per stored block (last may be shorter)
  bool sync = true;             // fsync before acknowledging; tests keep it on
  bool blob_files = true;       // RocksDB integrated BlobDB for block values kept in RocksDB
  // Objects of at least one full block keep their blocks in a file of their own under
  // dir/blocks; false keeps every block in RocksDB (the layout before block files). Either way
  // the store reads objects of both layouts.
  bool block_files = true;
};

// What a store holds in memory, for /metrics: RocksDB's write buffers (memtables, which hold block
// values until a flush moves them to blob files), its block caches and its index/filter readers.
struct StoreMemory {
  uint64_t memtable_bytes = 0;
  uint64_t block_cache_bytes = 0;
  uint64_t table_reader_bytes = 0;
};

struct ObjectInfo {
  uint64_t size = 0;
  uint64_t blocks = 0;
};

// Streams an object in. Nothing is visible to readers until Commit() succeeds. Destroying an
// uncommitted writer abandons the object (its blocks are deleted).
class ObjectWriter {
 public:
  virtual ~ObjectWriter() = default;
  // Appends bytes; full blocks are written (and synced) as they fill, so memory stays at one
  // block whatever the object's size.
  virtual Status Append(std::span<const std::byte> data) = 0;
  Status Append(std::string_view data) {
    return Append(std::as_bytes(std::span(data.data(), data.size())));
  }
  // Writes the last block and the manifest, synced; replaces any object of the same name.
  virtual Status Commit() = 0;
  virtual uint64_t size() const = 0;  // bytes appended so far
};

// Streams an object out, block by block, verifying each block's checksum.
class ObjectReader {
 public:
  virtual ~ObjectReader() = default;
  // Reads up to out.size() bytes at the current position; returns 0 at the end.
  // A checksum mismatch is the error code "corrupt".
  virtual Result<size_t> Read(std::span<std::byte> out) = 0;
  virtual Status Seek(uint64_t offset) = 0;
  virtual uint64_t size() const = 0;
};

class Store {
 public:
  static Result<std::unique_ptr<Store>> Open(const Options& options);
  virtual ~Store() = default;

  // Objects. Error codes: "not_found", "corrupt", "io_error", "invalid_argument".
  virtual Result<std::unique_ptr<ObjectWriter>> CreateObject(std::string_view name) = 0;
  virtual Result<std::unique_ptr<ObjectReader>> OpenObject(std::string_view name) = 0;
  virtual Result<ObjectInfo> Stat(std::string_view name) = 0;
  // Whole small object in one call.
  virtual Status PutObject(std::string_view name, std::string_view bytes) = 0;
  virtual Result<std::string> GetObject(std::string_view name) = 0;
  // Range read: up to `length` bytes from `offset` (fewer at the end of the object).
  virtual Result<std::string> ReadRange(std::string_view name, uint64_t offset,
                                        uint64_t length) = 0;
  // Removing a missing object is not an error.
  virtual Status DeleteObject(std::string_view name) = 0;
  // Names of committed objects starting with `prefix`, sorted.
  virtual Result<std::vector<std::string>> ListObjects(std::string_view prefix) = 0;
  // Deletes every object whose name starts with `prefix`; returns how many.
  virtual Result<size_t> DeleteObjects(std::string_view prefix) = 0;

  // Small metadata records (task state, job records): synced single-key writes.
  virtual Status PutMeta(std::string_view key, std::string_view value) = 0;
  virtual Result<std::optional<std::string>> GetMeta(std::string_view key) = 0;
  virtual Status DeleteMeta(std::string_view key) = 0;
  // (key, value) pairs whose key starts with `prefix`, sorted by key.
  virtual Result<std::vector<std::pair<std::string, std::string>>> ListMeta(
      std::string_view prefix) = 0;

  // Memory held by this store in this process (a store over the network reports its local
  // metadata store). Cheap: reads RocksDB's counters.
  virtual StoreMemory Memory() { return {}; }
};

}  // namespace zerofarm::storage
