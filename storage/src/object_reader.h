// ObjectReaderImpl: streams one committed object out, one verified block at a time. Private to
// storage/. Blocks in RocksDB are read from a snapshot taken at open, blocks in a block file from
// the file opened at open, so the object stays readable even if it is replaced or deleted
// meanwhile (an unlinked file lives on while open). One thread at a time; must not outlive its
// StoreImpl.
#pragma once

#include <rocksdb/db.h>
#include <rocksdb/snapshot.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "manifest.h"
#include "zerofarm/base/unique_fd.h"
#include "zerofarm/storage/store.h"

namespace zerofarm::storage {

class StoreImpl;

class ObjectReaderImpl final : public ObjectReader {
 public:
  // `snapshot` for blocks in RocksDB, `file` (the open block file) for blocks in a file.
  ObjectReaderImpl(StoreImpl* store, std::string name, const Manifest& manifest,
                   std::unique_ptr<rocksdb::ManagedSnapshot> snapshot, UniqueFd file);

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
  UniqueFd file_;
  std::optional<uint64_t> loaded_;  // index of the block `view_` shows
  rocksdb::PinnableSlice block_;    // a block read from RocksDB
  std::string file_block_;          // a block read from the block file
  std::string_view view_;
};

}  // namespace zerofarm::storage
