// WorkerRuntime: the zerofarm-worker program as the scheduler runs it. Loaded once per process:
// the file is read into a sealed memfd, checked by the validator (verdict cached by SHA-256),
// and from then on every task runs exactly those bytes in the sandbox (sandbox/runner.h).
//
// Isolation::kUnsandboxed exists for development only (a worker built against shared FFmpeg
// libraries, or a test's fault-injecting wrapper script): it runs the file at `path` with
// posix_spawn, prints a warning on stderr when loaded, and marks every task report
// ("isolation": "unsandboxed"). Nothing selects it by default.
// Thread safety: a loaded runtime is immutable and shared by every job and thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "zerofarm/base/status.h"

namespace zerofarm::sandbox {
class SealedProgram;
struct ValidationReport;
}  // namespace zerofarm::sandbox
namespace zerofarm::storage {
class Store;
}  // namespace zerofarm::storage

namespace zerofarm::scheduler {

class ProgramCache;
struct UserProgram;

enum class Isolation { kSandbox, kUnsandboxed };

struct WorkerRuntimeOptions {
  std::string path;  // the zerofarm-worker executable
  Isolation isolation = Isolation::kSandbox;
  // Where validation verdicts are cached across runs; empty = in memory only.
  std::filesystem::path verdict_cache_dir;
  // Per task: the sandbox's memory limit (cgroup where the host allows, else RLIMIT_AS).
  uint64_t memory_bytes = uint64_t{3} << 30;
};

class WorkerRuntime {
 public:
  // Errors: "io_error"/"too_large" (cannot read the program), "worker_rejected" (the
  // validator refused it; the message carries the first reason), "sandbox_unavailable" (the
  // host lacks a layer the sandbox requires).
  static Result<std::shared_ptr<const WorkerRuntime>> Load(const WorkerRuntimeOptions& options);
  ~WorkerRuntime();
  WorkerRuntime(const WorkerRuntime&) = delete;
  WorkerRuntime& operator=(const WorkerRuntime&) = delete;

  Isolation isolation() const { return options_.isolation; }
  const WorkerRuntimeOptions& options() const { return options_; }
  // kSandbox only (nullptr otherwise): the sealed bytes and the validator's verdict on them.
  const sandbox::SealedProgram* program() const { return program_.get(); }
  const sandbox::ValidationReport* verdict() const { return verdict_.get(); }
  // SHA-256 of the program (hex), "" when unsandboxed.
  const std::string& program_sha256() const { return sha256_; }
  // Runs refused or killed by a sandbox rule (seccomp, memory, quota, cpu), for /metrics.
  uint64_t sandbox_refusals() const { return refusals_.load(); }
  void CountRefusal() const { refusals_.fetch_add(1); }
  // A user program of an exec job, stored as `object` with bytes hashing to `sha256`, sealed
  // and validated (verdicts cached with the worker's); a few stay loaded. User programs always
  // run sandboxed, whatever isolation() says. Errors: "not_found", "program_changed",
  // "program_rejected", "too_large", store errors.
  Result<std::shared_ptr<const UserProgram>> LoadUserProgram(storage::Store& store,
                                                             const std::string& object,
                                                             const std::string& sha256) const;

 private:
  explicit WorkerRuntime(WorkerRuntimeOptions options);
  WorkerRuntimeOptions options_;
  std::unique_ptr<sandbox::SealedProgram> program_;
  std::unique_ptr<sandbox::ValidationReport> verdict_;
  std::string sha256_;
  std::unique_ptr<ProgramCache> programs_;
  mutable std::atomic<uint64_t> refusals_{0};
};

// The default worker: $ZEROFARM_WORKER if set, else zerofarm-worker beside the running
// executable, else "zerofarm-worker".
std::string DefaultWorkerPath();

}  // namespace zerofarm::scheduler
