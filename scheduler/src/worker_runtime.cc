#include "zerofarm/scheduler/worker_runtime.h"

#include <cstdio>
#include <cstdlib>
#include <utility>

#include "program_cache.h"
#include "zerofarm/sandbox/host_layers.h"
#include "zerofarm/sandbox/sealed_program.h"
#include "zerofarm/sandbox/validator.h"
#include "zerofarm/sandbox/verdict_cache.h"

namespace zerofarm::scheduler {

namespace fs = std::filesystem;

WorkerRuntime::WorkerRuntime(WorkerRuntimeOptions options)
    : options_(std::move(options)),
      programs_(std::make_unique<ProgramCache>(options_.verdict_cache_dir)) {}
WorkerRuntime::~WorkerRuntime() = default;

Result<std::shared_ptr<const UserProgram>> WorkerRuntime::LoadUserProgram(
    storage::Store& store, const std::string& object, const std::string& sha256) const {
  return programs_->Load(store, object, sha256);
}

Result<std::shared_ptr<const WorkerRuntime>> WorkerRuntime::Load(
    const WorkerRuntimeOptions& options) {
  if (options.path.empty())
    return Status::Error(ErrorCode::kInvalidArgument, "no worker program given");
  std::shared_ptr<WorkerRuntime> rt(new WorkerRuntime(options));
  if (options.isolation == Isolation::kUnsandboxed) {
    std::fprintf(stderr,
                 "zerofarm: WARNING: workers run UNSANDBOXED (development mode): %s runs with "
                 "this process's privileges, unvalidated, with no namespaces, seccomp or limits. "
                 "Never use this for media you do not trust.\n",
                 options.path.c_str());
    return std::shared_ptr<const WorkerRuntime>(std::move(rt));
  }
  // The probe warns on stderr about every isolation layer the host lacks, once per process.
  (void)sandbox::ProbeHostLayers();
  auto program = sandbox::LoadProgram(options.path);
  if (!program.ok()) return program.status().WithContext("worker " + options.path);
  auto cache = sandbox::VerdictCache::Open({options.verdict_cache_dir, 16});
  if (!cache.ok()) return cache.status().WithContext("verdict cache");
  auto verdict = (*cache)->Validate(program->bytes());
  if (!verdict.ok()) return verdict.status().WithContext("validating " + options.path);
  if (!verdict->accepted()) {
    std::string why = verdict->reasons.empty()
                          ? std::string("no reason given")
                          : verdict->reasons.front().code + ": " + verdict->reasons.front().message;
    return Status::Error(ErrorCode::kWorkerRejected,
                         "the validator rejected the worker " + options.path + " (" + why +
                             "); build the static worker (ZEROFARM_STATIC_WORKER=ON)");
  }
  rt->program_ = std::make_unique<sandbox::SealedProgram>(std::move(*program));
  rt->verdict_ = std::make_unique<sandbox::ValidationReport>(std::move(*verdict));
  rt->sha256_ = rt->verdict_->sha256;
  return std::shared_ptr<const WorkerRuntime>(std::move(rt));
}

std::string DefaultWorkerPath() {
  if (const char* env = std::getenv("ZEROFARM_WORKER"); env && *env) return env;
  std::error_code ec;
  fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    fs::path sibling = self.parent_path() / "zerofarm-worker";
    if (fs::exists(sibling, ec)) return sibling;
  }
  return "zerofarm-worker";
}

}  // namespace zerofarm::scheduler
