// LiveRing and RingFileWatch (live_ring.h).
#include "zerofarm/storage/live_ring.h"

#include <sys/stat.h>

#include "zerofarm/storage/node_protocol.h"

namespace zerofarm::storage {

std::optional<uint32_t> NodeIdIn(const Ring& ring, std::string_view endpoint) {
  for (const auto& n : ring.nodes())
    if (n.endpoint == endpoint) return n.id;
  return std::nullopt;
}

LiveRing::LiveRing(Ring ring, std::string self)
    : self_(std::move(self)), current_(std::make_shared<const Ring>(std::move(ring))) {
  hash_ = current_->ContentHash();
}

std::shared_ptr<const Ring> LiveRing::Get() const {
  std::lock_guard lock(mu_);
  return current_;
}

std::shared_ptr<const Ring> LiveRing::Previous() const {
  std::lock_guard lock(mu_);
  return previous_;
}

Result<RingChange> LiveRing::Replace(Ring next) {
  std::lock_guard lock(mu_);
  RingChange change;
  change.old_hash = hash_;
  change.new_hash = next.ContentHash();
  if (change.new_hash == change.old_hash) {
    change.unchanged = true;
    change.generation = generation_;
    return change;
  }
  if (next.part_power() != current_->part_power())
    return Status::Error(ErrorCode::kInvalidArgument,
                         "its part_power " + std::to_string(next.part_power()) +
                             " differs from the running ring's " +
                             std::to_string(current_->part_power()) +
                             " (stored objects are filed by partition)");
  if (!self_.empty() && !NodeIdIn(next, self_))
    return Status::Error(ErrorCode::kInvalidArgument, "it does not list this node (" + self_ + ")");
  change.moved = Ring::MovedReplicas(*current_, next);
  previous_ = current_;
  current_ = std::make_shared<const Ring>(std::move(next));
  hash_ = change.new_hash;
  change.generation = generation_.fetch_add(1) + 1;
  return change;
}

Result<RingChange> LiveRing::Reload(const std::string& path) {
  auto ring = Ring::Load(path);
  if (!ring.ok()) return ring.status();
  return Replace(std::move(*ring));
}

std::string DescribeReload(const LiveRing& live, const std::string& path,
                           const Result<RingChange>& outcome) {
  if (!outcome.ok())
    return "ring file " + path + " refused: " + outcome.status().message() + "; keeping ring " +
           ChecksumHex(live.hash());
  if (outcome->unchanged) return "ring file " + path + " unchanged";
  return "ring reloaded: " + ChecksumHex(outcome->old_hash) + " -> " +
         ChecksumHex(outcome->new_hash) + " (generation " + std::to_string(outcome->generation) +
         "), " + std::to_string(outcome->moved) + " partition replicas moved";
}

RingFileWatch::RingFileWatch(LiveRing& live, std::string path,
                             std::function<void(const std::string&)> log,
                             std::chrono::milliseconds interval)
    : live_(live), path_(std::move(path)), log_(std::move(log)), interval_(interval) {
  stamp_ = Read();
  thread_ = std::thread([this] { Loop(); });
}

RingFileWatch::~RingFileWatch() {
  {
    std::lock_guard lock(stop_mu_);
    stop_ = true;
  }
  stop_cv_.notify_all();
  thread_.join();
}

std::optional<RingFileWatch::Stamp> RingFileWatch::Read() const {
  struct stat st {};
  if (::stat(path_.c_str(), &st) != 0) return std::nullopt;
  return Stamp{static_cast<uint64_t>(st.st_ino), static_cast<uint64_t>(st.st_size),
               int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec};
}

Result<RingChange> RingFileWatch::ReloadNow() {
  std::lock_guard lock(reload_mu_);
  stamp_ = Read();
  auto outcome = live_.Reload(path_);
  log_(DescribeReload(live_, path_, outcome));
  return outcome;
}

void RingFileWatch::Loop() {
  while (true) {
    {
      std::unique_lock lock(stop_mu_);
      if (stop_cv_.wait_for(lock, interval_, [&] { return stop_; })) return;
    }
    const auto now = Read();
    bool changed = false;
    {
      std::lock_guard lock(reload_mu_);
      // A missing file (between a writer's unlink and rename, say) is no change: wait for it.
      changed = now && now != stamp_;
    }
    if (changed) (void)ReloadNow();
  }
}

}  // namespace zerofarm::storage
