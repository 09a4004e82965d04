#include "child_setup.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <linux/close_range.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

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
    "close inherited descriptors",
    "receive the run's plan",
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
  const size_t count = static_cast<size_t>(plan.fd_count);
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
    for (int i = 0; i < plan.fd_count; ++i) keep = keep || plan.fds[i].to == fd;
    if (!keep) ::close(fd);
  }
  return report;
}

void SetLimits(const ChildPlan& plan, int report) {
  for (int i = 0; i < plan.rlimit_count; ++i) {
    const ChildPlan::Limit& limit = plan.rlimits[i];
    const rlimit rl = {limit.value, limit.value};
    if (::setrlimit(static_cast<__rlimit_resource>(limit.resource), &rl) != 0) {
      Fail(report, kStepSetRlimits);
    }
  }
  // The niceness adds to the one the child was cloned with (a runner started under `nice`):
  // lowering the priority needs no privilege, raising it would (EPERM in the user namespace).
  if (plan.nice != 0) {
    errno = 0;
    const int current = ::getpriority(PRIO_PROCESS, 0);
    const int base = errno == 0 ? current : 0;
    const int target = base + plan.nice < 19 ? base + plan.nice : 19;
    if (target > base && ::setpriority(PRIO_PROCESS, 0, target) != 0) {
      Fail(report, kStepSetRlimits);
    }
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

// The steps that do not depend on the run: signals, session, the empty root.
void IdentitySteps(const ChildPlan& plan, int report) {
  // Signals stay blocked (the parent blocked them around clone) until just before exec.
  ResetSignalHandlers(report);
  if (::setsid() < 0) Fail(report, kStepSetsid);
  if (plan.new_mount_ns) EnterEmptyRoot(plan, report);
}

// The run's steps: hostname, ids, capabilities, descriptors, limits, no new privileges,
// seccomp, exec.
[[noreturn]] void ExecSteps(const ChildPlan& plan, int report) {
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
  Send(report, ChildMessage::kExecuting, kStepExec, 0, 0);
  ::syscall(SYS_execveat, plan.exec_fd, "", plan.argv, plan.envp, AT_EMPTY_PATH);
  Fail(report, kStepExec);
}

// The run's plan message: the header, then WireFd[fd_count], Limit[rlimit_count],
// sock_filter[filter_len], and argv's then envp's strings, then the hostname when there is
// one, each with its NUL. Every part's
// size is a multiple of 8, so each array is aligned.
constexpr uint32_t kExecPlanMagic = 0x7a66706c;
constexpr int kMaxPlanPointers = static_cast<int>(kMaxExecPlanBytes / 8);
struct ExecPlanHeader {
  uint32_t magic;
  uint32_t bytes;
  int32_t fd_count;
  int32_t rlimit_count;
  int32_t nice;
  int32_t first_free_fd;
  int32_t report_fd;
  int32_t go_fd;
  int32_t exec_fd;
  int32_t filter_len;
  int32_t listener;
  int32_t argc;
  int32_t envc;
  int32_t has_hostname;
};
struct WireFd {
  int32_t to;
  int32_t cloexec;
};
static_assert(sizeof(ExecPlanHeader) % 8 == 0 && sizeof(WireFd) == 8);
static_assert(sizeof(ChildPlan::Limit) % 8 == 0 && sizeof(sock_filter) == 8);

// A prepared child's own copy (the clone copied the address space): it fills these without
// allocating. g_report is the report pipe's number once the plan came.
alignas(16) char g_plan_bytes[kMaxExecPlanBytes];
alignas(cmsghdr) char g_plan_control[CMSG_SPACE(sizeof(int) * kMaxFdMoves)];
char* g_plan_pointers[kMaxPlanPointers];
sock_filter g_plan_filter[BPF_MAXINSNS];
sock_fprog g_plan_fprog;
ChildPlan g_plan;
int g_report = -1;

// Reads the run's plan into g_plan (identity fields from `identity`); ends the child quietly
// at end-of-file.
const ChildPlan& ReceivePlan(const ChildPlan& identity) {
  const int control = identity.control_fd;
  iovec iov{g_plan_bytes, sizeof g_plan_bytes};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = g_plan_control;
  msg.msg_controllen = sizeof g_plan_control;
  ssize_t n;
  do {
    n = ::recvmsg(control, &msg, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  if (n == 0) ::_exit(0);
  if (n < 0) Fail(control, kStepReceivePlan);
  int received[kMaxFdMoves];
  int received_count = 0;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count && received_count < kMaxFdMoves; ++i) {
      std::memcpy(&received[received_count++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
    }
  }
  ExecPlanHeader h;
  if (static_cast<size_t>(n) < sizeof h || (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0) {
    errno = EPROTO;
    Fail(control, kStepReceivePlan);
  }
  std::memcpy(&h, g_plan_bytes, sizeof h);
  const size_t fixed = sizeof h + sizeof(WireFd) * static_cast<size_t>(h.fd_count) +
                       sizeof(ChildPlan::Limit) * static_cast<size_t>(h.rlimit_count) +
                       sizeof(sock_filter) * static_cast<size_t>(h.filter_len);
  if (h.magic != kExecPlanMagic || h.bytes != static_cast<size_t>(n) || h.fd_count < 0 ||
      h.fd_count != received_count || h.fd_count + 1 > kMaxFdMoves || h.rlimit_count < 0 ||
      h.rlimit_count > kMaxRlimits || h.filter_len < 0 || h.filter_len > BPF_MAXINSNS ||
      h.argc < 0 || h.envc < 0 || h.argc + h.envc + 2 > kMaxPlanPointers ||
      fixed > static_cast<size_t>(n)) {
    errno = EPROTO;
    Fail(control, kStepReceivePlan);
  }
  ChildPlan& plan = g_plan;
  plan = identity;
  const char* p = g_plan_bytes + sizeof h;
  plan.fd_count = 0;
  int report = -1;
  for (int i = 0; i < h.fd_count; ++i, p += sizeof(WireFd)) {
    WireFd w;
    std::memcpy(&w, p, sizeof w);
    plan.AddFd({received[i], w.to, w.cloexec != 0});
    if (w.to == h.report_fd) report = received[i];
  }
  plan.AddFd({control, h.go_fd, true});
  plan.rlimit_count = h.rlimit_count;
  std::memcpy(plan.rlimits, p, sizeof(ChildPlan::Limit) * static_cast<size_t>(h.rlimit_count));
  p += sizeof(ChildPlan::Limit) * static_cast<size_t>(h.rlimit_count);
  plan.seccomp = nullptr;
  if (h.filter_len > 0) {
    std::memcpy(g_plan_filter, p, sizeof(sock_filter) * static_cast<size_t>(h.filter_len));
    g_plan_fprog.len = static_cast<unsigned short>(h.filter_len);
    g_plan_fprog.filter = g_plan_filter;
    plan.seccomp = &g_plan_fprog;
  }
  p += sizeof(sock_filter) * static_cast<size_t>(h.filter_len);
  // The strings: argc + envc NUL-terminated pieces up to the message's end.
  const char* const end = g_plan_bytes + n;
  char** out = g_plan_pointers;
  for (int i = 0; i < h.argc + h.envc; ++i) {
    if (i == h.argc) *out++ = nullptr;
    const char* s = p;
    while (p < end && *p != '\0') ++p;
    if (p == end) {
      errno = EPROTO;
      Fail(report >= 0 ? report : control, kStepReceivePlan);
    }
    ++p;
    *out++ = const_cast<char*>(s);
  }
  if (h.envc == 0) *out++ = nullptr;
  *out = nullptr;
  plan.hostname = nullptr;
  if (h.has_hostname != 0) {
    plan.hostname = p;
    while (p < end && *p != '\0') ++p;
    if (p == end) {
      errno = EPROTO;
      Fail(report >= 0 ? report : control, kStepReceivePlan);
    }
  }
  plan.argv = g_plan_pointers;
  plan.envp = g_plan_pointers + h.argc + 1;
  plan.nice = h.nice;
  plan.first_free_fd = h.first_free_fd;
  plan.report_fd = h.report_fd;
  plan.go_fd = h.go_fd;
  plan.exec_fd = h.exec_fd;
  plan.seccomp_listener = h.listener != 0;
  plan.parent_go_write_fd = -1;
  if (report < 0) {
    errno = EPROTO;
    Fail(control, kStepReceivePlan);
  }
  g_report = report;
  return plan;
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
  for (int i = 0; i < plan.fd_count; ++i) {
    if (plan.fds[i].to == plan.report_fd) report = plan.fds[i].from;
    if (plan.fds[i].to == plan.go_fd) go = plan.fds[i].from;
  }

  if (!ReadByte(go)) Fail(report, kStepWaitForParent);
  IdentitySteps(plan, report);
  ExecSteps(plan, report);
}

void RunPreparedChild(const ChildPlan& identity) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  const int control = identity.control_fd;
  // Copies of the parent's descriptors (other runs' pipes among them) must not stay open
  // while this child waits: a relay would miss its end-of-file.
  if ((control > 0 && ::syscall(SYS_close_range, 0, control - 1, 0) != 0) ||
      ::syscall(SYS_close_range, control + 1, ~0U, 0) != 0) {
    Fail(control, kStepCloseInherited);
  }
  if (!ReadByte(control)) {
    if (errno == EPIPE) ::_exit(0);
    Fail(control, kStepWaitForParent);
  }
  IdentitySteps(identity, control);
  Send(control, ChildMessage::kReady, 0, 0, 0);
  const ChildPlan& plan = ReceivePlan(identity);
  ExecSteps(plan, g_report);
}

namespace {

// The run plan's message size, and its argv and environment counts.
size_t ExecPlanBytes(const ChildPlan& plan, int* argc, int* envc) {
  size_t string_bytes = 0;
  *argc = *envc = 0;
  for (char* const* a = plan.argv; *a != nullptr; ++a, ++*argc) string_bytes += Length(*a) + 1;
  for (char* const* e = plan.envp; *e != nullptr; ++e, ++*envc) string_bytes += Length(*e) + 1;
  if (plan.hostname != nullptr) string_bytes += Length(plan.hostname) + 1;
  const size_t filter_len = plan.seccomp != nullptr ? plan.seccomp->len : 0;
  return sizeof(ExecPlanHeader) + sizeof(WireFd) * static_cast<size_t>(plan.fd_count) +
         sizeof(ChildPlan::Limit) * static_cast<size_t>(plan.rlimit_count) +
         sizeof(sock_filter) * filter_len + string_bytes;
}

}  // namespace

bool FitsExecPlan(const ChildPlan& plan) {
  int argc = 0, envc = 0;
  const size_t bytes = ExecPlanBytes(plan, &argc, &envc);
  return bytes <= kMaxExecPlanBytes && argc + envc + 2 <= kMaxPlanPointers &&
         plan.fd_count + 1 <= kMaxFdMoves;
}

Status SendExecPlan(int control_fd, const ChildPlan& plan) {
  if (!FitsExecPlan(plan)) {
    return Status::Error(ErrorCode::kBadSpec, "the run's plan is too large for a prepared child");
  }
  int argc = 0, envc = 0;
  const size_t total = ExecPlanBytes(plan, &argc, &envc);
  ExecPlanHeader h{};
  h.magic = kExecPlanMagic;
  h.fd_count = plan.fd_count;
  h.rlimit_count = plan.rlimit_count;
  h.nice = plan.nice;
  h.first_free_fd = plan.first_free_fd;
  h.report_fd = plan.report_fd;
  h.go_fd = plan.go_fd;
  h.exec_fd = plan.exec_fd;
  h.filter_len = plan.seccomp != nullptr ? plan.seccomp->len : 0;
  h.listener = plan.seccomp_listener ? 1 : 0;
  h.argc = argc;
  h.envc = envc;
  h.has_hostname = plan.hostname != nullptr ? 1 : 0;
  h.bytes = static_cast<uint32_t>(total);
  std::string buf;
  buf.reserve(total);
  buf.append(reinterpret_cast<const char*>(&h), sizeof h);
  int fds[kMaxFdMoves];
  for (int i = 0; i < plan.fd_count; ++i) {
    const WireFd w{plan.fds[i].to, plan.fds[i].cloexec ? 1 : 0};
    buf.append(reinterpret_cast<const char*>(&w), sizeof w);
    fds[i] = plan.fds[i].from;
  }
  buf.append(reinterpret_cast<const char*>(plan.rlimits),
             sizeof(ChildPlan::Limit) * static_cast<size_t>(plan.rlimit_count));
  if (h.filter_len > 0) {
    buf.append(reinterpret_cast<const char*>(plan.seccomp->filter),
               sizeof(sock_filter) * static_cast<size_t>(h.filter_len));
  }
  for (char* const* a = plan.argv; *a != nullptr; ++a) buf.append(*a, Length(*a) + 1);
  for (char* const* e = plan.envp; *e != nullptr; ++e) buf.append(*e, Length(*e) + 1);
  if (plan.hostname != nullptr) buf.append(plan.hostname, Length(plan.hostname) + 1);

  iovec iov{buf.data(), buf.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdMoves)];
  if (plan.fd_count > 0) {
    const size_t fd_bytes = sizeof(int) * static_cast<size_t>(plan.fd_count);
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(fd_bytes);
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(fd_bytes);
    std::memcpy(CMSG_DATA(c), fds, fd_bytes);
  }
  ssize_t n;
  do {
    n = ::sendmsg(control_fd, &msg, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return ErrnoError("send the run's plan to a prepared sandbox", errno);
  if (static_cast<size_t>(n) != buf.size()) {
    return Status::Error(ErrorCode::kSandboxSetup, "short send of the run's plan");
  }
  return Status::Ok();
}

}  // namespace zerofarm::sandbox
