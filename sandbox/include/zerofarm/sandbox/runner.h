// RunSandboxed: runs a validated, sealed program in the zerofarm sandbox and reports how it
// ended. The program's exact sealed bytes are executed (execveat on the memfd), in fresh user,
// mount, PID, IPC and UTS namespaces and a network namespace without any network (the
// sandboxes prepared in the background share one empty network namespace where the runner may
// create it: no interface is up, and the seccomp policy refuses socket and socketpair, so
// there is nothing in it to share), with an empty read-only root (no /proc, no /dev), only its
// channels open, no new privileges, rlimits, a memory cgroup where the host
// allows one, the seccomp allow-list of syscall_policy.cc, and a wall-clock timeout that kills
// the whole PID namespace.
// Channels: every channel is a pipe relayed by this process, which counts the bytes and
// enforces each channel's quota (an output over its quota kills the sandbox: rule "quota"; an
// input stops at its quota: the program reads end-of-stream). A channel's outside end is a
// descriptor the caller keeps owning (a pipe it already has), a file, or memory.
// Layers: a layer the host cannot provide is named in every report (layers_missing) and, the
// first time, warned about on stderr; RunSandboxed refuses to run without a layer the spec
// requires (SandboxOptions::required_layers).
// Errors: a Result error means the runner itself failed (spawn, a setup step, a pipe); it names
// the failing step and errno. How the program ended, including being killed, is in the report.
// Thread safety: RunSandboxed is blocking and may run on many threads at once.
// Prepared sandboxes: a run normally takes a sandbox whose namespaces, id maps, memory cgroup
// and empty root were made before the call, by a background thread that keeps a few ready
// (SetPreparedSandboxes); when none is ready the run prepares its own. Every sandbox serves
// exactly one run, with every layer above; the run's memory limit is set on its cgroup before
// the program starts, and nothing of one run (files, processes, memory use) reaches another.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "zerofarm/base/status.h"
#include "zerofarm/sandbox/host_layers.h"
#include "zerofarm/sandbox/sealed_program.h"
#include "zerofarm/sandbox/validator.h"

namespace zerofarm::sandbox {

enum class Direction { kIn, kOut };

// Where the runner takes an input channel's bytes from, or puts an output channel's bytes.
// Callbacks run on the RunSandboxed thread; an error they return ends the run (the sandbox is
// killed) and is RunSandboxed's error.
struct ChannelEnd {
  enum class Kind { kDescriptor, kFile, kMemory, kCallback };
  Kind kind = Kind::kMemory;
  int fd = -1;                                // kDescriptor: borrowed, never closed by the runner
  std::string path;                           // kFile: read (in) or created/truncated (out)
  std::string bytes;                          // kMemory, in: the bytes to feed
  std::function<Result<std::string>()> pull;  // kCallback, in: an empty piece ends it
  std::function<Status(std::string_view)> push;  // kCallback, out: every piece, in order
  static ChannelEnd Descriptor(int fd);
  static ChannelEnd File(std::string path);
  static ChannelEnd Memory(std::string bytes = {});
  static ChannelEnd Pull(std::function<Result<std::string>()> pull);
  static ChannelEnd Push(std::function<Status(std::string_view)> push);
};

struct Channel {
  std::string name;  // listed in the manifest; [A-Za-z0-9_.-]+
  int target_fd = -1;
  Direction direction = Direction::kIn;
  ChannelEnd end;
  uint64_t quota_bytes = uint64_t{1} << 30;
};

// Every limit is explicit; 0 means "no limit of this kind" only where said so.
struct SandboxLimits {
  uint64_t memory_bytes = uint64_t{512} << 20;  // cgroup, else RLIMIT_AS
  std::chrono::milliseconds wall_timeout{10000};
  uint64_t cpu_seconds = 60;     // RLIMIT_CPU (soft = hard: SIGKILL at the limit)
  uint64_t max_threads = 64;     // RLIMIT_NPROC (the seccomp policy allows threads only)
  uint64_t max_open_files = 64;  // RLIMIT_NOFILE (raised to fit the channels)
  uint64_t max_file_bytes = 0;   // RLIMIT_FSIZE (no file can be opened; 0 = none)
  // Scheduling niceness 0..19 added to the runner's own (at most 19): a higher value yields the
  // CPU to other work. It never raises a priority, so a runner started under `nice` works.
  int nice = 0;
};

struct SandboxOptions {
  // Refuse to run when one of these layers is missing (names as in HostLayers::Missing()).
  std::vector<std::string> required_layers;
  // The environment is empty except for the channel manifest in this variable.
  std::string manifest_variable = "ZEROFARM_CHANNELS";
  // Only tests of the kernel layers set this: runs a program the validator rejected.
  bool allow_rejected_program = false;
  std::string hostname = "zerofarm";
  // Measurements only: the run prepares its own sandbox during the call instead of taking a
  // prepared one (the same layers; their cost falls inside the call).
  bool prepare_during_call = false;
};

struct SandboxSpec {
  const SealedProgram* program = nullptr;
  // The validator's verdict on program->bytes(); a rejected or missing verdict is refused.
  const ValidationReport* verdict = nullptr;
  std::vector<std::string> argv;  // argv[0] included
  std::vector<Channel> channels;
  SandboxLimits limits;
  SandboxOptions options;
  // When set, the runner looks at it at least once a second; once true, the sandbox is killed
  // (rule "cancelled"). A stopped or silent program is killed too: nothing waits on it.
  const std::atomic<bool>* cancel = nullptr;
};

struct ChannelStats {
  std::string name;
  int target_fd = -1;
  Direction direction = Direction::kIn;
  uint64_t bytes = 0;  // read by the program (in) or written by it (out)
  uint64_t quota_bytes = 0;
  bool quota_reached = false;  // in: the quota ended the input before its source did
  std::string captured;        // kMemory outputs: the bytes (not part of the JSON report)
};

// The rule that stopped a program (RunReport::stopped_by), one vocabulary for the sandbox, the
// scheduler and every report.
enum class StopRule {
  kNone,       // it ended by itself
  kTimeout,    // wall clock
  kCancelled,  // the caller gave the run up
  kMemory,     // the memory limit (OOM kill)
  kCpu,        // the CPU-time limit
  kQuota,      // an output channel's quota
  kSeccomp,    // a syscall the policy forbids
  kFsize,      // a file over the size limit
  kSignal,     // killed by a signal no rule explains
};
// "" for kNone, else "timeout", "cancelled", "memory", "cpu", "quota", "seccomp", "fsize",
// "signal": the names in reports and on the wire.
std::string_view StopRuleName(StopRule rule);
// The rule of a name ("" is kNone); nullopt for any other text.
std::optional<StopRule> ParseStopRule(std::string_view name);
// Whether the same input would meet the same rule again, so a retry is futile: seccomp, memory,
// quota and fsize (not timeout, cpu or a stray signal, which a loaded machine can cause).
bool StopRuleIsInputFault(StopRule rule);

// How a program ended: it exited (RunReport::exit_code) or a signal ended it (::signal).
enum class RunEnd { kExited, kSignaled };
// Where RunReport::peak_memory_bytes was read: the run's memory cgroup, or getrusage(2).
enum class MemorySource { kRusage, kCgroup };
// What enforced the memory limit: a cgroup v2 or v1 memory controller, or RLIMIT_AS.
enum class MemoryLimitVia { kCgroupV2, kCgroupV1, kRlimitAs };
// The names in the JSON report: "exited", "signaled"; "rusage", "cgroup"; "cgroup_v2",
// "cgroup_v1", "rlimit_as".
std::string_view RunEndName(RunEnd end);
std::string_view MemorySourceName(MemorySource source);
std::string_view MemoryLimitViaName(MemoryLimitVia via);

struct RunReport {
  RunEnd ended = RunEnd::kExited;
  int exit_code = -1;
  int signal = 0;
  std::string signal_name;
  StopRule stopped_by = StopRule::kNone;  // the rule that stopped the program
  std::string detail;  // e.g. "seccomp: ptrace (101) x86_64" or "quota: out over 4096 bytes"
  std::optional<std::string> seccomp_syscall;  // the syscall the policy killed it for
  double wall_ms = 0;
  double user_cpu_ms = 0;
  double system_cpu_ms = 0;
  uint64_t peak_memory_bytes = 0;
  MemorySource peak_memory_source = MemorySource::kRusage;
  double spawn_ms = 0;  // RunSandboxed start to the program's execve
  std::vector<ChannelStats> channels;
  Verdict verdict = Verdict::kRejected;  // the validator's (a run needs an accepted program)
  std::string program_sha256;
  uint64_t syscall_sites = 0;
  uint64_t data_region_bytes = 0;
  std::vector<std::string> layers_active;
  std::vector<std::string> layers_missing;
  MemoryLimitVia memory_limit_via = MemoryLimitVia::kRlimitAs;
};

Result<RunReport> RunSandboxed(const SandboxSpec& spec);

// How many prepared sandboxes the background thread keeps ready (4 until set); 0 keeps none
// (each run prepares its own) and ends those waiting. The prepared sandboxes are children of
// this process that die with it (death signal, and end-of-file on their control socket).
// Thread-safe.
void SetPreparedSandboxes(size_t count);
// The process ids of the prepared sandboxes waiting for a run (for tests and diagnostics).
std::vector<pid_t> PreparedSandboxPids();

std::string RunReportToJson(const RunReport& report);

// The seccomp policy as a human-readable table: each syscall row, its action and why.
std::string DescribeSyscallPolicy();

}  // namespace zerofarm::sandbox
