// LiveRing: the ring of a running node or proxy, swapped whole while the process runs (after
// `zerofarm ring build` rewrote the ring file). Every user takes a snapshot per operation
// (`auto ring = live.Get();`) and uses only that snapshot for the operation, so one operation
// sees one consistent ring; node ids are positions in one ring and mean nothing in another
// (compare nodes across rings by endpoint). The ring replaced by the last swap is kept as
// Previous(): objects of a partition that moved may still sit only on its old holders until
// the replicators have moved them, so readers fall back to those.
// A new ring is refused (the current one stays) when its part_power differs (every stored
// object is filed under its partition: the name space cannot be re-cut live) or when it does
// not list this process's own endpoint (a node: `self`).
// RingFileWatch follows a ring file: it reloads when the file's inode, size or mtime change
// (polled once a second) and on ReloadNow() (SIGHUP), logging each outcome in one line.
// Thread safety: both classes are safe for concurrent use.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "zerofarm/base/status.h"
#include "zerofarm/storage/ring.h"

namespace zerofarm::storage {

// The id of the node with `endpoint` in `ring`, if it is there.
std::optional<uint32_t> NodeIdIn(const Ring& ring, std::string_view endpoint);

// What one accepted swap changed.
struct RingChange {
  uint64_t old_hash = 0;
  uint64_t new_hash = 0;
  uint64_t generation = 0;  // the new ring's
  int64_t moved = 0;        // partition replicas placed elsewhere (Ring::MovedReplicas)
  bool unchanged = false;   // the same ring again: nothing swapped
};

class LiveRing {
 public:
  // `self`: the endpoint every accepted ring must list (empty: no such check, a proxy).
  explicit LiveRing(Ring ring, std::string self = "");

  std::shared_ptr<const Ring> Get() const;
  // The ring the last swap replaced; null before any swap.
  std::shared_ptr<const Ring> Previous() const;
  // 1 for the first ring, +1 per accepted swap. Cheap: users compare it to notice a swap.
  uint64_t generation() const { return generation_.load(std::memory_order_acquire); }
  uint64_t hash() const { return hash_.load(std::memory_order_acquire); }
  const std::string& self() const { return self_; }

  // Swaps `next` in, unless refused ("invalid_argument": see above). The same ring again is
  // no swap (unchanged).
  Result<RingChange> Replace(Ring next);
  // Ring::Load(path), then Replace; a file that does not load is refused as Load says.
  Result<RingChange> Reload(const std::string& path);

 private:
  const std::string self_;
  mutable std::mutex mu_;
  std::shared_ptr<const Ring> current_;
  std::shared_ptr<const Ring> previous_;
  std::atomic<uint64_t> generation_{1};
  std::atomic<uint64_t> hash_{0};
};

// The log line of a reload: "ring reloaded: A -> B (generation G), N partition replicas
// moved", "ring file P unchanged", or "ring file P refused: why; keeping ring A".
std::string DescribeReload(const LiveRing& live, const std::string& path,
                           const Result<RingChange>& outcome);

class RingFileWatch {
 public:
  // Starts watching `path` (the file `live` was loaded from) every `interval`; `log` gets one
  // line per reload attempt (not called for polls that see no change).
  RingFileWatch(LiveRing& live, std::string path, std::function<void(const std::string&)> log,
                std::chrono::milliseconds interval = std::chrono::seconds(1));
  ~RingFileWatch();
  RingFileWatch(const RingFileWatch&) = delete;
  RingFileWatch& operator=(const RingFileWatch&) = delete;

  // Reloads now, whatever the file's stamp (SIGHUP); the outcome is logged and returned.
  Result<RingChange> ReloadNow();

 private:
  struct Stamp {
    uint64_t inode = 0, size = 0;
    int64_t mtime_ns = 0;
    bool operator==(const Stamp&) const = default;
  };
  std::optional<Stamp> Read() const;
  void Loop();

  LiveRing& live_;
  const std::string path_;
  const std::function<void(const std::string&)> log_;
  const std::chrono::milliseconds interval_;
  std::mutex reload_mu_;  // one reload at a time; guards stamp_
  std::optional<Stamp> stamp_;
  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace zerofarm::storage
