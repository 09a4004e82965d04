#include "block_file.h"

#include <fcntl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <optional>
#include <system_error>

#include "block.h"
#include "manifest.h"

namespace zerofarm::storage {
namespace {

namespace fs = std::filesystem;

constexpr int kShards = 256;
constexpr char kDigits[] = "0123456789abcdef";

std::string HexDigits(uint64_t value, int digits) {
  std::string out(static_cast<size_t>(digits), '0');
  for (int i = digits - 1; i >= 0; --i, value >>= 4)
    out[static_cast<size_t>(i)] = kDigits[value & 0xf];
  return out;
}

// The id a block file's name encodes, or nothing when it is not one.
std::optional<uint64_t> ParseId(const std::string& name) {
  if (name.size() != 16) return std::nullopt;
  uint64_t id = 0;
  for (char c : name) {
    int digit = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (digit < 0) return std::nullopt;
    id = (id << 4) | static_cast<uint64_t>(digit);
  }
  return id;
}

Status FsError(const std::string& what, const fs::path& path, const std::error_code& ec) {
  return Status::Error(ErrorCode::kIoError, what + " " + path.string() + ": " + ec.message());
}

// Calls visit(shard path, entry) for every entry of every shard directory.
template <class Visit>
Status ForEachEntry(const fs::path& blocks_dir, Visit visit) {
  std::error_code ec;
  for (fs::directory_iterator shard(blocks_dir, ec), end; !ec && shard != end;
       shard.increment(ec)) {
    if (!shard->is_directory(ec)) {
      ZF_RETURN_IF_ERROR(visit(*shard, /*in_shard=*/false));
      continue;
    }
    std::error_code inner;
    for (fs::directory_iterator file(shard->path(), inner), fend; !inner && file != fend;
         file.increment(inner)) {
      ZF_RETURN_IF_ERROR(visit(*file, /*in_shard=*/true));
    }
    if (inner) return FsError("list", shard->path(), inner);
  }
  if (ec) return FsError("list", blocks_dir, ec);
  return Status::Ok();
}

}  // namespace

fs::path BlockShardPath(const fs::path& blocks_dir, uint64_t id) {
  return blocks_dir / HexDigits(id & 0xff, 2);
}

fs::path BlockFilePath(const fs::path& blocks_dir, uint64_t id) {
  return BlockShardPath(blocks_dir, id) / HexDigits(id, 16);
}

Status PrepareBlockDirs(const fs::path& blocks_dir, bool sync) {
  std::error_code ec;
  bool created_any = fs::create_directory(blocks_dir, ec);
  if (ec) return FsError("create directory", blocks_dir, ec);
  bool created_root = created_any;
  for (int shard = 0; shard < kShards; ++shard) {
    fs::path path = blocks_dir / HexDigits(static_cast<uint64_t>(shard), 2);
    if (fs::create_directory(path, ec)) created_any = true;
    if (ec) return FsError("create directory", path, ec);
  }
  if (!sync || !created_any) return Status::Ok();
  ZF_RETURN_IF_ERROR(SyncDir(blocks_dir));
  if (created_root) ZF_RETURN_IF_ERROR(SyncDir(blocks_dir.parent_path()));
  return Status::Ok();
}

Result<std::unordered_set<uint64_t>> ListBlockFiles(const fs::path& blocks_dir) {
  std::unordered_set<uint64_t> ids;
  Status s = ForEachEntry(blocks_dir, [&](const fs::directory_entry& entry, bool in_shard) {
    if (!in_shard) return Status::Ok();
    if (std::optional<uint64_t> id = ParseId(entry.path().filename().string())) ids.insert(*id);
    return Status::Ok();
  });
  if (!s.ok()) return s;
  return ids;
}

Status SweepBlockFiles(const fs::path& blocks_dir, const std::unordered_set<uint64_t>& live,
                       size_t* removed) {
  *removed = 0;
  return ForEachEntry(blocks_dir, [&](const fs::directory_entry& entry, bool in_shard) {
    if (!in_shard) return Status::Ok();  // shard directories and their parent stay
    std::optional<uint64_t> id = ParseId(entry.path().filename().string());
    if (id && live.contains(*id) && entry.path() == BlockFilePath(blocks_dir, *id)) {
      return Status::Ok();
    }
    std::error_code ec;
    fs::remove_all(entry.path(), ec);
    if (ec) return FsError("remove", entry.path(), ec);
    ++*removed;
    return Status::Ok();
  });
}

Result<UniqueFd> CreateBlockFile(const fs::path& path) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  if (!fd.valid()) return ErrnoError("create " + path.string(), errno);
  return fd;
}

Result<UniqueFd> OpenBlockFile(const fs::path& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    int err = errno;
    Status s = ErrnoError("open " + path.string(), err);
    if (err == ENOENT) return Status::Error(ErrorCode::kNotFound, s.message());
    return s;
  }
  return fd;
}

Status WriteAt(int fd, std::span<const std::byte> bytes, uint64_t offset, const fs::path& path) {
  while (!bytes.empty()) {
    ssize_t n = ::pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("write " + path.string(), errno);
    }
    bytes = bytes.subspan(static_cast<size_t>(n));
    offset += static_cast<uint64_t>(n);
  }
  return Status::Ok();
}

Status WriteAt(int fd, std::span<const std::byte> first, std::span<const std::byte> second,
               uint64_t offset, const fs::path& path) {
  while (!first.empty()) {
    iovec pieces[2] = {{const_cast<std::byte*>(first.data()), first.size()},
                       {const_cast<std::byte*>(second.data()), second.size()}};
    ssize_t n = ::pwritev(fd, pieces, second.empty() ? 1 : 2, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("write " + path.string(), errno);
    }
    size_t done = static_cast<size_t>(n);
    offset += done;
    const size_t from_first = std::min(done, first.size());
    first = first.subspan(from_first);
    second = second.subspan(done - from_first);
  }
  return WriteAt(fd, second, offset, path);
}

void StartWriteback(int fd, uint64_t offset, uint64_t length) {
  // Advisory: a failure only means the writeback starts at fdatasync instead.
  (void)::sync_file_range(fd, static_cast<off_t>(offset), static_cast<off_t>(length),
                          SYNC_FILE_RANGE_WRITE);
}

Status SyncData(int fd, const fs::path& path) {
  if (::fdatasync(fd) != 0) return ErrnoError("fdatasync " + path.string(), errno);
  return Status::Ok();
}

Status SyncDir(const fs::path& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoError("open " + dir.string(), errno);
  if (::fsync(fd.get()) != 0) return ErrnoError("fsync " + dir.string(), errno);
  return Status::Ok();
}

Status ReadFileBlock(int fd, std::string_view name, const Manifest& manifest, uint64_t index,
                     std::string* out) {
  std::string where = "object '";
  where.append(name).append("' block ").append(std::to_string(index));
  where.append(" of ").append(std::to_string(manifest.blocks));
  const uint64_t length = manifest.BlockLength(index);
  const uint64_t start = index * manifest.block_size;
  out->resize(static_cast<size_t>(length));
  size_t got = 0;
  while (got < length) {
    ssize_t n = ::pread(fd, out->data() + got, out->size() - got, static_cast<off_t>(start + got));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("read " + where, errno);
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  if (got != length) {
    return Status::Error(
        ErrorCode::kCorrupt,
        where + ": " + std::to_string(got) + " stored bytes, expected " + std::to_string(length));
  }
  uint64_t computed = BlockChecksum(std::as_bytes(std::span(out->data(), out->size())));
  if (computed != manifest.checksums[index]) {
    return Status::Error(ErrorCode::kCorrupt,
                         where + ": " + ChecksumMismatch(manifest.checksums[index], computed));
  }
  return Status::Ok();
}

}  // namespace zerofarm::storage
