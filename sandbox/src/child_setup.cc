#include "child_setup.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <linux/close_range.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

namespace zerofarm::sandbox {
namespace {

constexpr const char* kStepNames[] = {
    "wait for parent (uid map, cgroup)",
    "reset signal handlers",
    "setsid",
    "mount / private",
    "mount empty tmpfs",
    "chdir into empty root",
    "pivot_root",
    "detach old root",
    "chdir /",
    "remount root read-only",
    "sethostname",
    "setgroups",
    "setresgid",
    "setresuid",
    "drop capabilities",
    "PR_SET_PDEATHSIG",
    "park descriptors",
    "place channel descriptors",
    "close other descriptors",
    "setrlimit or setpriority",
    "PR_SET_NO_NEW_PRIVS",
    "seccomp filter",
    "send seccomp listener",
    "wait for listener ack",
    "unblock signals",
    "execveat",
};
static_assert(sizeof(kStepNames) / sizeof(kStepNames[0]) == kStepCount);

// Only system calls from here on.
void Send(int fd, ChildMessage::Kind kind, int32_t step, int32_t err, int32_t value) {
  ChildMessage m;
  m.kind = kind;
  m.step = step;
  m.err = err;
  m.value = value;
  ssize_t n;
  do {
    n = ::write(fd, &m, sizeof m);
  } while (n < 0 && errno == EINTR);
}

[[noreturn]] void Fail(int report_fd, int32_t step) {
  const int err = errno;
  Send(report_fd, ChildMessage::kFailed, step, err, 0);
  ::_exit(127);
}

bool ReadByte(int fd) {
  char c;
  ssize_t n;
  do {
    n = ::read(fd, &c, 1);
  } while (n < 0 && errno == EINTR);
  if (n == 0) errno = EPIPE;  // the parent went away
  return n == 1;
}

size_t Length(const char* s) {
  size_t n = 0;
  while (s[n] != '\0') ++n;
  return n;
}

// The steps of RunChild. Each makes only system calls and, on failure, reports the step with
// errno on `report` (the report pipe's current number) and exits.

// Handlers the parent installed must not run here or survive into the program.
void ResetSignalHandlers(int report) {
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    struct sigaction sa = {};
    sa.sa_handler = SIG_DFL;
    if (::sigaction(sig, &sa, nullptr) != 0 && errno != EINVAL) {
      Fail(report, kStepResetSignals);
    }
  }
}

// In the new mount namespace: an empty, read-only tmpfs becomes the root; the old root is
// detached.
void EnterEmptyRoot(const ChildPlan& plan, int report) {
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    Fail(report, kStepMountPrivate);
  }
  if (::mount("zerofarm", plan.empty_root_at, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
              "size=4k,nr_inodes=2,mode=0555") != 0) {
    Fail(report, kStepMountEmptyRoot);
  }
  if (::chdir(plan.empty_root_at) != 0) Fail(report, kStepEnterEmptyRoot);
  // pivot_root(".", "."): the old root is stacked under the new one, then detached.
  if (::syscall(SYS_pivot_root, ".", ".") != 0) Fail(report, kStepPivotRoot);
  if (::umount2(".", MNT_DETACH) != 0) Fail(report, kStepDetachOldRoot);
  if (::chdir("/") != 0) Fail(report, kStepChdirRoot);
  if (::mount(nullptr, "/", nullptr,
              MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0) {
    Fail(report, kStepRemountRootReadOnly);
  }
}

// Groups, then gid, then uid: the plan's ids in every slot.
void SetIds(const ChildPlan& plan, int report) {
  // Raw calls: glibc's wrappers would signal the parent's other threads, copied but absent.
  if (plan.call_setgroups && ::syscall(SYS_setgroups, 0, nullptr) != 0)
    Fail(report, kStepSetgroups);
  if (::syscall(SYS_setresgid, plan.gid, plan.gid, plan.gid) != 0) Fail(report, kStepSetgid);
  if (::syscall(SYS_setresuid, plan.uid, plan.uid, plan.uid) != 0) Fail(report, kStepSetuid);
}

// Empty bounding, ambient, effective, permitted and inheritable sets.
void DropCapabilities(int report) {
  for (int cap = 0; cap <= CAP_LAST_CAP; ++cap) {
    if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL && errno != EPERM) {
      Fail(report, kStepDropCapabilities);
    }
  }
  if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) {
    Fail(report, kStepDropCapabilities);
  }
  __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  if (::syscall(SYS_capset, &header, data) != 0) Fail(report, kStepDropCapabilities);
}

// Parks every descriptor of the plan above the targets, places each at its number, and closes
// every other one. Returns the report pipe's number from then on (plan.report_fd).
int PlaceDescriptors(const ChildPlan& plan, int report) {
  int parked[256];
  const size_t count = plan.fds.size();
  if (count > sizeof parked / sizeof parked[0]) {
    errno = EMFILE;
    Fail(report, kStepParkDescriptors);
  }
  for (size_t i = 0; i < count; ++i) {
    parked[i] = ::fcntl(plan.fds[i].from, F_DUPFD_CLOEXEC, plan.first_free_fd);
    if (parked[i] < 0) Fail(report, kStepParkDescriptors);
    if (plan.fds[i].from == report) report = parked[i];
  }
  for (size_t i = 0; i < count; ++i) {
    const FdMove& m = plan.fds[i];
    if (::dup3(parked[i], m.to, m.cloexec ? O_CLOEXEC : 0) < 0) {
      Fail(report, kStepPlaceDescriptors);
    }
  }
  report = plan.report_fd;
  if (::syscall(SYS_close_range, plan.first_free_fd, ~0U, 0) != 0) {
    Fail(report, kStepCloseOtherDescriptors);
  }
  for (int fd = 0; fd < plan.first_free_fd; ++fd) {
    bool keep = false;
    for (const FdMove& m : plan.fds) keep = keep || m.to == fd;
    if (!keep) ::close(fd);
  }
  return report;
}

void SetLimits(const ChildPlan& plan, int report) {
  for (const ChildPlan::Limit& limit : plan.rlimits) {
    const rlimit rl = {limit.value, limit.value};
    if (::setrlimit(static_cast<__rlimit_resource>(limit.resource), &rl) != 0) {
      Fail(report, kStepSetRlimits);
    }
  }
  if (plan.nice != 0 && ::setpriority(PRIO_PROCESS, 0, plan.nice) != 0) {
    Fail(report, kStepSetRlimits);
  }
}

// Needs plan.seccomp. With a listener, sends it to the parent and waits for the parent's ack.
void InstallSeccomp(const ChildPlan& plan, int report) {
  const unsigned flags = plan.seccomp_listener ? SECCOMP_FILTER_FLAG_NEW_LISTENER : 0;
  const long listener = ::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, plan.seccomp);
  if (listener < 0) Fail(report, kStepSeccomp);
  if (plan.seccomp_listener) {
    // The parent copies the listener out with pidfd_getfd; it is close-on-exec here.
    Send(report, ChildMessage::kListener, kStepSendListener, 0, static_cast<int32_t>(listener));
    if (!ReadByte(plan.go_fd)) Fail(report, kStepWaitForListenerAck);
  }
}

}  // namespace

const char* ChildStepName(int32_t step) {
  return step >= 0 && step < kStepCount ? kStepNames[step] : "unknown step";
}

void RunChild(const ChildPlan& plan) {
  // A runner that dies (kill -9 of its process) must not leave this child behind holding
  // copies of its descriptors (a listening socket, say): die with it, and never wait for a go
  // that cannot come. The death signal is set again after the credential changes below.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  if (plan.parent_go_write_fd >= 0) ::close(plan.parent_go_write_fd);
  // Until the descriptors are placed, the report and go pipes have their parent numbers.
  int report = -1, go = -1;
  for (const FdMove& m : plan.fds) {
    if (m.to == plan.report_fd) report = m.from;
    if (m.to == plan.go_fd) go = m.from;
  }

  if (!ReadByte(go)) Fail(report, kStepWaitForParent);

  // Signals stay blocked (the parent blocked them around clone) until just before exec.
  ResetSignalHandlers(report);
  if (::setsid() < 0) Fail(report, kStepSetsid);

  if (plan.new_mount_ns) EnterEmptyRoot(plan, report);
  if (plan.new_uts_ns && plan.hostname != nullptr) {
    if (::sethostname(plan.hostname, Length(plan.hostname)) != 0) {
      Fail(report, kStepSetHostname);
    }
  }
  SetIds(plan, report);
  DropCapabilities(report);
  // After the credential changes, which clear it.
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) Fail(report, kStepParentDeathSignal);

  report = PlaceDescriptors(plan, report);
  SetLimits(plan, report);
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) Fail(report, kStepNoNewPrivs);

  // From here on every call must pass the filter: write, read, rt_sigprocmask, execveat.
  if (plan.seccomp != nullptr) InstallSeccomp(plan, report);
  sigset_t none;
  sigemptyset(&none);
  if (::sigprocmask(SIG_SETMASK, &none, nullptr) != 0) Fail(report, kStepUnblockSignals);
  ::syscall(SYS_execveat, plan.exec_fd, "", plan.argv, plan.envp, AT_EMPTY_PATH);
  Fail(report, kStepExec);
}

}  // namespace zerofarm::sandbox
