// ExecJobs: the jobs of /v1/jobs (storage-side compute, exec_job.h). A job document names a
// program object and input objects of the submitting tenant only; it is checked against them
// (the program must be stored and accepted by the validator), run on its own thread through
// the video service's executor and task slots, and kept as a record, so its status, instances
// and result survive a restart (a job running when the server stopped reads as failed).
// Thread safety: safe for concurrent use. The destructor cancels running jobs and waits.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "objects.h"
#include "zerofarm/base/status.h"
#include "zerofarm/scheduler/exec_job.h"
#include "zerofarm/scheduler/video_service.h"

namespace zerofarm::api {

// The operator's bounds on a job's per-instance limits, and the defaults of a job that names
// none.
struct ExecJobBounds {
  scheduler::ExecLimits defaults;
  scheduler::ExecLimits caps{uint64_t{4} << 30, std::chrono::hours(6), 6 * 3600,
                             uint64_t{64} << 30};
  size_t max_inputs = 10000;  // input objects of one job
  size_t max_running = 64;    // running jobs per tenant
};

// Job ids: "j_" + 16 hex digits.
bool IsJobId(std::string_view s);

class ExecJobs {
 public:
  ExecJobs(scheduler::VideoService& videos, TenantObjects& objects, ExecJobBounds bounds);
  ~ExecJobs();
  ExecJobs(const ExecJobs&) = delete;
  ExecJobs& operator=(const ExecJobs&) = delete;

  // Starts the job `doc` describes (ARCHITECTURE.md, "Objects and jobs"); returns its JSON.
  // Errors: "bad_job" (a malformed document, no input), "not_found" (the program or a
  // container), "not_a_program", "program_rejected", "too_many".
  Result<nlohmann::json> Submit(const std::string& tenant, const nlohmann::json& doc);
  // The job with its instances; "not_found" for another tenant's id.
  Result<nlohmann::json> Get(const std::string& tenant, const std::string& id);
  // The tenant's jobs, newest first, without their instances.
  Result<nlohmann::json> List(const std::string& tenant);
  // Cancels a running job (a finished one stays as it is); "not_found".
  Status Cancel(const std::string& tenant, const std::string& id);

 private:
  struct Job;
  void Run(std::shared_ptr<Job> job);
  Status Finish(Job& job, const Status& outcome);
  Status Save(const Job& job);
  void Recover();
  nlohmann::json ToJson(const Job& job, bool with_instances) const;

  scheduler::VideoService& videos_;
  TenantObjects& objects_;
  storage::Store& store_;
  const ExecJobBounds bounds_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<Job>> jobs_;  // by id
  std::map<std::string, std::jthread> threads_;       // of running jobs, by id
};

}  // namespace zerofarm::api
