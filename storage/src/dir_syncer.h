// DirSyncer: fsyncs directories on a thread of its own, so that making a new file's directory
// entry durable overlaps with writing and syncing the file's data instead of following it.
// Private to storage/. Thread-safe; must outlive every future it returned unless they are
// dropped. Destruction finishes the queued syncs first.
//
// Requests for one directory that are queued when its fsync starts share that fsync: each was
// made after its entry was created, so one fsync that starts later covers them all.
#pragma once

#include <condition_variable>
#include <deque>
#include <filesystem>
#include <future>
#include <mutex>
#include <thread>

#include "zerofarm/base/status.h"

namespace zerofarm::storage {

class DirSyncer {
 public:
  DirSyncer();
  ~DirSyncer();
  DirSyncer(const DirSyncer&) = delete;
  DirSyncer& operator=(const DirSyncer&) = delete;

  // Queues an fsync of `dir` that starts after this call, so it covers every entry created in
  // `dir` before it. The future holds its outcome ("io_error" naming the directory on failure).
  std::future<Status> Sync(std::filesystem::path dir);

 private:
  struct Request {
    std::filesystem::path dir;
    std::promise<Status> done;
  };
  void Run();

  std::mutex mu_;
  std::condition_variable ready_;
  std::deque<Request> queue_;  // guarded by mu_
  bool stopping_ = false;      // guarded by mu_
  std::thread thread_;         // last: starts once the members above exist
};

}  // namespace zerofarm::storage
