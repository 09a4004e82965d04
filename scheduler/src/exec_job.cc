// Exec jobs (exec_job.h): planning, instance specs, retries and fail-fast.
#include "zerofarm/scheduler/exec_job.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <thread>
#include <utility>

#include "zerofarm/base/enum_names.h"

namespace zerofarm::scheduler {
namespace {

constexpr std::pair<InstanceState, std::string_view> kInstanceStates[] = {
    {InstanceState::kQueued, "queued"},       {InstanceState::kRunning, "running"},
    {InstanceState::kDone, "done"},           {InstanceState::kFailed, "failed"},
    {InstanceState::kCancelled, "cancelled"},
};

std::string MapName(size_t i) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "map-%05zu", i);
  return buf;
}

// Errors of the executor that another run (elsewhere) may not meet again.
bool Retryable(const Status& s) {
  switch (s.code()) {
    case ErrorCode::kCancelled:
    case ErrorCode::kProgramRejected:
    case ErrorCode::kProgramChanged:
    case ErrorCode::kNotFound:
    case ErrorCode::kTooLarge:
    case ErrorCode::kInvalidArgument:
      return false;
    default:
      return true;
  }
}

// Why a finished program run does not count, or nullopt when it does.
std::optional<Status> ProgramFailure(const ExecStage& stage, const TaskOutcome& o) {
  std::string why;
  if (o.stopped_by != sandbox::StopRule::kNone) {
    why = "was stopped by the sandbox (" + std::string(sandbox::StopRuleName(o.stopped_by)) +
          (o.stopped_detail.empty() ? "" : ": " + o.stopped_detail) + ")";
  } else if (o.timed_out) {
    why = "ran past its time limit";
  } else if (o.signal != 0) {
    why = "was killed by signal " + std::to_string(o.signal);
  } else if (std::find(stage.ok_exit_codes.begin(), stage.ok_exit_codes.end(), o.exit_code) ==
             stage.ok_exit_codes.end()) {
    why = "exited with code " + std::to_string(o.exit_code);
  } else {
    return std::nullopt;
  }
  std::string tail =
      o.stderr_tail.substr(o.stderr_tail.size() > 300 ? o.stderr_tail.size() - 300 : 0);
  while (!tail.empty() && (tail.back() == '\n' || tail.back() == ' ')) tail.pop_back();
  if (!tail.empty()) why += "; stderr: " + tail;
  return Status::Error(ErrorCode::kProgramFailed, why);
}

}  // namespace

std::string_view InstanceStateName(InstanceState state) {
  return NameIn(kInstanceStates, state, "unknown");
}

Result<std::vector<InstanceReport>> PlanExecJob(const ExecJobSpec& spec) {
  if (spec.inputs.empty())
    return Status::Error(ErrorCode::kBadJob, "the job's input matches no object");
  const uint64_t part = std::max<uint64_t>(spec.part_bytes, 1);
  std::vector<InstanceReport> plan;
  for (size_t k = 0; k < spec.inputs.size(); ++k) {
    const ExecInput& in = spec.inputs[k];
    uint64_t offset = 0;
    do {
      InstanceReport r;
      r.name = MapName(plan.size());
      r.stage = "map";
      r.input = in.name;
      r.input_index = k;
      r.offset = offset;
      r.length = std::min(part, in.bytes - offset);
      plan.push_back(std::move(r));
      offset += part;
    } while (offset < in.bytes);
  }
  if (spec.reduce) {
    InstanceReport r;
    r.name = "reduce";
    r.stage = "reduce";
    r.input = "map outputs";
    plan.push_back(std::move(r));
  }
  for (auto& r : plan) r.output = spec.output_object ? spec.output_object(r.name) : "";
  return plan;
}

class ExecJobRunner {
 public:
  ExecJobRunner(const ExecJobSpec& spec, TaskExecutor& executor, const std::atomic<bool>& cancel,
                ExecProgress* progress)
      : spec_(spec), executor_(executor), cancel_(cancel), progress_(progress) {}

  Status Run() {
    auto plan = PlanExecJob(spec_);
    if (!plan.ok()) return plan.status();
    {
      std::lock_guard lock(progress_->mu_);
      progress_->instances_ = *plan;
    }
    const size_t maps = spec_.reduce ? plan->size() - 1 : plan->size();
    // Passes the caller's cancel on to the instances; woken at once when the job ends.
    std::jthread watcher([this](std::stop_token st) {
      std::mutex m;
      std::condition_variable_any cv;
      std::unique_lock lock(m);
      while (!st.stop_requested() && !stop_.load()) {
        if (cancel_.load()) Fail(Status::Error(ErrorCode::kCancelled, "the job was cancelled"));
        cv.wait_for(lock, st, std::chrono::milliseconds(20), [] { return false; });
      }
    });
    RunStage(0, maps);
    if (spec_.reduce && !stop_.load()) RunStage(maps, maps + 1);
    watcher.request_stop();
    std::lock_guard lock(mu_);
    if (failure_) {
      MarkUnfinished();
      return *failure_;
    }
    return Status::Ok();
  }

 private:
  // Runs instances [begin, end) on a few threads; returns when all ended or the job stopped.
  void RunStage(size_t begin, size_t end) {
    std::atomic<size_t> next{begin};
    const size_t threads =
        std::min<size_t>(end - begin, static_cast<size_t>(std::max(2, executor_.slots() * 2)));
    std::vector<std::jthread> pool;
    for (size_t t = 0; t < threads; ++t) {
      pool.emplace_back([this, &next, end] {
        for (size_t i = next++; i < end && !stop_.load(); i = next++) RunInstance(i);
      });
    }
  }

  TaskSpec SpecOf(const InstanceReport& inst, bool rerun) {
    const bool map = inst.stage == "map";
    const ExecStage& stage = map ? spec_.map : *spec_.reduce;
    TaskSpec t;
    t.id = spec_.id + "/" + inst.name;
    t.job = spec_.id;
    t.args = stage.args;
    t.program = stage.program;
    t.program_sha256 = stage.program_sha256;
    t.program_name = stage.program_name;
    t.ok_exit_codes = stage.ok_exit_codes;
    t.outputs.push_back({inst.output, spec_.limits.output_bytes});
    t.timeout = spec_.limits.timeout;
    t.memory_bytes = spec_.limits.memory_bytes;
    t.cpu_seconds = spec_.limits.cpu_seconds;
    t.rerun = rerun;
    t.nice = 5;  // video work, which users watch arrive, goes first on a busy machine
    if (map) {
      const ExecInput& in = spec_.inputs.at(inst.input_index);
      t.inputs.push_back(in.object);
      t.placement = in.object;
      t.input_offset = inst.offset;
      t.input_length = inst.length;  // 0 only for an empty input: it runs once, stdin empty
      t.input_lines = spec_.lines;
    } else {
      std::lock_guard lock(progress_->mu_);
      for (const auto& r : progress_->instances_)
        if (r.stage == "map") t.inputs.push_back(r.output);
      if (!t.inputs.empty()) t.placement = t.inputs.front();
    }
    return t;
  }

  void Update(size_t i, const std::function<void(InstanceReport&)>& change) {
    std::lock_guard lock(progress_->mu_);
    change(progress_->instances_[i]);
  }

  void RunInstance(size_t i) {
    InstanceReport inst;
    {
      std::lock_guard lock(progress_->mu_);
      inst = progress_->instances_[i];
    }
    for (int attempt = 1; attempt <= std::max(1, spec_.attempts); ++attempt) {
      if (stop_.load()) return;
      const TaskSpec task = SpecOf(inst, attempt > 1);
      Update(i, [&](InstanceReport& r) {
        r.state = InstanceState::kRunning;
        r.attempts = attempt;
      });
      auto placed = [this, i](const std::string& node) {
        Update(i, [&](InstanceReport& r) { r.node = node; });
      };
      const auto started = std::chrono::steady_clock::now();
      auto outcome = [&] {
        SlotHold slot(spec_.slots.get(), 1, spec_.tenant);
        return executor_.Run(task, stop_, placed);
      }();
      if (!outcome.ok()) {
        if (stop_.load()) {  // stopped with the job: how long it ran is all there is to tell
          const std::chrono::duration<double> ran = std::chrono::steady_clock::now() - started;
          Update(i, [&](InstanceReport& r) { r.wall_seconds = ran.count(); });
          return;
        }
        if (Retryable(outcome.status()) && attempt < spec_.attempts) continue;
        const Status why = outcome.status().WithContext(Describe(inst));
        Update(i, [&](InstanceReport& r) {
          r.state = InstanceState::kFailed;
          r.verdict = outcome.status().code() == ErrorCode::kProgramRejected ? "rejected" : "";
          r.error = why;
        });
        Fail(why);
        return;
      }
      const ExecStage& stage = inst.stage == "map" ? spec_.map : *spec_.reduce;
      const auto failure = ProgramFailure(stage, *outcome);
      Update(i, [&](InstanceReport& r) {
        r.node = outcome->node;
        r.verdict = "accepted";
        r.exit_code = outcome->exit_code;
        r.signal = outcome->signal;
        r.stopped_by = outcome->stopped_by == sandbox::StopRule::kNone
                           ? ""
                           : std::string(sandbox::StopRuleName(outcome->stopped_by));
        r.wall_seconds = outcome->wall_seconds;
        r.cpu_seconds = outcome->cpu_seconds;
        r.bytes_in = outcome->input_bytes;
        r.bytes_out = outcome->output_bytes.empty() ? 0 : outcome->output_bytes[0];
        r.network_bytes = outcome->input_bytes_remote + outcome->output_bytes_sent;
        r.output_hash = outcome->output_xxh64.empty() ? 0 : outcome->output_xxh64[0];
        r.stderr_tail = outcome->stderr_tail;
        r.state = failure ? InstanceState::kFailed : InstanceState::kDone;
        if (failure) r.error = *failure;
      });
      if (failure) Fail(failure->WithContext(Describe(inst)));
      return;
    }
  }

  static std::string Describe(const InstanceReport& inst) {
    if (inst.stage == "reduce") return "the reduce instance";
    return "map instance " + inst.name + " (" + inst.input + ", bytes " +
           std::to_string(inst.offset) + "+" + std::to_string(inst.length) + ")";
  }

  void Fail(const Status& why) {
    std::lock_guard lock(mu_);
    if (!failure_) failure_ = why;
    stop_.store(true);
  }

  // After a failure or a cancel: what never ran, or was stopped by it, is cancelled.
  void MarkUnfinished() {
    std::lock_guard lock(progress_->mu_);
    for (auto& r : progress_->instances_)
      if (r.state == InstanceState::kQueued || r.state == InstanceState::kRunning)
        r.state = InstanceState::kCancelled;
  }

  const ExecJobSpec& spec_;
  TaskExecutor& executor_;
  const std::atomic<bool>& cancel_;
  ExecProgress* progress_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::optional<Status> failure_;
};

Status RunExecJob(const ExecJobSpec& spec, TaskExecutor& executor, const std::atomic<bool>& cancel,
                  ExecProgress* progress) {
  ExecProgress local;
  ExecJobRunner runner(spec, executor, cancel, progress ? progress : &local);
  return runner.Run();
}

}  // namespace zerofarm::scheduler
