// ObjectWriterImpl: streams an object into blocks. Private to storage/. One thread at a time;
// must not outlive the StoreImpl that created it. Holds at most one block in memory: a full
// block is written when more bytes arrive, so the last block always goes out with the manifest.
// Nothing is written before the first full block, which carries the object's pending marker;
// an object of one block is written by Commit alone, in one synced batch.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

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
  Status Fail(Status status);

  StoreImpl* const store_;
  const std::string name_;
  const uint64_t id_;
  const size_t block_size_;
  std::vector<std::byte> buffer_;  // the block being filled; never more than block_size_
  uint64_t size_ = 0;
  uint64_t blocks_written_ = 0;
  bool wrote_ = false;  // a block write was attempted: abandoning must clean up
  bool committed_ = false;
  Status error_;  // sticky: after a failed write the writer only reports it
};

}  // namespace zerofarm::storage
