#include "object_reader.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "block_file.h"
#include "store_impl.h"

namespace zerofarm::storage {

ObjectReaderImpl::ObjectReaderImpl(StoreImpl* store, std::string name, const Manifest& manifest,
                                   std::unique_ptr<rocksdb::ManagedSnapshot> snapshot,
                                   UniqueFd file)
    : store_(store),
      name_(std::move(name)),
      manifest_(manifest),
      snapshot_(std::move(snapshot)),
      file_(std::move(file)) {}

Result<size_t> ObjectReaderImpl::Read(std::span<std::byte> out) {
  size_t copied = 0;
  while (copied < out.size() && position_ < manifest_.size) {
    uint64_t index = position_ / manifest_.block_size;
    uint64_t offset = position_ % manifest_.block_size;
    if (loaded_ != index) {
      loaded_.reset();
      Status s;
      if (manifest_.in_file) {
        s = ReadFileBlock(file_.get(), name_, manifest_, index, &file_block_);
        view_ = file_block_;
      } else {
        s = store_->ReadBlock(name_, manifest_, index, snapshot_->snapshot(), &block_);
        view_ = std::string_view(block_.data(), block_.size());
      }
      if (!s.ok()) {
        if (copied > 0) return copied;
        return s;
      }
      loaded_ = index;
    }
    size_t n = static_cast<size_t>(std::min<uint64_t>(out.size() - copied, view_.size() - offset));
    std::memcpy(out.data() + copied, view_.data() + offset, n);
    copied += n;
    position_ += n;
  }
  return copied;
}

Status ObjectReaderImpl::Seek(uint64_t offset) {
  if (offset > manifest_.size) {
    return Status::Error(ErrorCode::kInvalidArgument,
                         "seek to " + std::to_string(offset) + " past the end of object '" + name_ +
                             "' (" + std::to_string(manifest_.size) + " bytes)");
  }
  position_ = offset;
  return Status::Ok();
}

}  // namespace zerofarm::storage
