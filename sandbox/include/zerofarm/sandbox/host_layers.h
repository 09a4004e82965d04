// HostLayers: which isolation layers this host provides to the sandbox, probed once per
// process (a throwaway child tries each namespace; the cgroup trees are checked for a memory
// controller this process may write). A missing layer is warned about loudly on stderr the
// first time ProbeHostLayers() runs and named in every run report: never a silent downgrade.
// Thread safety: ProbeHostLayers() is safe to call from many threads; the result is immutable.
#pragma once

#include <string>
#include <vector>

namespace zerofarm::sandbox {

struct HostLayers {
  bool user_ns = false;
  bool mount_ns = false;
  bool pid_ns = false;
  bool net_ns = false;
  bool ipc_ns = false;
  bool uts_ns = false;
  bool seccomp = false;         // seccomp-bpf filters
  bool seccomp_notify = false;  // user notification: a killed program's syscall is reported
  bool cgroup_v2_memory = false;
  bool cgroup_v1_memory = false;
  std::string cgroup_parent;  // the directory sandboxes' memory cgroups are made in
  std::vector<std::string> notes;

  // Layer names: user_ns mount_ns pid_ns net_ns ipc_ns uts_ns seccomp memory_cgroup.
  std::vector<std::string> Active() const;
  std::vector<std::string> Missing() const;
};

// Probes on first use (and warns on stderr about each missing layer); cached afterwards.
const HostLayers& ProbeHostLayers();

}  // namespace zerofarm::sandbox
