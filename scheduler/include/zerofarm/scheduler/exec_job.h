// Exec jobs: any validated static program run next to its data, ZeroCloud style. A job has a
// map stage, one instance per part of each input object, each on a node holding that part
// with the part on its stdin; and an optional reduce stage, one instance reading every map
// output in input order on its stdin. Every instance is a TaskSpec run by the same
// TaskExecutor as the video pipeline's tasks (task_executor.h): the program is loaded from the
// store, validated and sandboxed on the machine that runs it.
// Retries: an instance whose executor failed (a node lost, a store error) runs again, up to
// ExecJobSpec::attempts times; a program that fails by itself (an exit code the stage does
// not accept, a signal, a sandbox rule, its timeout) is not retried: the job fails and says
// which instance failed and why, and the instances still running are cancelled.
// Thread safety: RunExecJob blocks; ExecProgress may be read from other threads meanwhile.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "zerofarm/base/status.h"
#include "zerofarm/scheduler/task_executor.h"
#include "zerofarm/scheduler/task_slots.h"

namespace zerofarm::scheduler {

struct ExecStage {
  std::string program;         // the store object holding the program's bytes
  std::string program_sha256;  // their SHA-256 (hex), as validated when the program was stored
  std::string program_name;    // argv[0] (the program object's name)
  std::vector<std::string> args;
  std::vector<int> ok_exit_codes = {0};  // exits that count as success
};

struct ExecInput {
  std::string name;    // as the user knows it ("container/name")
  std::string object;  // the store object holding its bytes
  uint64_t bytes = 0;
};

struct ExecLimits {
  uint64_t memory_bytes = uint64_t{256} << 20;
  std::chrono::milliseconds timeout{60000};   // wall time per instance
  uint64_t cpu_seconds = 0;                   // 0: the wall time
  uint64_t output_bytes = uint64_t{1} << 30;  // per instance's stdout
};

struct ExecJobSpec {
  std::string id;      // "j_..."
  std::string tenant;  // for the executor's fairness between tenants
  ExecStage map;
  std::optional<ExecStage> reduce;
  std::vector<ExecInput> inputs;            // in the order the reduce stage reads their outputs
  uint64_t part_bytes = uint64_t{8} << 20;  // a map instance's share of an input
  bool lines = true;                        // parts end at line ends (text); false: exact bytes
  ExecLimits limits;
  int attempts = 3;  // runs of an instance whose executor failed, the first included
  // Slots shared with the video jobs (rank 1, turns by `tenant`); null = the executor's only.
  std::shared_ptr<TaskSlots> slots;
  // The store object each instance's stdout goes to; instance names are "map-00000", ... and
  // "reduce".
  std::function<std::string(const std::string& instance)> output_object;
};

enum class InstanceState { kQueued, kRunning, kDone, kFailed, kCancelled };
std::string_view InstanceStateName(InstanceState state);

struct InstanceReport {
  std::string name;                 // "map-00000" or "reduce"
  std::string stage;                // "map" | "reduce"
  std::string input;                // "logs/a.log" (map) or "map outputs" (reduce)
  size_t input_index = 0;           // map: which of ExecJobSpec::inputs
  uint64_t offset = 0, length = 0;  // the map instance's part of its input
  InstanceState state = InstanceState::kQueued;
  std::string node;
  std::string verdict;  // the program's validation verdict where it ran ("accepted")
  int exit_code = -1;
  int signal = 0;
  std::string stopped_by;  // the sandbox rule that stopped it, "" when none
  double wall_seconds = 0, cpu_seconds = 0;
  uint64_t bytes_in = 0, bytes_out = 0, network_bytes = 0;
  int attempts = 0;
  std::string output;        // the store object of its stdout
  uint64_t output_hash = 0;  // ContentHash of its stdout
  std::string stderr_tail;
  std::optional<Status> error;  // why it failed
};

// The instances of a running job, updated as they go.
class ExecProgress {
 public:
  std::vector<InstanceReport> Snapshot() const {
    std::lock_guard lock(mu_);
    return instances_;
  }

 private:
  friend class ExecJobRunner;
  mutable std::mutex mu_;
  std::vector<InstanceReport> instances_;
};

// Splits the inputs into map instances (parts of at most part_bytes; an empty input is one
// empty part) and adds the reduce instance. Errors: "bad_job" when there is no input.
Result<std::vector<InstanceReport>> PlanExecJob(const ExecJobSpec& spec);

// Runs the job to its end. Ok when every instance succeeded; otherwise the first failure (the
// instance named in the message), or "cancelled". `progress` (optional) follows the instances.
Status RunExecJob(const ExecJobSpec& spec, TaskExecutor& executor, const std::atomic<bool>& cancel,
                  ExecProgress* progress);

}  // namespace zerofarm::scheduler
