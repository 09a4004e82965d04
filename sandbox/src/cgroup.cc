#include "cgroup.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string_view>
#include <utility>

#include "zerofarm/base/unique_fd.h"

namespace zerofarm::sandbox {
namespace {

// rmdir fails with EBUSY until the kernel has finished tearing the killed processes down.
constexpr int kRemoveAttempts = 200;
constexpr useconds_t kRemoveWaitMicros = 1000;

Status WriteText(const std::string& path, const std::string& text) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoError("cgroup: open " + path, errno);
  if (::write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
    return ErrnoError("cgroup: write " + path, errno);
  }
  return Status::Ok();
}

std::string ReadText(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return {};
  char buf[4096];
  const ssize_t n = ::read(fd.get(), buf, sizeof buf - 1);
  if (n <= 0) return {};
  return std::string(buf, static_cast<size_t>(n));
}

// The value after "key " in a "key value" per line file.
uint64_t KeyValue(const std::string& text, std::string_view key) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + pos, end - pos);
    if (line.size() > key.size() && line.substr(0, key.size()) == key && line[key.size()] == ' ') {
      return std::strtoull(std::string(line.substr(key.size() + 1)).c_str(), nullptr, 10);
    }
    pos = end + 1;
  }
  return 0;
}

constexpr std::string_view kPrefix = "zerofarm-sandbox-";

// Removes the sandbox cgroups that ended processes left behind (killed before they removed
// them, or exiting with prepared sandboxes): zerofarm-sandbox-PID-N whose PID is not alive,
// or is this process's own (an earlier process had the same id; this one has made none yet).
// A cgroup that still holds a process is not removed (rmdir fails), so nothing in use goes.
void SweepStale(const std::string& parent) {
  DIR* dir = ::opendir(parent.c_str());
  if (dir == nullptr) return;
  const pid_t self = ::getpid();
  while (const dirent* e = ::readdir(dir)) {
    const std::string_view name(e->d_name);
    if (name.substr(0, kPrefix.size()) != kPrefix) continue;
    const long pid = std::strtol(e->d_name + kPrefix.size(), nullptr, 10);
    if (pid <= 0) continue;
    const bool ended = ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH;
    if (ended || pid == self) ::rmdir((parent + "/" + e->d_name).c_str());
  }
  ::closedir(dir);
}

}  // namespace

Result<MemoryCgroup> MemoryCgroup::Create(const HostLayers& host, uint64_t limit_bytes) {
  if (!host.cgroup_v2_memory && !host.cgroup_v1_memory) {
    return Status::Error(ErrorCode::kCgroup, "no writable memory cgroup on this host");
  }
  static std::once_flag swept;
  std::call_once(swept, [&] { SweepStale(host.cgroup_parent); });
  static std::atomic<uint64_t> counter{0};
  const std::string dir = host.cgroup_parent + "/" + std::string(kPrefix) +
                          std::to_string(::getpid()) + "-" + std::to_string(counter.fetch_add(1));
  // A directory of that name is an earlier process's leftover (same id): empty, so removable.
  if (::mkdir(dir.c_str(), 0700) != 0 &&
      (errno != EEXIST || ::rmdir(dir.c_str()) != 0 || ::mkdir(dir.c_str(), 0700) != 0)) {
    return ErrnoError("cgroup: mkdir " + dir, errno);
  }
  MemoryCgroup cg(dir, host.cgroup_v2_memory);
  ZF_RETURN_IF_ERROR(cg.SetLimit(limit_bytes));
  return cg;
}

Status MemoryCgroup::SetLimit(uint64_t limit_bytes) {
  if (limit_ == limit_bytes) return Status::Ok();
  const bool first = !limit_.has_value();
  const std::string limit = std::to_string(limit_bytes);
  if (v2_) {
    ZF_RETURN_IF_ERROR(WriteText(dir_ + "/memory.max", limit));
    // Without swap the limit is the limit; a kernel without swap accounting lacks the file.
    if (first && ::access((dir_ + "/memory.swap.max").c_str(), F_OK) == 0) {
      ZF_RETURN_IF_ERROR(WriteText(dir_ + "/memory.swap.max", "0"));
    }
  } else {
    // memory+swap may never be below memory: raise it first, lower it last.
    const bool memsw = ::access((dir_ + "/memory.memsw.limit_in_bytes").c_str(), F_OK) == 0;
    const bool raising = first || limit_bytes > *limit_;
    if (memsw && raising && !first) {
      ZF_RETURN_IF_ERROR(WriteText(dir_ + "/memory.memsw.limit_in_bytes", limit));
    }
    ZF_RETURN_IF_ERROR(WriteText(dir_ + "/memory.limit_in_bytes", limit));
    if (memsw && (!raising || first)) {
      ZF_RETURN_IF_ERROR(WriteText(dir_ + "/memory.memsw.limit_in_bytes", limit));
    }
  }
  limit_ = limit_bytes;
  return Status::Ok();
}

MemoryCgroup::MemoryCgroup(MemoryCgroup&& other) noexcept
    : dir_(std::exchange(other.dir_, {})), v2_(other.v2_), limit_(other.limit_) {}

MemoryCgroup& MemoryCgroup::operator=(MemoryCgroup&& other) noexcept {
  if (this != &other) {
    Remove();
    dir_ = std::exchange(other.dir_, {});
    v2_ = other.v2_;
    limit_ = other.limit_;
  }
  return *this;
}

MemoryCgroup::~MemoryCgroup() { Remove(); }

void MemoryCgroup::Remove() noexcept {
  if (dir_.empty()) return;
  for (int i = 0; i < kRemoveAttempts; ++i) {
    if (::rmdir(dir_.c_str()) == 0 || errno == ENOENT) break;
    if (errno != EBUSY) {
      std::fprintf(stderr, "zerofarm sandbox: cannot remove cgroup %s: errno %d\n", dir_.c_str(),
                   errno);
      break;
    }
    ::usleep(kRemoveWaitMicros);
  }
  dir_.clear();
}

Status MemoryCgroup::AddProcess(pid_t pid) const {
  return WriteText(dir_ + "/cgroup.procs", std::to_string(pid));
}

uint64_t MemoryCgroup::PeakBytes() const {
  const std::string text = ReadText(dir_ + (v2_ ? "/memory.peak" : "/memory.max_usage_in_bytes"));
  return text.empty() ? 0 : std::strtoull(text.c_str(), nullptr, 10);
}

uint64_t MemoryCgroup::OomKills() const {
  return KeyValue(ReadText(dir_ + (v2_ ? "/memory.events" : "/memory.oom_control")), "oom_kill");
}

}  // namespace zerofarm::sandbox
