// The storage-node daemon (node_server.h): I/O thread, bounded queue, request threads, task
// threads, and the threads that run the replicator (replicator.h) and the auditor (auditor.h).
#include "zerofarm/storage/node_server.h"

#include <sys/statvfs.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <exception>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <vector>

#include "auditor.h"
#include "node_objects.h"
#include "replicator.h"
#include "zerofarm/storage/cluster_client.h"
#include "zerofarm/storage/cluster_store.h"
#include "zerofarm/storage/store.h"
#include "zmq_frames.h"

namespace zerofarm::storage {

Result<std::string> TaskStream::ReadInput(const std::atomic<bool>& cancel) {
  std::unique_lock lock(mu_);
  for (;;) {
    if (input_failed_)
      return Status::Error(ErrorCode::kCancelled, "the task's caller stopped its input");
    if (!input_.empty()) break;
    if (input_end_) return std::string();
    if (cancel.load()) return Status::Error(ErrorCode::kCancelled, "the task was cancelled");
    if (std::chrono::steady_clock::now() - touched_ > kCallerSilence)
      return Status::Error(ErrorCode::kDeadlineExceeded,
                           "the task's caller fell silent while its input was still to come");
    cv_.wait_for(lock, std::chrono::milliseconds(200));
  }
  std::string piece;
  piece.swap(input_);
  cv_.notify_all();
  return piece;
}

void TaskStream::WriteOutput(std::string_view bytes) {
  std::lock_guard lock(mu_);
  output_.append(bytes);
}

Status TaskStream::AcceptInput(uint64_t offset, std::string_view payload, bool end, bool failed,
                               uint64_t* received) {
  std::lock_guard lock(mu_);
  touched_ = std::chrono::steady_clock::now();
  *received = input_received_;
  if (offset > input_received_)
    return Status::Error(ErrorCode::kInvalidArgument, "input from byte " + std::to_string(offset) +
                                                          " leaves a gap after " +
                                                          std::to_string(input_received_));
  const uint64_t known = input_received_ - offset;  // a resend of what is here already
  if (known < payload.size()) {
    if (input_.size() > kMaxBufferedInput)
      return Status::Error(ErrorCode::kBusy, "the task has not read its input yet");
    input_.append(payload.substr(known));
    input_received_ += payload.size() - known;
  }
  *received = input_received_;
  if (end) input_end_ = true;
  if (failed) input_failed_ = true;
  cv_.notify_all();
  return Status::Ok();
}

std::string TaskStream::OutputFrom(uint64_t from, size_t max, uint64_t* written) {
  std::lock_guard lock(mu_);
  touched_ = std::chrono::steady_clock::now();
  *written = output_base_ + output_.size();
  if (from > output_base_) {
    const uint64_t drop = std::min<uint64_t>(from - output_base_, output_.size());
    output_.erase(0, drop);
    output_base_ += drop;
  }
  if (from < output_base_) return std::string();  // dropped already: the caller has it
  return output_.substr(0, max);
}

void TaskStream::Touch() {
  std::lock_guard lock(mu_);
  touched_ = std::chrono::steady_clock::now();
}

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Per-pass request budget for REPLICATE/AUDIT-driven peer calls is the node's peer_timeout.
constexpr size_t kMaxDrainPerPoll = 256;    // messages handled per wake-up before polling again
constexpr size_t kMaxFinishedTasks = 4096;  // finished tasks remembered at most (oldest dropped)

bool IsTaskOp(Op op) {
  return op == Op::kRunTask || op == Op::kTaskStatus || op == Op::kCancelTask ||
         op == Op::kTaskInput;
}

// One run of a task. Shared between the task table and the run's thread.
struct TaskRun {
  TaskState state = TaskState::kRunning;  // then kDone or kFailed
  std::string result;                     // the result JSON once finished
  std::atomic<bool> cancel{false};
  bool exited = false;  // the thread has finished with the run (it may still be unwinding)
  bool light = false;   // runs in the light slot (Request::light), not a task slot
  TaskStream stream;    // TASK_INPUT's bytes in, output 0 out (streamed tasks only)
  Clock::time_point finished;
  uint64_t sequence = 0;  // the key of a finished run in the finished order
};

// The result JSON of a failed task.
std::string ErrorJson(const Status& status) {
  return nlohmann::json{{"error", {{"code", status.code_name()}, {"message", status.message()}}}}
      .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

struct QueuedRequest {
  std::vector<zmq::message_t> envelope;
  Request request;
  Clock::time_point deadline;
};

void Log(const std::string& line) { std::fprintf(stderr, "zerofarm node: %s\n", line.c_str()); }

class NodeServerImpl final : public NodeServer {
 public:
  NodeServerImpl(const NodeOptions& options, std::shared_ptr<LiveRing> ring,
                 std::unique_ptr<Store> store)
      : options_(options),
        live_(std::move(ring)),
        first_ring_(live_->Get()),
        self_(live_->self()),
        store_(std::move(store)),
        objects_(store_.get(), first_ring_.get()),
        context_(1),
        router_(context_, zmq::socket_type::router),
        zap_(context_, zmq::socket_type::rep),
        replies_(context_, zmq::socket_type::pull) {}

  Status Bind() {
    try {
      if (options_.key) {
        // The ZAP handler's socket is bound before the node's: no handshake is ever decided
        // without it (libzmq admits every CURVE client when no handler is bound).
        zap_.set(zmq::sockopt::linger, 0);
        zap_.bind("inproc://zeromq.zap.01");
        router_.set(zmq::sockopt::zap_domain, "zerofarm");
        router_.set(zmq::sockopt::curve_server, true);
        router_.set(zmq::sockopt::curve_secretkey, options_.key->primary().secret_key);
      }
      router_.set(zmq::sockopt::linger, 0);
      router_.set(zmq::sockopt::maxmsgsize,
                  static_cast<int64_t>(kMaxPayloadBytes + kMaxHeaderBytes));
      router_.bind(options_.bind);
      replies_.set(zmq::sockopt::linger, 0);
      replies_inproc_ = "inproc://zerofarm-node-replies";
      replies_.bind(replies_inproc_);
    } catch (const zmq::error_t& e) {
      return Status::Error(ErrorCode::kIoError, "cannot bind " + options_.bind + ": " + e.what());
    }
    ClusterOptions peer;
    peer.request_timeout = options_.peer_timeout;
    peer.heartbeats = false;
    peer.self_endpoint = self_;
    peer.key = options_.key;
    auto client = ClusterClient::Create(live_, peer);
    if (!client.ok()) return client.status();
    peers_ = std::move(*client);
    replicator_ = std::make_unique<Replicator>(Background());
    auditor_ = std::make_unique<Auditor>(Background());
    return Status::Ok();
  }

  uint32_t node_id() const override { return NodeIdIn(*live_->Get(), self_).value_or(0); }
  std::string endpoint() const override { return router_.get(zmq::sockopt::last_endpoint); }

  void Stop() override {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    background_cv_.notify_all();
    std::lock_guard lock(tasks_mu_);
    for (auto& t : task_threads_) t.run->cancel = true;
  }

  Status Run() override {
    if (options_.key) threads_.emplace_back([this] { ZapLoop(); });
    if (options_.disk_reserve_bytes > 0) threads_.emplace_back([this] { DiskLoop(); });
    for (uint32_t i = 0; i < options_.request_threads; ++i)
      threads_.emplace_back([this] { ServeRequests(); });
    if (options_.replicate_interval.count() > 0)
      threads_.emplace_back([this] { ReplicatorLoop(); });
    if (options_.audit_bytes_per_second > 0) threads_.emplace_back([this] { AuditorLoop(); });
    Status result;
    try {
      IoLoop();
    } catch (const zmq::error_t& e) {
      result = Status::Error(ErrorCode::kIoError, std::string("node socket: ") + e.what());
    }
    Stop();
    for (auto& t : threads_) t.join();
    threads_.clear();
    StopTasks();
    return result;
  }

 private:
  bool stopping() {
    std::lock_guard lock(mu_);
    return stopping_;
  }

  NodeLoad Load() {
    std::lock_guard lock(mu_);
    return LoadLocked();
  }

  NodeLoad LoadLocked() const {
    return NodeLoad{static_cast<uint32_t>(queue_.size()),
                    options_.max_queue,
                    options_.request_threads,
                    active_,
                    TaskSlots(),
                    tasks_running_.load(),
                    disk_full_.load(),
                    disk_free_.load()};
  }

  // --- Free space: a full disk is a state. ---

  // Free bytes for unprivileged writers on the store's volume; nullopt when statvfs fails.
  std::optional<uint64_t> FreeBytes() const {
    struct statvfs st {};
    if (::statvfs(options_.data_dir.c_str(), &st) != 0) return std::nullopt;
    return static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
  }

  // Measures the volume and moves between "taking writes" and "disk full" (with a margin of
  // an eighth of the reserve, so a volume at the edge does not flap), logging each change.
  void UpdateDisk() {
    if (options_.disk_reserve_bytes == 0) return;
    const auto free = FreeBytes();
    if (!free) return;
    disk_free_ = *free;
    const uint64_t reserve = options_.disk_reserve_bytes;
    std::lock_guard lock(disk_mu_);
    if (!disk_full_ && *free < reserve) {
      disk_full_ = true;
      Log("disk full: " + std::to_string(*free >> 20) + " MiB free on " + options_.data_dir +
          ", below the reserve of " + std::to_string(reserve >> 20) +
          " MiB: refusing writes (\"disk_full\"); reads and audits go on");
    } else if (disk_full_ && *free >= reserve + reserve / 8) {
      disk_full_ = false;
      Log("disk space is back: " + std::to_string(*free >> 20) + " MiB free on " +
          options_.data_dir + ": taking writes again");
    }
  }

  // A write of `bytes` must leave the reserve free, counting the copy in the write-ahead log
  // and the one a memtable flush writes.
  Status CheckSpace(uint64_t bytes) {
    if (options_.disk_reserve_bytes == 0) return Status::Ok();
    UpdateDisk();
    const uint64_t free = disk_free_.load();
    if (!disk_full_ && free >= options_.disk_reserve_bytes + 2 * bytes) return Status::Ok();
    return Status::Error(ErrorCode::kDiskFull,
                         "the node's volume has " + std::to_string(free >> 20) +
                             " MiB free, at or below its reserve of " +
                             std::to_string(options_.disk_reserve_bytes >> 20) +
                             " MiB: no writes until space returns");
  }

  void DiskLoop() {
    while (true) {
      UpdateDisk();
      std::unique_lock lock(mu_);
      if (background_cv_.wait_for(lock, std::chrono::seconds(1), [&] { return stopping_; })) return;
    }
  }

  uint32_t TaskSlots() const { return options_.task_handler ? options_.task_slots : 0; }

  void SendToRouter(std::vector<zmq::message_t>& envelope, const Reply& reply) {
    std::vector<zmq::message_t> parts;
    for (auto& e : envelope) parts.emplace_back(std::move(e));
    for (const auto& f : EncodeReply(reply)) parts.emplace_back(f.data(), f.size());
    try {
      // A gone or slow client must not stall the node: drop instead of waiting.
      (void)zmq::send_multipart(router_, parts, zmq::send_flags::dontwait);
    } catch (const zmq::error_t&) {
    }
  }

  void IoLoop() {
    while (!stopping()) {
      zmq::pollitem_t items[] = {{static_cast<void*>(router_), 0, ZMQ_POLLIN, 0},
                                 {static_cast<void*>(replies_), 0, ZMQ_POLLIN, 0}};
      try {
        zmq::poll(items, 2, milliseconds(100));
      } catch (const zmq::error_t& e) {
        if (e.num() == EINTR) continue;
        throw;
      }
      if (items[1].revents & ZMQ_POLLIN) ForwardReplies();
      if (items[0].revents & ZMQ_POLLIN) TakeRequests();
    }
  }

  void ForwardReplies() {
    for (size_t n = 0; n < kMaxDrainPerPoll; ++n) {
      std::vector<zmq::message_t> parts;
      if (!zmq::recv_multipart(replies_, std::back_inserter(parts), zmq::recv_flags::dontwait))
        return;
      try {
        (void)zmq::send_multipart(router_, parts, zmq::send_flags::dontwait);
      } catch (const zmq::error_t&) {
      }
    }
  }

  void TakeRequests() {
    for (size_t n = 0; n < kMaxDrainPerPoll; ++n) {
      std::vector<zmq::message_t> parts;
      if (!zmq::recv_multipart(router_, std::back_inserter(parts), zmq::recv_flags::dontwait))
        return;
      const auto arrived = Clock::now();
      // Envelope: the routing id and every frame up to the empty delimiter (when there is one).
      size_t body = 1;
      for (size_t i = 1; i < parts.size(); ++i)
        if (parts[i].size() == 0) {
          body = i + 1;
          break;
        }
      std::vector<zmq::message_t> envelope;
      for (size_t i = 0; i < body && i < parts.size(); ++i) envelope.push_back(std::move(parts[i]));
      std::vector<std::string_view> frames;
      for (size_t i = body; i < parts.size(); ++i) frames.push_back(parts[i].to_string_view());

      Reply reply;
      reply.node = self_;
      auto request = DecodeRequest(frames);
      if (!request.ok()) {
        reply.id = PeekRequestId(frames);
        reply.code = request.status().code();
        reply.message = request.status().message();
        SendToRouter(envelope, reply);
        continue;
      }
      reply.id = request->id;
      if (request->op == Op::kPing) {  // heartbeats never wait behind the queue
        reply.load = Load();
        reply.ring_hash = live_->hash();
        SendToRouter(envelope, reply);
        continue;
      }
      if (IsTaskOp(request->op)) {  // never blocks: task threads run the tasks
        HandleTask(*request, reply);
        SendToRouter(envelope, reply);
        continue;
      }
      std::unique_lock lock(mu_);
      if (queue_.size() >= options_.max_queue) {
        reply.load = LoadLocked();
        lock.unlock();
        reply.code = ErrorCode::kBusy;
        reply.message = "the request queue is full (" + std::to_string(options_.max_queue) + ")";
        SendToRouter(envelope, reply);
        continue;
      }
      queue_.push_back(QueuedRequest{std::move(envelope), std::move(*request),
                                     arrived + milliseconds(request->timeout_ms)});
      lock.unlock();
      cv_.notify_one();
    }
  }

  // ZAP (RFC 27): libzmq asks here about every CURVE handshake on the node's socket. A client
  // is admitted when its public key is one of the farm key's; a refused one completes no
  // connection, so nothing it sends is ever read. Refusals are logged, at most one line per
  // 10 s (a refused client reconnects every few hundred ms).
  void ZapLoop() {
    uint64_t refused = 0;
    Clock::time_point last_log{};
    while (!stopping()) {
      zmq::pollitem_t item{static_cast<void*>(zap_), 0, ZMQ_POLLIN, 0};
      try {
        if (zmq::poll(&item, 1, milliseconds(100)) <= 0) continue;
      } catch (const zmq::error_t& e) {
        if (e.num() == EINTR) continue;
        Log(std::string("ZAP handler: ") + e.what());
        return;
      }
      std::vector<zmq::message_t> request;
      if (!zmq::recv_multipart(zap_, std::back_inserter(request), zmq::recv_flags::dontwait))
        continue;
      // version, request id, domain, address, routing id, mechanism, credentials...
      std::string status = "400";
      std::string text = "not a farm key";
      std::string user;
      std::string address = request.size() > 3 ? request[3].to_string() : "?";
      if (request.size() >= 7 && request[0].to_string_view() == "1.0" &&
          request[5].to_string_view() == "CURVE" && request[6].size() == 32) {
        char z85[41] = {};
        zmq_z85_encode(z85, static_cast<const uint8_t*>(request[6].data()), 32);
        if (options_.key->Admits(z85)) {
          status = "200";
          text = "OK";
          user = z85;
        }
      } else {
        text = "CURVE only";
      }
      if (status != "200") {
        ++refused;
        if (Clock::now() - last_log > std::chrono::seconds(10)) {
          Log("refused a connection from " + address + ": " + text + " (" +
              std::to_string(refused) + " refused so far)");
          last_log = Clock::now();
        }
      }
      std::vector<zmq::message_t> reply;
      reply.emplace_back(std::string_view("1.0"));
      reply.emplace_back(request.size() > 1 ? request[1].to_string_view() : std::string_view());
      reply.emplace_back(std::string_view(status));
      reply.emplace_back(std::string_view(text));
      reply.emplace_back(std::string_view(user));
      reply.emplace_back(std::string_view());
      try {
        (void)zmq::send_multipart(zap_, reply);
      } catch (const zmq::error_t& e) {
        Log(std::string("ZAP handler: ") + e.what());
      }
    }
  }

  // A request thread: answers queued requests until the node stops.
  void ServeRequests() {
    zmq::socket_t push(context_, zmq::socket_type::push);
    push.set(zmq::sockopt::linger, 0);
    push.connect(replies_inproc_);
    while (true) {
      QueuedRequest queued;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (stopping_) return;  // queued requests are dropped; their clients time out
        queued = std::move(queue_.front());
        queue_.pop_front();
        ++active_;
      }
      Reply reply;
      reply.id = queued.request.id;
      reply.node = self_;
      if (Clock::now() > queued.deadline) {
        reply.code = ErrorCode::kDeadlineExceeded;
        reply.message = "the request waited past its deadline in the queue";
      } else {
        Handle(queued.request, reply);
      }
      {
        std::lock_guard lock(mu_);
        --active_;
      }
      std::vector<zmq::message_t> parts;
      for (auto& e : queued.envelope) parts.emplace_back(std::move(e));
      for (const auto& f : EncodeReply(reply)) parts.emplace_back(f.data(), f.size());
      try {
        (void)zmq::send_multipart(push, parts);
      } catch (const zmq::error_t&) {
      }
    }
  }

  // A write's timestamp may run ahead of this node's clock by max_clock_skew at most.
  Status CheckClock(const Request& r) const {
    const int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
    const int64_t allowance =
        std::chrono::duration_cast<std::chrono::nanoseconds>(options_.max_clock_skew).count();
    if (r.ts <= now || r.ts - now <= allowance) return Status::Ok();
    const int64_t ahead_s = (r.ts - now) / 1000000000;
    Log(std::string("refused a ") + OpName(r.op) + " of '" + (r.name.empty() ? r.prefix : r.name) +
        "' stamped " + std::to_string(ahead_s) + " s ahead of this node's clock");
    return Status::Error(ErrorCode::kClockSkew,
                         std::string(OpName(r.op)) + " stamped " + std::to_string(ahead_s) +
                             " s ahead of this node's clock (allowance " +
                             std::to_string(options_.max_clock_skew.count() / 1000) + " s)");
  }

  static void SetError(Reply& reply, const Status& status) {
    reply.code = status.code();
    reply.message = status.message();
  }

  void Handle(const Request& r, Reply& reply) {
    switch (r.op) {
      case Op::kPing:
        reply.load = Load();
        reply.ring_hash = live_->hash();
        return;
      case Op::kPut: {
        if (Status s = CheckClock(r); !s.ok()) return SetError(reply, s);
        if (Status s = CheckSpace(r.payload.size()); !s.ok()) return SetError(reply, s);
        auto stored = objects_.Put(r.name, r.payload, r.checksum, r.ts, r.handoff_for);
        if (!stored.ok()) return SetError(reply, stored.status());
        reply.object = *stored;
        return;
      }
      case Op::kGet: {
        auto got = objects_.Get(r.name);
        if (!got.ok()) {
          if (got.status().code() == ErrorCode::kCorrupt) Log(got.status().message());
          return SetError(reply, got.status());
        }
        reply.object = std::move(got->first);
        reply.payload = std::move(got->second);
        return;
      }
      case Op::kHead: {
        auto head = objects_.Head(r.name);
        if (!head.ok()) return SetError(reply, head.status());
        reply.object = *head;
        return;
      }
      case Op::kDelete: {
        if (Status s = CheckClock(r); !s.ok()) return SetError(reply, s);
        if (!r.prefix.empty())
          if (Status s = CheckDeletePrefix(r.prefix); !s.ok()) {
            Log("refused a DELETE by prefix: " + s.message());
            return SetError(reply, s);
          }
        auto removed = objects_.Delete(r.name, r.prefix, r.ts);
        if (!removed.ok()) return SetError(reply, removed.status());
        reply.stats["removed"] = *removed;
        return;
      }
      case Op::kList: {
        if (r.partition >= first_ring_->partitions())
          return SetError(reply, Status::Error(ErrorCode::kBadMessage,
                                               "no partition " + std::to_string(r.partition)));
        auto entries = objects_.List(r.partition);
        if (!entries.ok()) return SetError(reply, entries.status());
        reply.list_hash = NodeObjects::ListHash(*entries);
        if (!r.hash_only) reply.entries = std::move(*entries);
        return;
      }
      case Op::kReplicate:
        reply.stats = replicator_->Pass().ToMap();
        return;
      case Op::kAudit:
        reply.stats = auditor_->Pass(/*bytes_per_second=*/0).ToMap();
        return;
      case Op::kRunTask:
      case Op::kTaskStatus:
      case Op::kCancelTask:
      case Op::kTaskInput:
        HandleTask(r, reply);
        return;
    }
    reply.code = ErrorCode::kUnknownOp;
  }

  // --- Tasks. ---

  struct TaskThread {
    std::shared_ptr<TaskRun> run;
    std::thread thread;
  };

  static void Describe(const TaskRun& run, Reply& reply) {
    reply.task_state = run.state;
    if (run.state != TaskState::kRunning) reply.task_result = run.result;
  }

  // RUN_TASK, TASK_STATUS, CANCEL_TASK and TASK_INPUT. Never waits for a task: callable from the
  // I/O thread, a worker or a task (through its ClusterStore's local handler).
  void HandleTask(const Request& r, Reply& reply) {
    if (TaskSlots() == 0) {
      reply.code = ErrorCode::kUnsupported;
      reply.message = "this node runs no tasks (no task slots)";
      return;
    }
    std::list<TaskThread> exited;  // joined below, outside the lock
    bool busy = false;
    {
      std::lock_guard lock(tasks_mu_);
      ReapLocked(&exited);
      PruneLocked(Clock::now());
      auto it = tasks_.find(r.task_id);
      if (r.op != Op::kRunTask) {
        if (it == tasks_.end()) {
          reply.code = ErrorCode::kNotFound;
          reply.message = "no task '" + r.task_id + "' on this node";
        } else {
          TaskRun& run = *it->second;
          if (r.op == Op::kCancelTask && run.state == TaskState::kRunning) {
            run.cancel = true;
            reply.message = "cancel requested";
          }
          run.stream.Touch();
          if (r.op == Op::kTaskInput && run.state == TaskState::kRunning) {
            uint64_t received = 0;
            Status s = run.stream.AcceptInput(r.input_offset, r.payload, r.input_end,
                                              r.input_failed, &received);
            if (!s.ok()) SetError(reply, s);
            reply.stats["input_bytes"] = received;
          }
          if (r.op == Op::kTaskStatus && r.output_from) {
            uint64_t written = 0;
            reply.payload = run.stream.OutputFrom(*r.output_from, kMaxStreamReplyBytes, &written);
            reply.stats["output_bytes"] = written;
          }
          Describe(run, reply);
        }
      } else if (it != tasks_.end() && (it->second->state == TaskState::kRunning ||
                                        (it->second->state == TaskState::kDone && !r.rerun))) {
        Describe(*it->second, reply);  // attach to it
      } else if (tasks_closed_) {
        reply.code = ErrorCode::kBusy;
        reply.message = "the node is stopping";
      } else if (r.light ? light_running_ > 0 : tasks_running_.load() >= options_.task_slots) {
        busy = true;
        reply.code = ErrorCode::kBusy;
        reply.message = r.light ? std::string("the light task slot of the node is busy")
                                : "all " + std::to_string(options_.task_slots) +
                                      " task slots of the node are busy";
      } else {
        StartLocked(r.task_id, r.task, r.light, reply);
      }
    }
    for (auto& t : exited) t.thread.join();
    if (busy) reply.load = Load();
  }

  void StartLocked(const std::string& id, const std::string& spec, bool light, Reply& reply) {
    auto run = std::make_shared<TaskRun>();
    run->light = light;
    auto& slot = task_threads_.emplace_back();
    slot.run = run;
    try {
      slot.thread = std::thread([this, run, id, spec] { TaskMain(run, id, spec); });
    } catch (const std::system_error& e) {
      task_threads_.pop_back();
      reply.code = ErrorCode::kIoError;
      reply.message = std::string("cannot start a task thread: ") + e.what();
      return;
    }
    if (auto old = tasks_.find(id); old != tasks_.end()) finished_.erase(old->second->sequence);
    tasks_[id] = run;
    if (light)
      ++light_running_;
    else
      ++tasks_running_;
    Describe(*run, reply);
  }

  void TaskMain(const std::shared_ptr<TaskRun>& run, const std::string& id,
                const std::string& spec) {
    Result<std::string> result = Status::Error(ErrorCode::kInternal, "the task did not run");
    auto objects = TaskObjects();
    if (!objects.ok()) {
      result = objects.status().WithContext("open the task's view of the cluster");
    } else {
      try {
        result = options_.task_handler(spec, **objects, run->cancel, run->stream);
      } catch (const std::exception& e) {
        result = Status::Error(ErrorCode::kTaskException,
                               std::string("the task handler threw: ") + e.what());
      } catch (...) {
        result = Status::Error(ErrorCode::kTaskException,
                               "the task handler threw a non-standard exception");
      }
    }
    if (!result.ok()) Log("task '" + id + "' failed: " + result.status().ToString());
    std::lock_guard lock(tasks_mu_);
    run->state = result.ok() ? TaskState::kDone : TaskState::kFailed;
    run->result = result.ok() ? std::move(*result) : ErrorJson(result.status());
    run->finished = Clock::now();
    run->exited = true;
    if (run->light)
      --light_running_;
    else
      --tasks_running_;
    if (auto it = tasks_.find(id); it != tasks_.end() && it->second == run) {
      run->sequence = ++finish_sequence_;
      finished_[run->sequence] = id;
    }
    PruneLocked(run->finished);
  }

  // Moves the threads of runs that have finished out of task_threads_, to be joined.
  void ReapLocked(std::list<TaskThread>* exited) {
    for (auto it = task_threads_.begin(); it != task_threads_.end();) {
      auto next = std::next(it);
      if (it->run->exited) exited->splice(exited->end(), task_threads_, it);
      it = next;
    }
  }

  // Forgets finished runs past task_retention, and the oldest beyond kMaxFinishedTasks.
  void PruneLocked(Clock::time_point now) {
    while (!finished_.empty()) {
      auto oldest = finished_.begin();
      auto it = tasks_.find(oldest->second);
      if (it != tasks_.end() && finished_.size() <= kMaxFinishedTasks &&
          now - it->second->finished < options_.task_retention)
        break;
      if (it != tasks_.end() && it->second->sequence == oldest->first) tasks_.erase(it);
      finished_.erase(oldest);
    }
  }

  // The Store the task handlers see, created at the first task: the cluster through a
  // ClusterStore whose requests for this node run Handle() in-process.
  Result<Store*> TaskObjects() {
    std::lock_guard lock(task_store_mu_);
    if (!task_store_) {
      ClusterStoreOptions options;
      options.meta = nullptr;
      options.cluster.local_node = node_id();
      options.cluster.local_handler = [this](const Request& request) {
        Reply reply;
        reply.id = request.id;
        reply.node = self_;
        Handle(request, reply);
        return reply;
      };
      // Heartbeats let a task's reads and writes skip peers that are down instead of waiting
      // for peer_timeout on each of them.
      options.cluster.heartbeats = true;
      options.cluster.request_timeout = options_.peer_timeout;
      options.cluster.key = options_.key;
      auto created = ClusterStore::Create(live_, options);
      if (!created.ok()) return created.status();
      task_store_ = std::move(*created);
    }
    return static_cast<Store*>(task_store_.get());
  }

  // Closes the task table to new runs, cancels every running task and joins its thread.
  void StopTasks() {
    std::list<TaskThread> threads;
    {
      std::lock_guard lock(tasks_mu_);
      tasks_closed_ = true;
      for (auto& t : task_threads_) t.run->cancel = true;
      threads.swap(task_threads_);
    }
    for (auto& t : threads) t.thread.join();
    std::lock_guard lock(task_store_mu_);
    task_store_.reset();
  }

  void ReplicatorLoop() {
    while (true) {
      {
        std::unique_lock lock(mu_);
        if (background_cv_.wait_for(lock, options_.replicate_interval, [&] { return stopping_; }))
          return;
      }
      const ReplicationStats stats = replicator_->Pass();
      if (stats.pushed + stats.handed_home > 0)
        Log("replicator: pushed " + std::to_string(stats.pushed) + ", handed home " +
            std::to_string(stats.handed_home));
    }
  }

  void AuditorLoop() {
    while (true) {
      auditor_->Pass(options_.audit_bytes_per_second);
      std::unique_lock lock(mu_);
      if (background_cv_.wait_for(lock, std::chrono::seconds(10), [&] { return stopping_; }))
        return;
    }
  }

  NodeBackground Background() {
    return NodeBackground{*live_,
                          self_,
                          objects_,
                          *peers_,
                          Log,
                          [this] { return stopping(); },
                          [this](Clock::time_point until) {
                            std::unique_lock lock(mu_);
                            return background_cv_.wait_until(lock, until,
                                                             [&] { return stopping_; });
                          }};
  }

  const NodeOptions options_;
  const std::shared_ptr<LiveRing> live_;
  // The ring at start: it files objects by partition (the part_power never changes live).
  const std::shared_ptr<const Ring> first_ring_;
  const std::string self_;
  std::unique_ptr<Store> store_;
  NodeObjects objects_;
  std::unique_ptr<ClusterClient> peers_;

  zmq::context_t context_;
  zmq::socket_t router_;   // the I/O thread's
  zmq::socket_t zap_;      // the ZAP handler's (bound only with a farm key)
  zmq::socket_t replies_;  // request threads' replies, forwarded by the I/O thread
  std::string replies_inproc_;

  std::mutex mu_;                          // queue_, active_, stopping_
  std::condition_variable cv_;             // request threads wait here for requests
  std::condition_variable background_cv_;  // the replicator and auditor wait here
  std::deque<QueuedRequest> queue_;
  uint32_t active_ = 0;
  bool stopping_ = false;
  std::vector<std::thread> threads_;

  std::atomic<bool> disk_full_{false};
  std::atomic<uint64_t> disk_free_{0};
  std::mutex disk_mu_;  // state changes of disk_full_ (and their log lines)

  std::unique_ptr<Replicator> replicator_;  // made once peers_ exists
  std::unique_ptr<Auditor> auditor_;

  std::mutex tasks_mu_;  // tasks_, finished_, task_threads_, tasks_closed_, the runs' fields
  std::unordered_map<std::string, std::shared_ptr<TaskRun>> tasks_;  // by task_id
  std::map<uint64_t, std::string> finished_;  // finished runs in tasks_, oldest first
  uint64_t finish_sequence_ = 0;
  std::list<TaskThread> task_threads_;  // every task thread not joined yet
  bool tasks_closed_ = false;           // Run() is ending: no new task threads
  std::atomic<uint32_t> tasks_running_{0};
  uint32_t light_running_ = 0;  // guarded by tasks_mu_

  // Last: destroyed first, as its local handler calls into this node.
  std::mutex task_store_mu_;
  std::unique_ptr<Store> task_store_;
};

}  // namespace

Result<std::unique_ptr<NodeServer>> NodeServer::Create(const NodeOptions& options,
                                                       const Ring& ring) {
  return Create(options, std::make_shared<LiveRing>(
                             ring, options.advertise.empty() ? options.bind : options.advertise));
}

Result<std::unique_ptr<NodeServer>> NodeServer::Create(const NodeOptions& options,
                                                       std::shared_ptr<LiveRing> live) {
  if (options.request_threads == 0)
    return Status::Error(ErrorCode::kInvalidArgument, "request_threads must be >= 1");
  const std::string self = options.advertise.empty() ? options.bind : options.advertise;
  if (live->self() != self)
    return Status::Error(ErrorCode::kInvalidArgument,
                         "the live ring must be made for this node's endpoint " + self);
  const auto ring = live->Get();
  std::optional<uint32_t> id = NodeIdIn(*ring, self);
  std::string known;
  for (const auto& node : ring->nodes()) known += (known.empty() ? "" : ", ") + node.endpoint;
  if (!id)
    return Status::Error(ErrorCode::kInvalidArgument,
                         "endpoint " + self + " is not a node of the ring (the ring has: " + known +
                             "); use --advertise ENDPOINT when " + "binding another address");
  Options store_options;
  store_options.dir = options.data_dir;
  auto store = Store::Open(store_options);
  if (!store.ok()) return store.status().WithContext("open the node's store");
  auto server = std::make_unique<NodeServerImpl>(options, std::move(live), std::move(*store));
  ZF_RETURN_IF_ERROR(server->Bind());
  return std::unique_ptr<NodeServer>(std::move(server));
}

}  // namespace zerofarm::storage
