// Task execution: where and how one worker task runs. The job engine (transcode_job.h) plans tasks
// and judges their outcomes; a TaskExecutor runs them:
//   - MakeLocalExecutor: on this machine, reading and writing a Store (zerofarm transcode and
//     serve: the embedded store);
//   - MakeClusterExecutor (cluster_executor.h): on a storage node that holds the task's input,
//     through the node's RUN_TASK operation (zerofarm proxy);
//   - RunTaskHere is what both end up calling on the machine that runs the worker (a node's
//     task handler included: MakeNodeTaskHandler).
// A task's outputs are committed to the store only when the worker exits 0; the engine checks
// the report and frame counts and retries on its own.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "zerofarm/base/status.h"
#include "zerofarm/sandbox/runner.h"
#include "zerofarm/scheduler/worker_runtime.h"
#include "zerofarm/storage/node_server.h"
#include "zerofarm/storage/store.h"

namespace zerofarm::scheduler {

struct TaskOutput {
  std::string object;      // where the channel's bytes are stored
  uint64_t max_bytes = 0;  // the channel's quota; 0 = no limit beyond the store's
};

struct TaskSpec {
  std::string id;                   // unique per job and task: "<job id>/<task>"
  std::string job;                  // the job it belongs to (straggler statistics)
  std::vector<std::string> args;    // the worker's argv[1..]
  std::vector<std::string> inputs;  // objects concatenated into the input channel
  std::vector<TaskOutput> outputs;  // output channel i = fd 3 + i
  std::string placement;            // the object whose holders should run the task
  int threads = 1;                  // encoder threads (sizes the CPU-time limit)
  std::chrono::milliseconds timeout{60000};
  bool rerun = false;  // a retry: never reuse an earlier run's result
  // Scheduling niceness of the worker, 0..19: the head of a video's timeline runs ahead of
  // the rest of the farm's work on a busy machine.
  int nice = 0;
  // A light task (a video's audio track: a small fraction of a segment's CPU, and every
  // published segment waits for it): on storage nodes it runs in the node's light slot beside
  // the task slots instead of waiting for one, and gets no straggler backup. Local executors
  // run it like any task.
  bool light = false;
  // Told each output's bytes as the worker writes them, before they are committed (the job
  // publishes the audio track while it is encoded). Called on the executor's thread, by
  // executors whose streams() is true; on a farm only output 0's bytes are told, as the node
  // hands them out (TASK_STATUS).
  std::function<void(size_t output, std::string_view bytes)> watch_output;
  // When set, the input channel's bytes come from here piece by piece (an empty piece ends
  // them, an error fails the task) instead of from `inputs`: a task fed while its input is
  // still being stored. Same rules as watch_output; on a farm the pieces are sent to the node
  // over the task's connection (TASK_INPUT), and a copy lost with its node is not started
  // again (its input was taken): Run fails "unavailable" and the caller retries from `inputs`.
  std::function<Result<std::string>()> read_input;
  // On the wire (the spec a node receives): the input arrives with TASK_INPUT, output 0 is
  // handed out with TASK_STATUS. Written from read_input / watch_output when the spec is sent.
  bool stream_input = false;
  bool stream_output = false;

  // Exec jobs: a user program runs instead of the worker, always validated and sandboxed, with
  // the input on its stdin and its stdout as output 0 (exactly one output).
  std::string program;         // the store object holding its bytes; "" = the zerofarm worker
  std::string program_sha256;  // SHA-256 (hex) of those bytes: a program replaced since is refused
  std::string program_name;    // its argv[0]
  // A byte range of the input (exactly one input): input_length bytes from input_offset
  // (0 = to the end). With input_lines, the range is a text part: a line belongs to the part
  // where it starts, so the part skips the end of a line begun before it and reads on past its
  // end to finish its own last line.
  uint64_t input_offset = 0;
  uint64_t input_length = 0;
  bool input_lines = false;
  std::vector<int> ok_exit_codes;  // exits whose outputs are committed; empty = {0}
  uint64_t memory_bytes = 0;       // the program's memory limit; 0 = the runtime's
  uint64_t cpu_seconds = 0;        // its CPU-time limit; 0 = derived from the timeout
};

struct TaskOutcome {
  // As the worker ended (see worker_process.h).
  int exit_code = -1;
  int signal = 0;
  bool timed_out = false;
  std::string report;  // the worker's JSON report (fd 1)
  std::string stderr_tail;
  double wall_seconds = 0;
  double cpu_seconds = 0;
  long peak_rss_kib = 0;
  sandbox::StopRule stopped_by = sandbox::StopRule::kNone;  // the sandbox rule that stopped it
  std::string stopped_detail;
  double spawn_ms = 0;
  bool sandboxed = false;
  std::vector<std::string> layers_missing;
  std::string memory_limit_via;
  // Where it ran and what it moved.
  std::string node;                    // the node (or host) name
  std::vector<uint64_t> output_bytes;  // per output channel
  // Per output channel, the ContentHash (storage/content_hash.h) of the bytes this run wrote:
  // readers check it, so only the chosen copy's outputs are ever used.
  std::vector<uint64_t> output_xxh64;
  uint64_t input_bytes = 0;         // read from the input objects
  uint64_t input_bytes_remote = 0;  // of those, read over the network from other nodes
  uint64_t output_bytes_sent = 0;   // output bytes sent over the network (replicas)
  bool backup = false;              // the result came from a straggler's backup copy
};

std::string ToJson(const TaskSpec& spec);
Result<TaskSpec> TaskSpecFromJson(std::string_view json);
std::string ToJson(const TaskOutcome& outcome);
Result<TaskOutcome> TaskOutcomeFromJson(std::string_view json);

class TaskExecutor {
 public:
  virtual ~TaskExecutor() = default;
  // Runs the task to its end (blocking). Errors are the executor's own ("cancelled",
  // "unavailable" when no node can run it, "io_error", "spawn ..."); a worker that fails is an
  // outcome, not an error. `placed` (may be empty) is told the node each time the task starts
  // somewhere. Safe to call from many threads at once.
  virtual Result<TaskOutcome> Run(const TaskSpec& spec, const std::atomic<bool>& cancel,
                                  const std::function<void(const std::string&)>& placed) = 0;
  // Task slots in all (the engine sizes its parallelism by it).
  virtual int slots() const = 0;
  // Whether Run honours TaskSpec::read_input and watch_output; others ignore them.
  virtual bool streams() const { return false; }
};

// Runs the worker here: input objects streamed from `store`, outputs streamed into it and
// committed when the worker exits 0. `remote` (optional) says whether an object is read or
// written over the network, to fill input_bytes_remote and output_bytes_sent.
struct HereOptions {
  std::string node_name;
  std::function<bool(const std::string& object)> input_is_remote;
  std::function<uint64_t(const std::string& object)> output_copies_sent;
};
Result<TaskOutcome> RunTaskHere(const TaskSpec& spec, storage::Store& store,
                                const WorkerRuntime& worker, const HereOptions& options,
                                const std::atomic<bool>& cancel);

// This machine as the executor: `slots` tasks at once (callers beyond wait).
std::unique_ptr<TaskExecutor> MakeLocalExecutor(storage::Store& store,
                                                std::shared_ptr<const WorkerRuntime> worker,
                                                std::string node_name, int slots);

// The RUN_TASK handler of `zerofarm node`: the spec is TaskSpec JSON, the result TaskOutcome
// JSON; inputs are read through the node's view of the cluster (its own replicas locally).
// `self` is the node's endpoint in `ring`, which it follows as it is swapped.
storage::TaskHandler MakeNodeTaskHandler(std::shared_ptr<const WorkerRuntime> worker,
                                         std::shared_ptr<storage::LiveRing> ring, std::string self);

}  // namespace zerofarm::scheduler
