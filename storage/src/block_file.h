// Block files: where the blocks of objects of at least one full block live, outside RocksDB.
// Private to storage/.
//
//   DIR/blocks/<id & 0xff as 2 hex digits>/<id as 16 hex digits>
//
// One file per object, its blocks back to back (block i at offset i * block_size), nothing else:
// the blocks' xxHash64 are in the manifest that names the file. The 256 shard directories are
// created (and synced) at Open, so a commit only has to sync the file and its shard directory.
// A file is reachable only through a committed manifest; a file no manifest names (writer
// abandoned or crashed, object deleted or replaced before the unlink) is an orphan that the next
// Open removes.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <unordered_set>

#include "zerofarm/base/status.h"
#include "zerofarm/base/unique_fd.h"

namespace zerofarm::storage {

struct Manifest;

inline constexpr const char* kBlocksDir = "blocks";

// Path of object `id`'s block file under `blocks_dir` (DIR/blocks).
std::filesystem::path BlockFilePath(const std::filesystem::path& blocks_dir, uint64_t id);
// Path of the shard directory holding it.
std::filesystem::path BlockShardPath(const std::filesystem::path& blocks_dir, uint64_t id);

// Creates blocks_dir and its shard directories when missing; with `sync`, syncs what it created.
Status PrepareBlockDirs(const std::filesystem::path& blocks_dir, bool sync);

// Removes every block file whose id is not in `live`, and anything else that is not a block
// file. Sets *removed to the number of entries removed.
Status SweepBlockFiles(const std::filesystem::path& blocks_dir,
                       const std::unordered_set<uint64_t>& live, size_t* removed);
// Ids of the block files present (for the sweep's caller to decide whether to scan manifests).
Result<std::unordered_set<uint64_t>> ListBlockFiles(const std::filesystem::path& blocks_dir);

// A new block file, opened for writing; "io_error" if it exists.
Result<UniqueFd> CreateBlockFile(const std::filesystem::path& path);
// For reading; "not_found" when it does not exist.
Result<UniqueFd> OpenBlockFile(const std::filesystem::path& path);
Status WriteAt(int fd, std::span<const std::byte> bytes, uint64_t offset,
               const std::filesystem::path& path);
// Writes `first` then `second` back to back from `offset` in one pwritev (resumed after a short
// write), so a block can be assembled from two buffers without copying them together.
Status WriteAt(int fd, std::span<const std::byte> first, std::span<const std::byte> second,
               uint64_t offset, const std::filesystem::path& path);
// Starts writeback of [offset, offset + length) without waiting for it.
void StartWriteback(int fd, uint64_t offset, uint64_t length);
Status SyncData(int fd, const std::filesystem::path& path);
Status SyncDir(const std::filesystem::path& dir);

// Reads block `index` of file-backed `manifest` from `fd` into `out` and checks its length and
// xxHash64 ("corrupt" names object and block).
Status ReadFileBlock(int fd, std::string_view name, const Manifest& manifest, uint64_t index,
                     std::string* out);

}  // namespace zerofarm::storage
