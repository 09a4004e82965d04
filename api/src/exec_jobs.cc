// ExecJobs (exec_jobs.h).
#include "exec_jobs.h"

#include <fnmatch.h>

#include <algorithm>
#include <ctime>

#include "zerofarm/base/hex.h"
#include "zerofarm/base/units.h"
#include "zerofarm/storage/content_hash.h"

namespace zerofarm::api {

using json = nlohmann::json;

namespace {

constexpr uint64_t kMaxResultBytes = uint64_t{1} << 20;
constexpr uint64_t kMinPartBytes = uint64_t{64} << 10;
constexpr size_t kMaxArgs = 256;
constexpr size_t kMaxArgBytes = 4096;

std::string RecordKey(const std::string& tenant, const std::string& id) {
  return "exec-jobs/" + tenant + "/" + id;
}

Status Bad(const std::string& why) { return Status::Error(ErrorCode::kBadJob, why); }

// A size: a number of bytes or text such as "256M" (base/units.h).
std::optional<uint64_t> ParseBytes(const json& v) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (!v.is_string()) return std::nullopt;
  return ParseByteSize(v.get<std::string>());
}

// A duration: a number of seconds or text such as "60s", "500ms" (base/units.h).
std::optional<std::chrono::milliseconds> ParseSeconds(const json& v) {
  if (v.is_number_unsigned() && v.get<uint64_t>() < (uint64_t{1} << 40))
    return std::chrono::seconds(v.get<uint64_t>());
  if (!v.is_string()) return std::nullopt;
  return ParseDuration(v.get<std::string>());
}

// "container/name" of the tenant's objects.
Result<std::pair<std::string, std::string>> SplitObjectPath(const std::string& path) {
  const size_t slash = path.find('/');
  if (slash == std::string::npos) return Bad("\"" + path + "\" is not \"container/name\"");
  std::pair<std::string, std::string> p{path.substr(0, slash), path.substr(slash + 1)};
  ZF_RETURN_IF_ERROR(CheckContainerName(p.first));
  ZF_RETURN_IF_ERROR(CheckObjectName(p.second));
  return p;
}

std::vector<std::string> StringArray(const json& doc, const char* key, Status* error) {
  std::vector<std::string> out;
  if (!doc.contains(key)) return out;
  const json& a = doc.at(key);
  if (!a.is_array() || a.size() > kMaxArgs) {
    *error = Bad(std::string(key) + " is an array of at most 256 strings");
    return out;
  }
  for (const auto& v : a) {
    if (!v.is_string() || v.get<std::string>().size() > kMaxArgBytes ||
        v.get<std::string>().find('\0') != std::string::npos) {
      *error = Bad(std::string(key) + " holds a value that is not a string of at most 4096 bytes");
      return out;
    }
    out.push_back(v.get<std::string>());
  }
  return out;
}

}  // namespace

bool IsJobId(std::string_view s) {
  return s.size() == 18 && s.starts_with("j_") && std::all_of(s.begin() + 2, s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

struct ExecJobs::Job {
  std::string id;
  std::string tenant;
  int64_t created = 0;
  json request;
  scheduler::ExecJobSpec spec;
  std::optional<std::pair<std::string, std::string>> output;  // container, prefix
  scheduler::ExecProgress progress;
  std::atomic<bool> cancel{false};
  std::atomic<bool> finished{false};
  mutable std::mutex mu;  // the fields below
  std::string status = "running";
  std::optional<Status> error;
  std::string result;
  bool result_truncated = false;
  int64_t ended = 0;
  std::vector<scheduler::InstanceReport> final_instances;  // once finished
  std::vector<std::string> outputs;                        // objects it stored
};

ExecJobs::ExecJobs(scheduler::VideoService& videos, TenantObjects& objects, ExecJobBounds bounds)
    : videos_(videos), objects_(objects), store_(videos.store()), bounds_(bounds) {
  Recover();
}

ExecJobs::~ExecJobs() {
  std::map<std::string, std::jthread> threads;
  {
    std::lock_guard lock(mu_);
    for (auto& [id, job] : jobs_) job->cancel.store(true);
    threads.swap(threads_);
  }
  threads.clear();  // joins
}

void ExecJobs::Recover() {
  auto records = store_.ListMeta("exec-jobs/");
  if (!records.ok()) return;
  for (const auto& [key, value] : *records) {
    json j = json::parse(value, nullptr, false);
    if (!j.is_object() || j.value("status", "") != "running") continue;
    j["status"] = "failed";
    j["error"] = {{"code", "cancelled"},
                  {"message", "the server stopped while the job ran; submit it again"}};
    (void)store_.PutMeta(key, j.dump());
  }
}

Result<json> ExecJobs::Submit(const std::string& tenant, const json& doc) {
  if (!doc.is_object() || !doc.contains("map") || !doc["map"].is_object())
    return Bad("a job is an object with a \"map\" stage");
  auto job = std::make_shared<Job>();
  job->id = "j_" + RandomHex(8);
  job->tenant = tenant;
  job->created = static_cast<int64_t>(std::time(nullptr));
  job->request = doc;
  scheduler::ExecJobSpec& spec = job->spec;
  spec.id = job->id;
  spec.tenant = tenant;
  spec.limits = bounds_.defaults;

  // A stage: its program (accepted by the validator), arguments and accepted exit codes.
  auto stage = [&](const json& s, const char* what) -> Result<scheduler::ExecStage> {
    if (!s.is_object() || !s.contains("program") || !s["program"].is_string())
      return Bad(std::string(what) + ".program is \"container/name\" of a program object");
    auto path = SplitObjectPath(s["program"].get<std::string>());
    if (!path.ok()) return path.status();
    auto rec = objects_.Stat(tenant, path->first, path->second);
    if (!rec.ok()) return rec.status();
    if (!rec->program)
      return Status::Error(ErrorCode::kNotAProgram,
                           s["program"].get<std::string>() + " is not a static ELF program");
    if (!rec->program->accepted)
      return Status::Error(ErrorCode::kProgramRejected, s["program"].get<std::string>() +
                                                            " was refused by the validator (" +
                                                            rec->program->reason + ")");
    scheduler::ExecStage st;
    st.program = rec->data;
    st.program_sha256 = rec->program->sha256;
    const size_t base = path->second.rfind('/');
    st.program_name = base == std::string::npos ? path->second : path->second.substr(base + 1);
    Status err;
    st.args = StringArray(s, "args", &err);
    ZF_RETURN_IF_ERROR(err);
    if (s.contains("ok_exit_codes")) {
      const json& codes = s["ok_exit_codes"];
      if (!codes.is_array() || codes.empty() || codes.size() > 256)
        return Bad(std::string(what) + ".ok_exit_codes is a list of exit codes");
      st.ok_exit_codes.clear();
      for (const auto& c : codes) {
        if (!c.is_number_integer() || c.get<int>() < 0 || c.get<int>() > 255)
          return Bad(std::string(what) + ".ok_exit_codes holds 0 to 255");
        st.ok_exit_codes.push_back(c.get<int>());
      }
    }
    return st;
  };
  auto map = stage(doc["map"], "map");
  if (!map.ok()) return map.status();
  spec.map = std::move(*map);
  if (doc.contains("reduce") && !doc["reduce"].is_null()) {
    auto reduce = stage(doc["reduce"], "reduce");
    if (!reduce.ok()) return reduce.status();
    spec.reduce = std::move(*reduce);
  }

  // Inputs: the tenant's objects of one container, by prefix and/or glob, in name order.
  const json input = doc["map"].value("input", json());
  if (!input.is_object() || !input.contains("container") || !input["container"].is_string())
    return Bad("map.input is {\"container\", \"prefix\" or \"glob\"}");
  const std::string container = input["container"].get<std::string>();
  ZF_RETURN_IF_ERROR(CheckContainerName(container));
  const std::string prefix = input.value("prefix", "");
  const std::string glob = input.value("glob", "");
  std::string marker;
  for (;;) {
    auto page = objects_.List(tenant, container, prefix, marker, 1000);
    if (!page.ok()) return page.status();
    for (const auto& o : page->objects) {
      if (!glob.empty() && ::fnmatch(glob.c_str(), o.name.c_str(), 0) != 0) continue;
      if (spec.inputs.size() >= bounds_.max_inputs)
        return Bad("the input matches more than " + std::to_string(bounds_.max_inputs) +
                   " objects");
      spec.inputs.push_back({container + "/" + o.name, o.data, o.bytes});
    }
    if (!page->next_marker) break;
    marker = *page->next_marker;
  }
  if (spec.inputs.empty()) return Bad("map.input matches no object of " + container);

  // How inputs are split, the limits (capped by the operator) and where outputs go.
  if (doc.contains("split")) {
    const json& split = doc["split"];
    if (!split.is_object()) return Bad("split is {\"bytes\", \"lines\"}");
    if (split.contains("bytes")) {
      auto bytes = ParseBytes(split["bytes"]);
      if (!bytes || *bytes < kMinPartBytes) return Bad("split.bytes is at least 64K");
      spec.part_bytes = *bytes;
    }
    if (split.contains("lines")) {
      if (!split["lines"].is_boolean()) return Bad("split.lines is true or false");
      spec.lines = split["lines"].get<bool>();
    }
  }
  if (doc.contains("limits")) {
    const json& l = doc["limits"];
    if (!l.is_object()) return Bad("limits is {\"memory\", \"timeout\", \"cpu\", \"output\"}");
    const auto& caps = bounds_.caps;
    if (l.contains("memory")) {
      auto v = ParseBytes(l["memory"]);
      if (!v || *v < (uint64_t{16} << 20) || *v > caps.memory_bytes)
        return Bad("limits.memory is 16M to " + std::to_string(caps.memory_bytes >> 20) + "M");
      spec.limits.memory_bytes = *v;
    }
    if (l.contains("timeout")) {
      auto v = ParseSeconds(l["timeout"]);
      if (!v || v->count() < 100 || *v > caps.timeout)
        return Bad(
            "limits.timeout is 100ms to " +
            std::to_string(std::chrono::duration_cast<std::chrono::seconds>(caps.timeout).count()) +
            "s");
      spec.limits.timeout = *v;
    }
    if (l.contains("cpu")) {
      auto v = ParseSeconds(l["cpu"]);
      if (!v || v->count() < 1000 || static_cast<uint64_t>(v->count() / 1000) > caps.cpu_seconds)
        return Bad("limits.cpu is 1s to " + std::to_string(caps.cpu_seconds) + "s");
      spec.limits.cpu_seconds = static_cast<uint64_t>(v->count() / 1000);
    }
    if (l.contains("output")) {
      auto v = ParseBytes(l["output"]);
      if (!v || *v == 0 || *v > caps.output_bytes)
        return Bad("limits.output is 1 to " + std::to_string(caps.output_bytes) + " bytes");
      spec.limits.output_bytes = *v;
    }
  }
  if (doc.contains("output") && !doc["output"].is_null()) {
    const json& o = doc["output"];
    if (!o.is_object() || !o.contains("container") || !o["container"].is_string())
      return Bad("output is {\"container\", \"prefix\"}");
    const std::string out_container = o["container"].get<std::string>();
    const std::string out_prefix = o.value("prefix", "");
    ZF_RETURN_IF_ERROR(CheckContainerName(out_container));
    ZF_RETURN_IF_ERROR(CheckObjectName(out_prefix + "reduce"));
    job->output.emplace(out_container, out_prefix);
    spec.output_object = [this, tenant, out_container](const std::string&) {
      return objects_.NewDataName(tenant, out_container);
    };
  } else {
    spec.output_object = [id = job->id](const std::string& instance) {
      return "exec-scratch/" + id + "/" + instance;
    };
  }
  if (auto plan = scheduler::PlanExecJob(spec); !plan.ok()) return plan.status();

  std::lock_guard lock(mu_);
  size_t running = 0;
  for (auto it = jobs_.begin(); it != jobs_.end();) {
    if (it->second->finished.load()) {
      threads_.erase(it->first);  // joins a thread that has ended
      it = jobs_.erase(it);
      continue;
    }
    if (it->second->tenant == tenant) ++running;
    ++it;
  }
  if (running >= bounds_.max_running)
    return Status::Error(ErrorCode::kTooMany,
                         "this tenant already runs " + std::to_string(running) + " jobs");
  ZF_RETURN_IF_ERROR(Save(*job));
  jobs_[job->id] = job;
  threads_[job->id] = std::jthread([this, job] { Run(job); });
  return ToJson(*job, false);
}

void ExecJobs::Run(std::shared_ptr<Job> job) {
  const Status outcome = videos_.RunExec(job->spec, job->cancel, &job->progress);
  (void)Finish(*job, outcome);
  job->finished.store(true);
}

Status ExecJobs::Finish(Job& job, const Status& outcome) {
  auto instances = job.progress.Snapshot();
  Status status = outcome;
  std::string result;
  bool truncated = false;
  std::vector<std::string> stored;
  if (status.ok()) {
    // The result: the reduce instance's stdout, or the map outputs in order, up to 1 MiB.
    for (const auto& inst : instances) {
      if (job.spec.reduce && inst.stage != "reduce") continue;
      if (result.size() >= kMaxResultBytes) {
        truncated = truncated || inst.bytes_out > 0;
        continue;
      }
      auto part = store_.ReadRange(inst.output, 0, kMaxResultBytes - result.size());
      if (!part.ok()) {
        status = part.status().WithContext("reading the output of " + inst.name);
        break;
      }
      result += *part;
      truncated = truncated || part->size() < inst.bytes_out;
    }
  }
  if (status.ok() && job.output) {
    for (const auto& inst : instances) {
      auto rec = objects_.Adopt(job.tenant, job.output->first, job.output->second + inst.name,
                                inst.output, inst.bytes_out, inst.output_hash);
      if (!rec.ok()) {
        status = rec.status().WithContext("storing the output of " + inst.name);
        break;
      }
      stored.push_back(job.output->first + "/" + job.output->second + inst.name);
    }
  }
  // Bytes no object points at: scratch outputs, and the outputs of a failed job.
  for (const auto& inst : instances) {
    const bool adopted =
        std::find(stored.begin(), stored.end(),
                  job.output ? job.output->first + "/" + job.output->second + inst.name
                             : std::string()) != stored.end();
    if (!adopted && !inst.output.empty()) objects_.DeleteData(inst.output);
  }
  {
    std::lock_guard lock(job.mu);
    job.status = status.ok() ? "done" : "failed";
    if (!status.ok()) job.error = status;
    job.result = std::move(result);
    job.result_truncated = truncated;
    job.ended = static_cast<int64_t>(std::time(nullptr));
    job.final_instances = std::move(instances);
    job.outputs = std::move(stored);
  }
  return Save(job);
}

Status ExecJobs::Save(const Job& job) {
  return store_.PutMeta(RecordKey(job.tenant, job.id), ToJson(job, true).dump());
}

json ExecJobs::ToJson(const Job& job, bool with_instances) const {
  std::lock_guard lock(job.mu);
  json j{{"id", job.id},           {"status", job.status},
         {"created", job.created}, {"ended", job.ended > 0 ? json(job.ended) : json(nullptr)},
         {"request", job.request}, {"error", nullptr},
         {"result", nullptr}};
  if (job.error) j["error"] = {{"code", job.error->code_name()}, {"message", job.error->message()}};
  if (job.status == "done") {
    j["result"] = job.result;
    j["result_truncated"] = job.result_truncated;
    j["outputs"] = job.outputs;
  }
  if (!with_instances) return j;
  const auto instances = job.finished.load() || job.status != "running" ? job.final_instances
                                                                        : job.progress.Snapshot();
  json list = json::array();
  for (const auto& r : instances) {
    json i{{"name", r.name},
           {"stage", r.stage},
           {"input", r.input},
           {"state", scheduler::InstanceStateName(r.state)},
           {"node", r.node.empty() ? json(nullptr) : json(r.node)},
           {"verdict", r.verdict.empty() ? json(nullptr) : json(r.verdict)},
           {"exit_code", r.exit_code >= 0 ? json(r.exit_code) : json(nullptr)},
           {"signal", r.signal},
           {"stopped_by", r.stopped_by.empty() ? json(nullptr) : json(r.stopped_by)},
           {"wall_seconds", r.wall_seconds},
           {"cpu_seconds", r.cpu_seconds},
           {"bytes_in", r.bytes_in},
           {"bytes_out", r.bytes_out},
           {"network_bytes", r.network_bytes},
           {"attempts", r.attempts}};
    if (r.stage == "map") i["part"] = {{"offset", r.offset}, {"length", r.length}};
    if (r.error) i["error"] = {{"code", r.error->code_name()}, {"message", r.error->message()}};
    list.push_back(std::move(i));
  }
  j["instances"] = std::move(list);
  return j;
}

Result<json> ExecJobs::Get(const std::string& tenant, const std::string& id) {
  {
    std::lock_guard lock(mu_);
    auto it = jobs_.find(id);
    if (it != jobs_.end() && it->second->tenant == tenant) return ToJson(*it->second, true);
  }
  auto stored = store_.GetMeta(RecordKey(tenant, id));
  if (!stored.ok()) return stored.status();
  if (!*stored) return Status::Error(ErrorCode::kNotFound, "no job " + id);
  json j = json::parse(**stored, nullptr, false);
  if (!j.is_object())
    return Status::Error(ErrorCode::kCorrupt, "the record of job " + id + " is unreadable");
  return j;
}

Result<json> ExecJobs::List(const std::string& tenant) {
  auto records = store_.ListMeta("exec-jobs/" + tenant + "/");
  if (!records.ok()) return records.status();
  std::vector<json> jobs;
  for (const auto& [key, value] : *records) {
    json j = json::parse(value, nullptr, false);
    if (!j.is_object()) continue;
    const std::string id = j.value("id", "");
    {
      std::lock_guard lock(mu_);
      auto it = jobs_.find(id);
      if (it != jobs_.end()) j = ToJson(*it->second, true);
    }
    json summary = j;
    summary.erase("instances");
    size_t done = 0, total = 0;
    for (const auto& i : j.value("instances", json::array())) {
      ++total;
      if (i.value("state", "") == "done") ++done;
    }
    summary["instances_done"] = done;
    summary["instances_total"] = total;
    jobs.push_back(std::move(summary));
  }
  std::stable_sort(jobs.begin(), jobs.end(), [](const json& a, const json& b) {
    return a.value("created", int64_t{0}) > b.value("created", int64_t{0});
  });
  return json{{"jobs", jobs}};
}

Status ExecJobs::Cancel(const std::string& tenant, const std::string& id) {
  {
    std::lock_guard lock(mu_);
    auto it = jobs_.find(id);
    if (it != jobs_.end() && it->second->tenant == tenant) {
      it->second->cancel.store(true);
      return Status::Ok();
    }
  }
  auto stored = store_.GetMeta(RecordKey(tenant, id));
  if (!stored.ok()) return stored.status();
  if (!*stored) return Status::Error(ErrorCode::kNotFound, "no job " + id);
  return Status::Ok();  // finished already: nothing to cancel
}

}  // namespace zerofarm::api
