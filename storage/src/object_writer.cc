#include "object_writer.h"

#include <algorithm>
#include <system_error>
#include <utility>

#include "block.h"
#include "block_file.h"
#include "manifest.h"
#include "store_impl.h"

namespace zerofarm::storage {

ObjectWriterImpl::ObjectWriterImpl(StoreImpl* store, std::string name, uint64_t id,
                                   size_t block_size)
    : store_(store), name_(std::move(name)), id_(id), block_size_(block_size) {}

ObjectWriterImpl::~ObjectWriterImpl() {
  if (wrote_ && !committed_) store_->AbandonObject(id_);
  if (!file_path_.empty() && !committed_) {
    file_.Close();
    std::error_code ec;
    std::filesystem::remove(file_path_, ec);  // on failure the next Open removes it
  }
}

Status ObjectWriterImpl::CheckWritable() const {
  if (!error_.ok()) return error_;
  if (committed_) {
    return Status::Error(ErrorCode::kInvalidArgument,
                         "object '" + name_ + "' is already committed");
  }
  return Status::Ok();
}

Status ObjectWriterImpl::Fail(Status status) {
  error_ = status;
  return status;
}

Status ObjectWriterImpl::WriteFileBlock(std::span<const std::byte> head,
                                        std::span<const std::byte> tail) {
  if (file_path_.empty()) {
    std::filesystem::path path = BlockFilePath(store_->blocks_dir(), id_);
    Result<UniqueFd> file = CreateBlockFile(path);
    if (!file.ok()) return Fail(file.status().WithContext("write object '" + name_ + "'"));
    file_path_ = std::move(path);
    file_ = std::move(*file);
    // The file is new: its directory entry must be on disk before a manifest names it. That
    // fsync runs beside the data's write and fdatasync; Commit waits for both.
    if (store_->sync()) shard_synced_ = store_->SyncShardLater(id_);
  }
  const uint64_t offset = blocks_written_ * block_size_;
  Status s = WriteAt(file_.get(), head, tail, offset, file_path_);
  if (!s.ok()) return Fail(s.WithContext("write object '" + name_ + "'"));
  // Writeback of this block starts now, while it is hashed and the caller produces the next
  // one, instead of all at once in Commit's fdatasync.
  if (store_->sync()) StartWriteback(file_.get(), offset, head.size() + tail.size());
  hasher_.Update(head);
  hasher_.Update(tail);
  checksums_.push_back(hasher_.Finish());
  ++blocks_written_;
  return Status::Ok();
}

Status ObjectWriterImpl::StreamToFile(std::span<const std::byte> bytes) {
  const uint64_t block_start = blocks_written_ * block_size_;
  Status s = WriteAt(file_.get(), bytes, block_start + in_block_, file_path_);
  if (!s.ok()) return Fail(s.WithContext("write object '" + name_ + "'"));
  hasher_.Update(bytes);
  in_block_ += bytes.size();
  if (in_block_ == block_size_) {
    if (store_->sync()) StartWriteback(file_.get(), block_start, block_size_);
    checksums_.push_back(hasher_.Finish());
    ++blocks_written_;
    in_block_ = 0;
  }
  return Status::Ok();
}

Status ObjectWriterImpl::WriteNextBlock(std::span<const std::byte> bytes) {
  wrote_ = true;
  Status s =
      store_->WriteBlock(id_, blocks_written_, bytes,
                         blocks_written_ == 0 ? std::string_view(name_) : std::string_view());
  if (!s.ok()) return Fail(s.WithContext("write object '" + name_ + "'"));
  ++blocks_written_;
  return Status::Ok();
}

Status ObjectWriterImpl::Append(std::span<const std::byte> data) {
  ZF_RETURN_IF_ERROR(CheckWritable());
  const uint64_t appended = data.size();
  while (!data.empty()) {
    // Once the object has its file, bytes go there directly.
    if (file_.valid()) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(block_size_ - in_block_, data.size()));
      ZF_RETURN_IF_ERROR(StreamToFile(data.first(n)));
      data = data.subspan(n);
      continue;
    }
    // With block files, the append that completes the first block shows that the object
    // belongs in a file: the block goes there from the held bytes and the caller's, without
    // copying the caller's in first.
    if (store_->block_files() && buffer_.size() + data.size() >= block_size_) {
      const size_t n = block_size_ - buffer_.size();
      ZF_RETURN_IF_ERROR(WriteFileBlock(buffer_, data.first(n)));
      buffer_ = {};  // only the file is written from now on
      data = data.subspan(n);
      continue;
    }
    if (buffer_.size() == block_size_) {
      ZF_RETURN_IF_ERROR(WriteNextBlock(buffer_));
      buffer_.clear();
      continue;
    }
    // A whole block with more bytes after it goes out without a copy.
    if (buffer_.empty() && data.size() > block_size_) {
      ZF_RETURN_IF_ERROR(WriteNextBlock(data.first(block_size_)));
      data = data.subspan(block_size_);
      continue;
    }
    size_t n = std::min(block_size_ - buffer_.size(), data.size());
    if (buffer_.capacity() < buffer_.size() + n)
      buffer_.reserve(BufferCapacity(buffer_.size() + n));
    buffer_.insert(buffer_.end(), data.begin(), data.begin() + static_cast<ptrdiff_t>(n));
    data = data.subspan(n);
  }
  size_ += appended;
  return Status::Ok();
}

size_t ObjectWriterImpl::BufferCapacity(size_t needed) const {
  // The first append sizes the buffer exactly (an object put in one append, typically a small
  // one bound for RocksDB, never holds more). When it grows past kSmallObject it takes a whole
  // block at once, so a block streamed in pieces is moved by at most one regrowth.
  constexpr size_t kSmallObject = 64 << 10;
  if (buffer_.capacity() == 0) return needed;
  if (needed > kSmallObject) return block_size_;
  return std::min(block_size_, std::max(needed, 2 * buffer_.capacity()));
}

Status ObjectWriterImpl::CommitFile() {
  if (in_block_ > 0) {  // the last, partial block
    checksums_.push_back(hasher_.Finish());
    ++blocks_written_;
    in_block_ = 0;
  }
  if (blocks_written_ != BlockCount(size_, block_size_)) {
    return Fail(Status::Error(ErrorCode::kIoError,
                              "object '" + name_ + "': wrote " + std::to_string(blocks_written_) +
                                  " blocks for " + std::to_string(size_) + " bytes"));
  }
  if (store_->sync()) {
    Status s = SyncData(file_.get(), file_path_);
    Status entry = shard_synced_.get();  // the file's directory entry, synced meanwhile
    if (s.ok()) s = entry;
    if (!s.ok()) return Fail(s.WithContext("commit object '" + name_ + "'"));
  }
  Manifest manifest;
  manifest.id = id_;
  manifest.size = size_;
  manifest.blocks = blocks_written_;
  manifest.block_size = block_size_;
  manifest.in_file = true;
  manifest.checksums = checksums_;
  Status s = store_->CommitObject(name_, manifest, {}, /*pending=*/false);
  if (!s.ok()) {
    // Whether the manifest reached the disk is unknown: the file stays, and the next Open keeps
    // it only if a manifest names it.
    file_path_.clear();
    return Fail(s);
  }
  committed_ = true;
  file_.Close();
  buffer_ = {};
  checksums_ = {};
  return Status::Ok();
}

Status ObjectWriterImpl::Commit() {
  ZF_RETURN_IF_ERROR(CheckWritable());
  if (file_.valid()) return CommitFile();
  Manifest manifest;
  manifest.id = id_;
  manifest.size = size_;
  manifest.blocks = blocks_written_ + (buffer_.empty() ? 0 : 1);
  manifest.block_size = block_size_;
  Status s = store_->CommitObject(name_, manifest, buffer_, /*pending=*/blocks_written_ > 0);
  if (!s.ok()) return Fail(s);
  committed_ = true;
  buffer_ = {};
  return Status::Ok();
}

}  // namespace zerofarm::storage
