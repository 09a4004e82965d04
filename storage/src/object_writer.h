// ObjectWriterImpl: streams an object into blocks. Private to storage/. One thread at a time;
// must not outlive the StoreImpl that created it. Holds at most one block in memory.
//
// With block files (Options::block_files), an object that fills at least one block has all its
// blocks in its block file: created by the append that completes the first block, which is
// written from the bytes held so far and the caller's own (no copy of those), after which
// appended bytes go straight to the file without a copy (each block's writeback started as it
// completes), synced at Commit with its shard directory (whose fsync started when the file was
// created and runs meanwhile on the store's DirSyncer) before the manifest (with every block's
// checksum) is written in one synced batch. No pending marker is needed: a file no manifest
// names is removed at the next Open. An object smaller than a block is one synced batch at
// Commit, its block inline in RocksDB.
//
// Without block files, every block goes to RocksDB: a full block is written when more bytes
// arrive, so the last block always goes out at Commit; the first full block carries the
// object's pending marker; an object of one block is written by Commit alone, in one synced
// batch.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <future>
#include <span>
#include <string>
#include <vector>

#include "block.h"
#include "zerofarm/base/unique_fd.h"
#include "zerofarm/storage/store.h"

namespace zerofarm::storage {

class StoreImpl;

class ObjectWriterImpl final : public ObjectWriter {
 public:
  // `id` is freshly allocated: no block or marker of it exists yet.
  ObjectWriterImpl(StoreImpl* store, std::string name, uint64_t id, size_t block_size);
  ~ObjectWriterImpl() override;  // abandons the object unless committed
  ObjectWriterImpl(const ObjectWriterImpl&) = delete;
  ObjectWriterImpl& operator=(const ObjectWriterImpl&) = delete;

  using ObjectWriter::Append;
  Status Append(std::span<const std::byte> data) override;
  Status Commit() override;
  uint64_t size() const override { return size_; }

 private:
  Status CheckWritable() const;
  Status WriteNextBlock(std::span<const std::byte> bytes);
  // Writes the next full block, `head` then `tail`, to the block file (created by the first).
  Status WriteFileBlock(std::span<const std::byte> head, std::span<const std::byte> tail);
  // Appends up to the end of the current block to the block file.
  Status StreamToFile(std::span<const std::byte> bytes);
  Status CommitFile();
  // The capacity to give buffer_ when it must hold `needed` bytes.
  size_t BufferCapacity(size_t needed) const;
  Status Fail(Status status);

  StoreImpl* const store_;
  const std::string name_;
  const uint64_t id_;
  const size_t block_size_;
  std::vector<std::byte> buffer_;  // the block being filled; never more than block_size_
  uint64_t size_ = 0;
  uint64_t blocks_written_ = 0;
  bool wrote_ = false;  // a block write to RocksDB was attempted: abandoning must clean up
  std::filesystem::path file_path_;  // the block file, once created (abandoning unlinks it)
  UniqueFd file_;
  std::future<Status> shard_synced_;  // the fsync of the file's shard directory, with sync
  std::vector<uint64_t> checksums_;   // of the full blocks written to the file
  uint64_t in_block_ = 0;             // bytes of the next block already in the file
  BlockHasher hasher_;                // of those bytes
  bool committed_ = false;
  Status error_;  // sticky: after a failed write the writer only reports it
};

}  // namespace zerofarm::storage
