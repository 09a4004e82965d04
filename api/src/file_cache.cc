// SmallFileCache (file_cache.h).
#include "file_cache.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "zerofarm/base/unique_fd.h"

namespace zerofarm::api {

SmallFileCache::Identity SmallFileCache::Of(const struct stat& st) {
  return {st.st_dev, st.st_ino, st.st_size,
          static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec,
          static_cast<int64_t>(st.st_ctim.tv_sec) * 1000000000 + st.st_ctim.tv_nsec};
}

bool SmallFileCache::Holds(const std::filesystem::path& path) const {
  std::lock_guard lock(mu_);
  return files_.count(path.native()) != 0;
}

std::shared_ptr<const std::string> SmallFileCache::Get(const std::filesystem::path& path,
                                                       const struct stat& st) {
  if (!S_ISREG(st.st_mode) || st.st_size < 0 || static_cast<uint64_t>(st.st_size) > max_file_)
    return nullptr;
  const Identity want = Of(st);
  {
    std::lock_guard lock(mu_);
    auto it = files_.find(path.native());
    if (it != files_.end() && it->second.id == want) {
      return it->second.bytes;
    }
  }
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return nullptr;
  struct stat now {};
  if (::fstat(fd.get(), &now) != 0 || !(Of(now) == want)) return nullptr;  // replaced since
  auto bytes = std::make_shared<std::string>(static_cast<size_t>(st.st_size), '\0');
  size_t got = 0;
  while (got < bytes->size()) {
    const ssize_t n =
        ::pread(fd.get(), bytes->data() + got, bytes->size() - got, static_cast<off_t>(got));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return nullptr;  // shrank while read
    got += static_cast<size_t>(n);
  }
  std::lock_guard lock(mu_);
  auto it = files_.find(path.native());
  if (it != files_.end()) {
    total_ -= it->second.bytes->size();
    files_.erase(it);
  }
  if (total_ + bytes->size() > max_total_) {
    files_.clear();
    total_ = 0;
  }
  total_ += bytes->size();
  files_[path.native()] = Entry{want, bytes};
  return bytes;
}

}  // namespace zerofarm::api
