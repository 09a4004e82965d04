#include "dir_syncer.h"

#include <utility>
#include <vector>

#include "block_file.h"

namespace zerofarm::storage {

DirSyncer::DirSyncer() : thread_([this] { Run(); }) {}

DirSyncer::~DirSyncer() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  ready_.notify_one();
  thread_.join();
}

std::future<Status> DirSyncer::Sync(std::filesystem::path dir) {
  Request request{std::move(dir), {}};
  std::future<Status> done = request.done.get_future();
  {
    std::lock_guard lock(mu_);
    queue_.push_back(std::move(request));
  }
  ready_.notify_one();
  return done;
}

void DirSyncer::Run() {
  std::unique_lock lock(mu_);
  for (;;) {
    ready_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, and nothing left to sync
    // The oldest request, and every other one queued for the same directory.
    std::vector<Request> batch;
    batch.push_back(std::move(queue_.front()));
    queue_.pop_front();
    for (auto it = queue_.begin(); it != queue_.end();) {
      if (it->dir == batch.front().dir) {
        batch.push_back(std::move(*it));
        it = queue_.erase(it);
      } else {
        ++it;
      }
    }
    lock.unlock();
    Status synced = SyncDir(batch.front().dir);
    for (Request& request : batch) request.done.set_value(synced);
    lock.lock();
  }
}

}  // namespace zerofarm::storage
