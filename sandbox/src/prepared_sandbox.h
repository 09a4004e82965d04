// Prepared sandboxes: sandbox children made ahead of their runs, so that a run pays only for
// its own steps (descriptors, limits, seccomp, exec) and not for namespaces, id maps, a cgroup
// and an empty root.
// A prepared sandbox is a child cloned into its own user, mount, PID, network, IPC and UTS
// namespaces (those the host has), with its id maps written, in a fresh memory cgroup of its
// own, that has run the first steps of child_setup.h (signals, session, the empty read-only
// root) and waits on its control socket for one run's plan (SendExecPlan). It
// serves one run: the run's program becomes its PID 1; afterwards the child is reaped and its
// cgroup removed. Nothing of one run reaches another: every run has its own child, namespaces,
// cgroup and pipes.
// Prepared children die with the process: their death signal (set by the thread that cloned
// them: the pool's thread, which lives as long as the process, or the run's own thread), and
// end-of-file on the control socket when no one holds its other end.
#pragma once

#include <pthread.h>
#include <signal.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "cgroup.h"
#include "child_setup.h"
#include "zerofarm/base/status.h"
#include "zerofarm/base/unique_fd.h"
#include "zerofarm/sandbox/host_layers.h"

namespace zerofarm::sandbox {

// Blocks every signal in this thread while it lives (clone copies the mask into the child,
// which must not run the parent's handlers before its exec).
class BlockSignals {
 public:
  BlockSignals() {
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old_);
  }
  ~BlockSignals() { pthread_sigmask(SIG_SETMASK, &old_, nullptr); }
  BlockSignals(const BlockSignals&) = delete;
  BlockSignals& operator=(const BlockSignals&) = delete;

 private:
  sigset_t old_;
};

struct PreparedSandbox {
  PreparedSandbox() = default;
  PreparedSandbox(PreparedSandbox&& other) noexcept;
  PreparedSandbox& operator=(PreparedSandbox&& other) = delete;
  PreparedSandbox(const PreparedSandbox&) = delete;
  PreparedSandbox& operator=(const PreparedSandbox&) = delete;
  // Kills and reaps a child that was not handed on (pid reset to -1 by the new owner).
  ~PreparedSandbox();

  pid_t pid = -1;
  UniqueFd pidfd;
  UniqueFd control;                    // the parent's end of the control socket
  std::optional<MemoryCgroup> cgroup;  // where the host has a memory cgroup
};

// The namespaces, hostname and ids of a sandbox child on this host (shared by prepared
// children and children cloned for a run).
void PlanIdentity(const HostLayers& host, const char* hostname, ChildPlan* plan);
// The clone flags for the host's namespaces; without CLONE_NEWNET unless `own_network` (the
// caller's thread is then in the empty network namespace the sandbox is to share).
unsigned long NamespaceFlags(const HostLayers& host, bool own_network);
// Writes the child's uid and gid maps (and denies setgroups when the runner is not root).
Status WriteIdMaps(pid_t pid);

// Clones a prepared sandbox on the calling thread and waits until it is ready; with a network
// namespace of its own, or (own_network false) in the calling thread's. Errors: the failing
// call, or the child's failing step (kSandboxSetup).
Result<PreparedSandbox> PrepareSandbox(const HostLayers& host, uint64_t memory_bytes,
                                       bool own_network);

// The process's pool of prepared sandboxes, refilled by one background thread started on
// first use. Thread-safe. A process that forks keeps its pool; the child starts an empty one.
class PreparedSandboxPool {
 public:
  static PreparedSandboxPool& Get();

  // A ready sandbox whose cgroup's limit is memory_bytes: from the pool when one is ready,
  // else prepared now on this thread.
  Result<PreparedSandbox> Take(const HostLayers& host, uint64_t memory_bytes);
  // Removes a used cgroup on the pool's thread (its processes must be reaped).
  void Retire(MemoryCgroup cgroup);
  // How many sandboxes to keep prepared; 0 empties the pool (its children are killed).
  void SetSize(size_t size);
  // The prepared children waiting in the pool.
  std::vector<pid_t> Pids();

  struct State;
  // Held by a run from before Take to after Retire: the pool fills its second half and
  // removes used cgroups only while no run holds one.
  class RunInProgress {
   public:
    explicit RunInProgress(PreparedSandboxPool& pool);
    ~RunInProgress();
    RunInProgress(const RunInProgress&) = delete;
    RunInProgress& operator=(const RunInProgress&) = delete;

   private:
    State* state_;
  };

 private:
  PreparedSandboxPool() = default;
  static void Refill(State* state);
  State* state_ = nullptr;
};

}  // namespace zerofarm::sandbox
