// Runs one zerofarm-worker process: feeds its input channel, collects every output channel and
// its report, and kills it at a deadline. With a sandboxed runtime (the default) the worker is
// the runtime's validated, sealed program run by sandbox::RunSandboxed, its channels being
// fd 0 "input", fd 1 "report", fd 2 "stderr" and fd 3.. "out<N>"/"thumbnail"; unsandboxed
// (development only) it is posix_spawn of the runtime's path with the same descriptors.
// A user program (WorkerRun::program, an exec job's instance) always runs sandboxed, whatever
// the runtime's isolation, with the standard descriptors a Unix program expects: fd 0 "stdin"
// the input, fd 1 "stdout" output 0, fd 2 "stderr".
// Blocking; one call per thread. Every way out of RunWorker leaves no worker process behind.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "zerofarm/base/status.h"
#include "zerofarm/sandbox/runner.h"
#include "zerofarm/scheduler/worker_runtime.h"

namespace zerofarm::sandbox {
class SealedProgram;
struct ValidationReport;
}  // namespace zerofarm::sandbox

namespace zerofarm::scheduler {

// A validated user program to run instead of the worker.
struct UserProgramRun {
  const sandbox::SealedProgram* program = nullptr;
  const sandbox::ValidationReport* verdict = nullptr;
  std::string argv0;              // what the program sees as its name
  uint64_t memory_bytes = 0;      // 0: the runtime's per-task memory limit
  uint64_t cpu_seconds = 0;       // 0: derived from the timeout
  uint64_t output_max_bytes = 0;  // stdout's quota; 0: the default output quota
};

struct WorkerRun {
  std::vector<std::string> args;  // argv[1..]
  // Produces the input bytes piece by piece; an empty piece ends the input.
  std::function<Result<std::string>()> next_input;
  // Output channel i becomes fd 3 + i in the worker; every byte is passed to on_output(i, ...).
  size_t outputs = 0;
  std::function<Status(size_t, std::string_view)> on_output;
  std::chrono::milliseconds timeout{60000};
  int threads = 1;  // encoder threads the task asked for (sizes the CPU-time limit)
  int nice = 0;     // scheduling niceness (SandboxLimits::nice)
  // When set and it turns true, the worker is killed with SIGKILL within about a second, even
  // a stopped or silent one (a cancelled task or a backup copy that lost its race).
  const std::atomic<bool>* cancel = nullptr;
  // When program is set: run it (with outputs == 1) instead of the worker.
  UserProgramRun user;
};

struct WorkerExit {
  int exit_code = -1;  // -1 when killed by a signal
  int signal = 0;
  bool timed_out = false;
  std::string report;       // everything written to fd 1
  std::string stderr_tail;  // the last few KiB of fd 2
  double wall_seconds = 0;
  double cpu_seconds = 0;  // user + system, from wait4
  long peak_rss_kib = 0;
  // Sandboxed runs: the rule that stopped the worker, its detail, and the time to the worker's
  // execve.
  sandbox::StopRule stopped_by = sandbox::StopRule::kNone;
  std::string stopped_detail;
  double spawn_ms = 0;
  bool sandboxed = false;
  std::vector<std::string> layers_missing;  // isolation layers this host could not provide
  std::string memory_limit_via;             // cgroup_v2 | cgroup_v1 | rlimit_as
};

// Errors are the parent's own (spawn, pipes, a failing on_output/next_input); the worker's
// failures are described by WorkerExit.
Result<WorkerExit> RunWorker(const WorkerRuntime& runtime, const WorkerRun& run);

}  // namespace zerofarm::scheduler
