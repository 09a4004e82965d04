// The sandbox child's setup: a flat, ordered list of steps run between clone() and execveat().
// Everything the child needs is prepared by the parent in a ChildPlan; the child only makes
// system calls (no allocation, no locks: the parent may have other threads). A failing step
// sends {step, errno} to the parent on the report pipe and exits; a successful exec closes the
// report pipe (close-on-exec), which is how the parent learns the program started.
#pragma once

#include <linux/filter.h>
#include <sys/resource.h>

#include <cstdint>
#include <vector>

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
  kStepCount
};

const char* ChildStepName(int32_t step);

// What the child sends on the report pipe.
struct ChildMessage {
  enum Kind : int32_t { kFailed = 1, kListener = 2 };
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

struct ChildPlan {
  bool new_mount_ns = false;
  bool new_uts_ns = false;
  bool new_user_ns = false;
  bool call_setgroups = true;          // false when setgroups is denied in the user namespace
  const char* empty_root_at = "/tmp";  // an existing directory the empty tmpfs is mounted on
  const char* hostname = nullptr;
  uint32_t uid = 0;
  uint32_t gid = 0;

  std::vector<FdMove> fds;  // channels (not close-on-exec) and the runner's own (close-on-exec)
  int first_free_fd = 0;    // everything at or above it is closed
  int report_fd = -1;       // child's number, after placement
  int go_fd = -1;           // child's number, after placement
  // The parent's end of the go pipe, inherited by the clone: closed first, so that the child
  // sees end-of-file (and gives up) if the parent dies before it says go.
  int parent_go_write_fd = -1;
  int exec_fd = -1;  // child's number, after placement

  struct Limit {
    int resource;
    rlim_t value;
  };
  std::vector<Limit> rlimits;
  int nice = 0;  // setpriority, with the limits

  const sock_fprog* seccomp = nullptr;  // null: no filter (the host lacks seccomp)
  bool seccomp_listener = false;

  char* const* argv = nullptr;
  char* const* envp = nullptr;
};

// Runs in the child after clone(); never returns.
[[noreturn]] void RunChild(const ChildPlan& plan);

}  // namespace zerofarm::sandbox
