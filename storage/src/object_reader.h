// ObjectReaderImpl: streams one committed object out, one verified block at a time. Private to
// storage/. Reads from a RocksDB snapshot taken at open, so the object stays readable even if it
// is replaced or deleted meanwhile. One thread at a time; must not outlive its StoreImpl.
#pragma once

#include <rocksdb/db.h>
#include <rocksdb/snapshot.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "manifest.h"
#include "zerofarm/storage/store.h"

namespace zerofarm::storage {

class StoreImpl;

class ObjectReaderImpl final : public ObjectReader {
 public:
  ObjectReaderImpl(StoreImpl* store, std::string name, const Manifest& manifest,
                   std::unique_ptr<rocksdb::ManagedSnapshot> snapshot);

  // Fills `out` as far as the object allows, crossing block boundaries. If a block fails after
  // some bytes were copied, returns those; the next call reports the error.
  Result<size_t> Read(std::span<std::byte> out) override;
  // Offsets past the end are "invalid_argument"; the end itself is allowed.
  Status Seek(uint64_t offset) override;
  uint64_t size() const override { return manifest_.size; }

 private:
  StoreImpl* const store_;
  const std::string name_;
  const Manifest manifest_;
  std::unique_ptr<rocksdb::ManagedSnapshot> snapshot_;
  uint64_t position_ = 0;
  std::optional<uint64_t> loaded_;  // index of the block held in block_
  rocksdb::PinnableSlice block_;
};

}  // namespace zerofarm::storage
