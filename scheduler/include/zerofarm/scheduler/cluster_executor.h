// The cluster executor: runs each task on a storage node that holds its input (zerofarm proxy).
//
// Placement: a task goes to a live node among the ring's replica holders of TaskSpec::placement,
// the least loaded first (tasks this executor has running there over the node's task slots, as
// its heartbeat reports them), never past a node's slots: when every holder is full the task
// waits for one. Only when no holder is alive does it go to any live node (which then reads
// its input from the replicas over the network).
// The node runs it (RUN_TASK, storage/node_protocol.h) and the executor polls it (TASK_STATUS)
// until it ends. A node that stops answering heartbeats (ClusterOptions::dead_after), or that
// no longer knows the task (it restarted), loses the task to another holder; that costs the
// task no retry, and the moved task takes its holders' next free slot before any task that has
// not started yet. A straggler, running longer than straggler_factor times the median of its
// job's finished tasks (and at least straggler_min), gets a backup copy on another holder with
// a free slot; the first copy to finish wins and the other is cancelled.
// A restarted proxy re-sends RUN_TASK with the same task id: a node still running it (or
// holding its successful result) attaches instead of starting it again.
// Thread safety: Run may be called from many threads at once.
#pragma once

#include <chrono>
#include <memory>

#include "zerofarm/scheduler/task_executor.h"
#include "zerofarm/storage/cluster_store.h"

namespace zerofarm::scheduler {

struct ClusterExecutorOptions {
  std::chrono::milliseconds poll_interval{250};
  double straggler_factor = 3.0;
  std::chrono::milliseconds straggler_min{15000};
  size_t straggler_min_peers = 2;  // finished tasks of the job before judging stragglers
};

// Counters for /metrics and tests.
struct ClusterExecutorStats {
  uint64_t tasks_started = 0;      // RUN_TASK accepted (copies included)
  uint64_t tasks_lost = 0;         // given up on a dead or restarted node and moved
  uint64_t backups_started = 0;    // straggler copies
  uint64_t backups_won = 0;        // a backup finished first
  uint64_t remote_placements = 0;  // run on a node that holds no replica of the input
};

class ClusterExecutor : public TaskExecutor {
 public:
  virtual ClusterExecutorStats stats() const = 0;
};

// `cluster` must outlive the executor. Waits up to a few seconds for the nodes' first
// heartbeats so that slots() is known.
Result<std::unique_ptr<ClusterExecutor>> MakeClusterExecutor(
    storage::ClusterStore& cluster, const ClusterExecutorOptions& options = {});

}  // namespace zerofarm::scheduler
