#include <nlohmann/json.hpp>
#include <utility>

#include "zerofarm/base/enum_names.h"
#include "zerofarm/sandbox/runner.h"

namespace zerofarm::sandbox {
namespace {

constexpr std::pair<StopRule, std::string_view> kStopRules[] = {
    {StopRule::kNone, ""},
    {StopRule::kTimeout, "timeout"},
    {StopRule::kCancelled, "cancelled"},
    {StopRule::kMemory, "memory"},
    {StopRule::kCpu, "cpu"},
    {StopRule::kQuota, "quota"},
    {StopRule::kSeccomp, "seccomp"},
    {StopRule::kFsize, "fsize"},
    {StopRule::kSignal, "signal"},
};

constexpr std::pair<RunEnd, std::string_view> kRunEnds[] = {
    {RunEnd::kExited, "exited"},
    {RunEnd::kSignaled, "signaled"},
};

constexpr std::pair<MemorySource, std::string_view> kMemorySources[] = {
    {MemorySource::kRusage, "rusage"},
    {MemorySource::kCgroup, "cgroup"},
};

constexpr std::pair<MemoryLimitVia, std::string_view> kMemoryLimits[] = {
    {MemoryLimitVia::kCgroupV2, "cgroup_v2"},
    {MemoryLimitVia::kCgroupV1, "cgroup_v1"},
    {MemoryLimitVia::kRlimitAs, "rlimit_as"},
};

}  // namespace

std::string_view StopRuleName(StopRule rule) { return NameIn(kStopRules, rule, "signal"); }

std::string_view RunEndName(RunEnd end) { return NameIn(kRunEnds, end, "exited"); }
std::string_view MemorySourceName(MemorySource source) {
  return NameIn(kMemorySources, source, "rusage");
}
std::string_view MemoryLimitViaName(MemoryLimitVia via) {
  return NameIn(kMemoryLimits, via, "rlimit_as");
}

std::optional<StopRule> ParseStopRule(std::string_view name) {
  return ValueIn<StopRule>(kStopRules, name);
}

bool StopRuleIsInputFault(StopRule rule) {
  return rule == StopRule::kSeccomp || rule == StopRule::kMemory || rule == StopRule::kQuota ||
         rule == StopRule::kFsize;
}

std::string RunReportToJson(const RunReport& r) {
  using json = nlohmann::ordered_json;
  json j;
  j["status"] = RunEndName(r.ended);
  if (r.ended == RunEnd::kExited) j["exit_code"] = r.exit_code;
  if (r.ended == RunEnd::kSignaled) {
    j["signal"] = r.signal;
    j["signal_name"] = r.signal_name;
  }
  j["stopped_by"] = StopRuleName(r.stopped_by);
  j["detail"] = r.detail;
  if (r.seccomp_syscall) j["seccomp_syscall"] = *r.seccomp_syscall;
  j["wall_ms"] = r.wall_ms;
  j["user_cpu_ms"] = r.user_cpu_ms;
  j["system_cpu_ms"] = r.system_cpu_ms;
  j["peak_memory_bytes"] = r.peak_memory_bytes;
  j["peak_memory_source"] = MemorySourceName(r.peak_memory_source);
  j["spawn_ms"] = r.spawn_ms;
  json channels = json::array();
  for (const ChannelStats& c : r.channels) {
    channels.push_back({{"name", c.name},
                        {"fd", c.target_fd},
                        {"direction", c.direction == Direction::kIn ? "in" : "out"},
                        {"bytes", c.bytes},
                        {"quota_bytes", c.quota_bytes},
                        {"quota_reached", c.quota_reached}});
  }
  j["channels"] = channels;
  j["validation"] = {{"verdict", r.verdict == Verdict::kAccepted ? "accepted" : "rejected"},
                     {"sha256", r.program_sha256},
                     {"syscall_sites", r.syscall_sites},
                     {"data_region_bytes", r.data_region_bytes}};
  j["layers_active"] = r.layers_active;
  j["layers_missing"] = r.layers_missing;
  j["memory_limit_via"] = MemoryLimitViaName(r.memory_limit_via);
  return j.dump(2);
}

}  // namespace zerofarm::sandbox
