#include "zerofarm/storage/store.h"

#include <utility>

#include "rocks_db.h"
#include "store_impl.h"

namespace zerofarm::storage {
namespace {

constexpr size_t kMaxBlockSize = 256 << 20;  // RocksDB values should stay far below 4 GiB

Status CheckOptions(const Options& options) {
  if (options.dir.empty())
    return Status::Error(ErrorCode::kInvalidArgument, "store directory is empty");
  if (options.block_size == 0 || options.block_size > kMaxBlockSize) {
    return Status::Error(ErrorCode::kInvalidArgument,
                         "block size " + std::to_string(options.block_size) + " is outside 1.." +
                             std::to_string(kMaxBlockSize));
  }
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<Store>> Store::Open(const Options& options) {
  ZF_RETURN_IF_ERROR(CheckOptions(options));
  Result<std::unique_ptr<RocksDb>> db = RocksDb::Open(options);
  if (!db.ok()) return db.status();
  Result<std::unique_ptr<StoreImpl>> store = StoreImpl::Create(std::move(*db), options);
  if (!store.ok()) return store.status();
  return std::unique_ptr<Store>(std::move(*store));
}

}  // namespace zerofarm::storage
