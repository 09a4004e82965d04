// NodeServer: the storage-node daemon behind `zerofarm node`. One ROUTER socket bound to the
// node's endpoint takes requests in the node protocol (node_protocol.h); PINGs, the task ops
// (RUN_TASK, TASK_STATUS, CANCEL_TASK, TASK_INPUT: tasks run on their own threads) and malformed
// messages are answered at once by the I/O thread, everything else waits in a bounded queue for a
// small pool of request threads. A request arriving while the queue is full is answered "busy" at
// once (the node never stalls its callers); one whose deadline passed while queued is answered
// "deadline_exceeded" without running. Objects live in the node's own Store under Options::dir.
// Background: a replicator pushes what its peers lack (per partition, comparing listing hashes
// first, then entries) and moves handoff copies home; an auditor re-reads stored objects at a
// bounded byte rate, quarantines any whose checksum fails and fetches a good copy from a peer.
// Thread safety: Run() blocks on the calling thread; Stop() may be called from any thread (or
// a signal-waiting thread) and makes Run() return after in-flight requests finish.
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
#include <string_view>

#include "zerofarm/base/status.h"
#include "zerofarm/storage/farm_key.h"
#include "zerofarm/storage/live_ring.h"
#include "zerofarm/storage/ring.h"
#include "zerofarm/storage/store.h"

namespace zerofarm::storage {

// The streamed side of one task run: the input its caller sends with TASK_INPUT while it runs,
// and its output 0 as written, which the caller reads with TASK_STATUS's output_from. The node's
// I/O thread feeds it and the task thread reads it; thread-safe. Owned by the node's task table.
class TaskStream {
 public:
  // The caller is gone when it has neither sent input nor asked for the task's state for this
  // long: a read that waits for input then fails ("deadline_exceeded") instead of hanging.
  static constexpr std::chrono::seconds kCallerSilence{60};
  // Bytes received but not read yet beyond which TASK_INPUT is answered "busy".
  static constexpr size_t kMaxBufferedInput = size_t{16} << 20;

  // The next input bytes, waiting for them: empty once the caller ended the input; an error
  // when it said its input failed ("cancelled"), when `cancel` turns true, or when the caller
  // fell silent (kCallerSilence).
  Result<std::string> ReadInput(const std::atomic<bool>& cancel);
  // Output 0's next bytes, kept until the caller says it has them.
  void WriteOutput(std::string_view bytes);

  // The node's side. Input: `payload` starts at `offset` of the stream; a resent part is
  // skipped, a gap refused ("invalid_argument"), too much unread input refused ("busy"). Sets
  // *received to the bytes received in all.
  Status AcceptInput(uint64_t offset, std::string_view payload, bool end, bool failed,
                     uint64_t* received);
  // Output from `from` on (at most `max` bytes); what lies before `from` is dropped. Sets
  // *written to the bytes written in all.
  std::string OutputFrom(uint64_t from, size_t max, uint64_t* written);
  void Touch();  // the caller asked after the task

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::string input_;  // received, not read yet
  uint64_t input_received_ = 0;
  bool input_end_ = false, input_failed_ = false;
  std::string output_;  // written from output_base_ on
  uint64_t output_base_ = 0;
  std::chrono::steady_clock::time_point touched_ = std::chrono::steady_clock::now();
};

// Runs one task (RUN_TASK's spec) on a task thread of the node. `objects` is the cluster seen
// from this node (a ClusterStore whose requests for this node are served in-process, so its
// own replicas are read and written without the network); `cancel` turns true when the task
// is cancelled or the node stops; `stream` is the run's streamed input and output (used only by
// tasks whose spec says so). Returns the result JSON ("done") or an error ("failed").
using TaskHandler = std::function<Result<std::string>(
    std::string_view spec, Store& objects, const std::atomic<bool>& cancel, TaskStream& stream)>;

struct NodeOptions {
  std::string data_dir;          // the node's Store
  std::string bind;              // ZeroMQ endpoint to bind, e.g. tcp://0.0.0.0:7001
  std::string advertise;         // the node's endpoint in the ring (defaults to bind)
  uint32_t request_threads = 4;  // threads answering requests
  uint32_t max_queue = 64;       // queued requests beyond the busy threads; then "busy"
  // Background passes; 0 disables the periodic pass (the REPLICATE/AUDIT ops still run one).
  std::chrono::milliseconds replicate_interval{30000};
  uint64_t audit_bytes_per_second = 8 << 20;     // the auditor's read budget; 0 = auditor off
  std::chrono::milliseconds peer_timeout{5000};  // per request to a peer
  // A PUT or DELETE stamped further ahead of this node's clock than this is refused
  // ("clock_skew"): a far-future tombstone would refuse every later write it covers.
  std::chrono::milliseconds max_clock_skew{std::chrono::minutes(10)};
  // Tasks: up to task_slots run at once, each on its own thread, plus one light task
  // (Request::light) beside them; 0 or no handler = the node answers RUN_TASK "unsupported".
  // Finished tasks are remembered (for TASK_STATUS) for
  // task_retention, the newest 4096 at most.
  uint32_t task_slots = 0;
  TaskHandler task_handler;
  std::chrono::milliseconds task_retention{std::chrono::minutes(30)};
  // The farm key: the node serves CURVE with its primary key, and a ZAP handler admits only
  // clients whose key is one of the file's (others complete no connection and get no answer);
  // its peers are reached with it too. Without one the node speaks plaintext to anyone.
  std::optional<FarmKey> key;
  // Writes stop while the data dir's volume has less than this free (statvfs), well before
  // RocksDB's own limits: PUTs are answered "disk_full" (clients hand the copy to another
  // node), the state is logged and sent in every heartbeat, reads and audits go on, and writes
  // resume on their own once space returns. 0 = no check.
  uint64_t disk_reserve_bytes = uint64_t{256} << 20;
};

class NodeServer {
 public:
  // Opens the Store, checks that `advertise` (or `bind`) is a node of the ring
  // ("invalid_argument" naming the ring's endpoints when not), binds the socket ("io_error").
  static Result<std::unique_ptr<NodeServer>> Create(const NodeOptions& options, const Ring& ring);
  // The same over a live ring made for this node's endpoint (LiveRing::self() == advertise or
  // bind): the node follows its swaps (heartbeats carry the new hash, the replicator moves
  // what the new ring places elsewhere, tasks place their objects with it).
  static Result<std::unique_ptr<NodeServer>> Create(const NodeOptions& options,
                                                    std::shared_ptr<LiveRing> ring);
  virtual ~NodeServer() = default;

  virtual Status Run() = 0;  // serves until Stop()
  virtual void Stop() = 0;
  virtual uint32_t node_id() const = 0;      // this node's id in the current ring
  virtual std::string endpoint() const = 0;  // the bound endpoint (resolved port)
};

}  // namespace zerofarm::storage
