// The sandbox child's setup: a flat, ordered list of steps run between clone() and execveat().
// Everything the child needs is prepared by the parent in a ChildPlan; the child only makes
// system calls (no allocation, no locks: the parent may have other threads). A failing step
// sends {step, errno} to the parent on the report pipe and exits; the last step announces the
// exec (kExecuting), and a failing exec follows it with {step, errno}.
// A prepared child (RunPreparedChild) runs the same steps in two parts: signals, session and
// the empty root before its run is known, then, once the run's plan arrives on its control
// socket (SendExecPlan), hostname, ids, capabilities, descriptors, limits, seccomp and exec.
#pragma once

#include <linux/filter.h>
#include <sys/resource.h>

#include <cstdint>

#include "zerofarm/base/status.h"

namespace zerofarm::sandbox {

// The steps in order. kStepNames in child_setup.cc must follow this list.
enum ChildStep : int32_t {
  kStepWaitForParent,
  kStepResetSignals,
  kStepSetsid,
  kStepMountPrivate,
  kStepMountEmptyRoot,
  kStepEnterEmptyRoot,
  kStepPivotRoot,
  kStepDetachOldRoot,
  kStepChdirRoot,
  kStepRemountRootReadOnly,
  kStepSetHostname,
  kStepSetgroups,
  kStepSetgid,
  kStepSetuid,
  kStepDropCapabilities,
  kStepParentDeathSignal,
  kStepParkDescriptors,
  kStepPlaceDescriptors,
  kStepCloseOtherDescriptors,
  kStepSetRlimits,
  kStepNoNewPrivs,
  kStepSeccomp,
  kStepSendListener,
  kStepWaitForListenerAck,
  kStepUnblockSignals,
  kStepExec,
  kStepCloseInherited,  // prepared child: closes what it inherited from the parent
  kStepReceivePlan,     // prepared child: reads its run's plan
  kStepCount
};

const char* ChildStepName(int32_t step);

// What the child sends on the report pipe.
struct ChildMessage {
  // kReady: a prepared child finished its first steps (on the control socket).
  // kExecuting: sent just before execveat. The report pipe's end-of-file is no proof of the
  // exec: a child cloned at the same moment by another thread holds a copy of the pipe until
  // it closes what it inherited.
  enum Kind : int32_t { kFailed = 1, kListener = 2, kReady = 3, kExecuting = 4 };
  int32_t kind = 0;
  int32_t step = 0;
  int32_t err = 0;
  int32_t value = 0;  // kListener: the listener's descriptor number in the child
};

struct FdMove {
  int from = -1;  // in the parent's (and, after clone, the child's) table
  int to = -1;    // the number the program sees
  bool cloexec = false;
};

// Channels (at most 64) and the runner's own descriptors.
inline constexpr int kMaxFdMoves = 72;
inline constexpr int kMaxRlimits = 8;

struct ChildPlan {
  bool new_mount_ns = false;
  bool new_uts_ns = false;
  bool new_user_ns = false;
  bool call_setgroups = true;          // false when setgroups is denied in the user namespace
  const char* empty_root_at = "/tmp";  // an existing directory the empty tmpfs is mounted on
  const char* hostname = nullptr;
  uint32_t uid = 0;
  uint32_t gid = 0;

  // Channels (not close-on-exec) and the runner's own (close-on-exec). Fixed arrays: a prepared
  // child fills its plan without allocating.
  FdMove fds[kMaxFdMoves];
  int fd_count = 0;
  int first_free_fd = 0;  // everything at or above it is closed
  int report_fd = -1;     // child's number, after placement
  int go_fd = -1;         // child's number, after placement
  // The parent's end of the go pipe, inherited by the clone: closed first, so that the child
  // sees end-of-file (and gives up) if the parent dies before it says go.
  int parent_go_write_fd = -1;
  int exec_fd = -1;  // child's number, after placement

  struct Limit {
    int resource;
    rlim_t value;
  };
  Limit rlimits[kMaxRlimits];
  int rlimit_count = 0;
  int nice = 0;  // setpriority, with the limits

  const sock_fprog* seccomp = nullptr;  // null: no filter (the host lacks seccomp)
  bool seccomp_listener = false;

  char* const* argv = nullptr;
  char* const* envp = nullptr;

  // A prepared child only: its end of the control socket (its number after clone). The
  // parent's end stands in for the go pipe: the listener's ack comes on it, at go_fd.
  int control_fd = -1;

  void AddFd(FdMove move) { fds[fd_count++] = move; }
  void AddLimit(Limit limit) { rlimits[rlimit_count++] = limit; }
};

// The largest run plan a prepared child takes (argv, environment, seccomp program and the
// tables); a bigger plan goes to a child cloned for it (RunChild).
inline constexpr size_t kMaxExecPlanBytes = 64 * 1024;

// Runs in the child after clone(); never returns.
[[noreturn]] void RunChild(const ChildPlan& plan);

// Runs in a prepared child after clone(); never returns. `identity` holds the namespaces,
// root and ids, and control_fd. The child closes every other inherited descriptor, waits for
// one byte ("go": id maps and cgroup done), runs the steps up to the empty root, sends kReady
// on the control socket and waits for its run's plan (SendExecPlan); end-of-file there
// (the parent is gone or discards it) ends it quietly. A failing step sends kFailed on the
// control socket before the plan came, on the plan's report pipe after.
[[noreturn]] void RunPreparedChild(const ChildPlan& identity);

// Whether the run's part of `plan` fits one message to a prepared child (kMaxExecPlanBytes).
bool FitsExecPlan(const ChildPlan& plan);

// Sends the run's part of `plan` to a prepared child as one message on `control_fd`: the
// descriptors of plan.fds (their `from` numbers are the caller's) as SCM_RIGHTS, the targets,
// limits, seccomp program, argv, environment and hostname as bytes; go_fd names where the child
// puts its control socket. The caller's descriptors stay its own. Errors: kBadSpec when the plan
// exceeds kMaxExecPlanBytes (nothing was sent), else the failing call and errno.
Status SendExecPlan(int control_fd, const ChildPlan& plan);

}  // namespace zerofarm::sandbox
