// TaskSlots: how many programs run at once in a process, and who goes next.
#pragma once

#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <tuple>

namespace zerofarm::scheduler {

// Task slots shared by every job of a process, video and exec alike (zerofarm serve runs many
// jobs at once and never more than `capacity` programs in all). The order is explicit:
//   1. a lower `rank` first: 0 is the head of a video's timeline (a new upload's first
//      segments pass everything else), 1 every other task, video or exec;
//   2. within a rank, tenants take turns (start-time fair queuing: a tenant's waiter is stamped
//      on arrival with the turn after its tenant's previous waiter, never earlier than the turn
//      being served, so a tenant with a thousand queued tasks and one with a single task
//      alternate);
//   3. then first come, first served.
// Thread-safe.
class TaskSlots {
 public:
  explicit TaskSlots(int capacity) : capacity_(capacity < 1 ? 1 : capacity) {}
  // Blocks until a slot is free and no waiter ranks before this one.
  void Acquire(int rank = 1, const std::string& tenant = {}) {
    std::unique_lock lock(mu_);
    // Stamped at arrival: a tenant's waiters take consecutive turns from the current one.
    auto& next = next_turn_[tenant];
    const uint64_t turn = std::max(turn_, next);
    next = turn + 1;
    const Waiter me{rank, turn, next_ticket_++};
    waiters_.insert(me);
    cv_.wait(lock, [&] { return in_use_ < capacity_ && *waiters_.begin() == me; });
    waiters_.erase(waiters_.begin());
    ++in_use_;
    turn_ = std::max(turn_, turn);
    if (next_turn_.size() > 1024)  // tenants at or behind the current turn need no entry
      std::erase_if(next_turn_, [this](const auto& e) { return e.second <= turn_; });
    cv_.notify_all();  // the next waiter may fit too
  }
  void Release() {
    std::lock_guard lock(mu_);
    --in_use_;
    cv_.notify_all();
  }
  int capacity() const { return capacity_; }
  int in_use() const {
    std::lock_guard lock(mu_);
    return in_use_;
  }
  int waiting() const {
    std::lock_guard lock(mu_);
    return static_cast<int>(waiters_.size());
  }

 private:
  using Waiter = std::tuple<int, uint64_t, uint64_t>;  // rank, turn, ticket
  const int capacity_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  int in_use_ = 0;
  uint64_t next_ticket_ = 0;
  uint64_t turn_ = 0;                          // the turn of the last grant
  std::map<std::string, uint64_t> next_turn_;  // by tenant
  std::set<Waiter> waiters_;
};

// Holds one slot of `slots` (when not null) for its lifetime.
class SlotHold {
 public:
  SlotHold(TaskSlots* slots, int rank, const std::string& tenant) : slots_(slots) {
    if (slots_) slots_->Acquire(rank, tenant);
  }
  ~SlotHold() {
    if (slots_) slots_->Release();
  }
  SlotHold(const SlotHold&) = delete;
  SlotHold& operator=(const SlotHold&) = delete;

 private:
  TaskSlots* slots_;
};

}  // namespace zerofarm::scheduler
