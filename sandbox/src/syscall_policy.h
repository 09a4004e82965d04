// The sandbox's seccomp-bpf policy (one table, in syscall_policy.cc), compiled to a classic BPF
// program in the parent so that the child only has to install it (no allocation after clone).
#pragma once

#include <linux/filter.h>

#include <cstdint>
#include <string>
#include <vector>

#include "zerofarm/base/status.h"
#include "zerofarm/sandbox/runner.h"  // DescribeSyscallPolicy

namespace zerofarm::sandbox {

struct SyscallFilter {
  std::vector<sock_filter> program;
  // Whether the "kill" rows notify the runner (which then kills the sandbox and reports the
  // syscall) instead of SECCOMP_RET_KILL_PROCESS.
  bool notify_kills = false;
};

// `exec_fd` is the descriptor number the child executes the sealed program from; it is the
// only execveat the policy allows (the descriptor is close-on-exec, so after the exec no
// program can use that row).
Result<SyscallFilter> BuildSyscallFilter(int exec_fd, bool notify_kills);

// "ptrace (101) x86_64", "getpid (20) i386" ...
std::string DescribeSyscall(uint32_t audit_arch, int nr);

}  // namespace zerofarm::sandbox
