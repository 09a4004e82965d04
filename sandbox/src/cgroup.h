// MemoryCgroup: one sandbox's memory cgroup (v2 or v1), created under the directory the host
// probe found writable, with a hard limit and no swap; removed by the destructor once its
// processes are gone (it waits for the kernel to let go of them). Never reused for a second
// run: its peak and OOM count are one run's. Move-only.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>

#include "zerofarm/base/status.h"
#include "zerofarm/sandbox/host_layers.h"

namespace zerofarm::sandbox {

class MemoryCgroup {
 public:
  // Errors: "cgroup" with the failing file and errno.
  static Result<MemoryCgroup> Create(const HostLayers& host, uint64_t limit_bytes);

  MemoryCgroup(MemoryCgroup&& other) noexcept;
  MemoryCgroup& operator=(MemoryCgroup&& other) noexcept;
  MemoryCgroup(const MemoryCgroup&) = delete;
  MemoryCgroup& operator=(const MemoryCgroup&) = delete;
  ~MemoryCgroup();

  // Changes the hard limit (and memory+swap on v1); nothing to do when it is already so.
  // Errors: "cgroup" with the failing file and errno.
  Status SetLimit(uint64_t limit_bytes);
  Status AddProcess(pid_t pid) const;
  // Peak usage in bytes (0 when the kernel does not say).
  uint64_t PeakBytes() const;
  // How many times the OOM killer killed a process of this cgroup.
  uint64_t OomKills() const;
  bool v2() const { return v2_; }

 private:
  MemoryCgroup(std::string dir, bool v2) : dir_(std::move(dir)), v2_(v2) {}
  void Remove() noexcept;

  std::string dir_;
  bool v2_ = false;
  std::optional<uint64_t> limit_;  // none: not set yet
};

}  // namespace zerofarm::sandbox
