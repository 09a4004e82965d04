// SmallFileCache: whole small files kept in memory for GETs that come again and again (a
// player polls its playlists; every viewer fetches the same master playlist and thumbnail).
// A kept copy is used only while the file is the same one: same device, inode, size, change
// and modification times as the stat(2) the caller made for this request. A playlist replaced
// by rename (how growing EVENT playlists are rewritten) is a new inode and is read afresh, so
// an answer never carries bytes older than its ETag, which is made from the same stat.
// Thread safety: safe for concurrent use.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

namespace zerofarm::api {

class SmallFileCache {
 public:
  // Keeps files of at most `max_file` bytes, at most `max_total` bytes in all (when a new file
  // would pass it, every kept copy is dropped first).
  SmallFileCache(uint64_t max_file, uint64_t max_total)
      : max_file_(max_file), max_total_(max_total) {}

  // The bytes of the file at `path`, whose stat(2) for this request is `st`: the kept copy when
  // it is of that very file, otherwise read now (and kept). nullptr when the file is larger
  // than max_file, cannot be read, or is no longer the file `st` describes (the caller then
  // reads it as it would without a cache).
  std::shared_ptr<const std::string> Get(const std::filesystem::path& path, const struct stat& st);

  // True when a copy of the file at `path` is kept (it may be stale: Get decides).
  bool Holds(const std::filesystem::path& path) const;

 private:
  struct Identity {
    dev_t dev = 0;
    ino_t ino = 0;
    off_t size = 0;
    int64_t mtime_ns = 0;
    int64_t ctime_ns = 0;
    bool operator==(const Identity&) const = default;
  };
  static Identity Of(const struct stat& st);
  struct Entry {
    Identity id;
    std::shared_ptr<const std::string> bytes;
  };

  const uint64_t max_file_;
  const uint64_t max_total_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, Entry> files_;  // by path; guarded by mu_
  uint64_t total_ = 0;                            // bytes kept; guarded by mu_
};

}  // namespace zerofarm::api
