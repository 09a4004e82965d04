#include "prepared_sandbox.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>
#include <utility>

namespace zerofarm::sandbox {
namespace {

// The program's ids inside its user namespace, and outside when the runner is root.
constexpr uint32_t kInsideId = 1000;
constexpr uint32_t kOutsideIdWhenRoot = 65534;  // nobody
// The identity steps take a millisecond or two; a child that is not ready by then is stuck.
constexpr int kReadyTimeoutMs = 10000;
// Prepared sandboxes kept by default: enough for a burst on a small machine; each is a
// copy-on-write clone of this process waiting in the kernel.
constexpr size_t kDefaultPoolSize = 4;
// Used cgroups are removed while no run is in progress, or once this many wait.
constexpr size_t kMaxRetired = 8;
// After a failed preparation the pool waits this long before trying again (runs prepare
// their own meanwhile, and report the error).
constexpr std::chrono::seconds kRetryAfterFailure{1};

Status WriteProcFile(pid_t pid, const char* name, const std::string& text) {
  const std::string path = "/proc/" + std::to_string(pid) + "/" + name;
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoError("open " + path, errno);
  if (::write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
    return ErrnoError("write " + path, errno);
  }
  return Status::Ok();
}

// Whether the child has ended (its pidfd is readable).
bool Ended(int pidfd) {
  pollfd pfd{pidfd, POLLIN, 0};
  return ::poll(&pfd, 1, 0) > 0;
}

}  // namespace

PreparedSandbox::PreparedSandbox(PreparedSandbox&& other) noexcept
    : pid(std::exchange(other.pid, -1)),
      pidfd(std::move(other.pidfd)),
      control(std::move(other.control)),
      cgroup(std::move(other.cgroup)) {
  other.cgroup.reset();
}

PreparedSandbox::~PreparedSandbox() {
  if (pid <= 0) return;
  if (pidfd.valid()) {
    ::syscall(SYS_pidfd_send_signal, pidfd.get(), SIGKILL, nullptr, 0);
  } else {
    ::kill(pid, SIGKILL);
  }
  int status;
  while (::waitpid(pid, &status, __WALL) < 0 && errno == EINTR) {
  }
  pid = -1;
  // The cgroup (a member) is removed after this, with no process left in it.
}

void PlanIdentity(const HostLayers& host, const char* hostname, ChildPlan* plan) {
  plan->new_user_ns = host.user_ns;
  plan->new_mount_ns = host.mount_ns;
  plan->new_uts_ns = host.uts_ns;
  plan->hostname = hostname;
  const bool root = ::geteuid() == 0;
  plan->call_setgroups = !host.user_ns || root;
  plan->uid = host.user_ns ? kInsideId : (root ? kOutsideIdWhenRoot : ::geteuid());
  plan->gid = host.user_ns ? kInsideId : (root ? kOutsideIdWhenRoot : ::getegid());
}

unsigned long NamespaceFlags(const HostLayers& host, bool own_network) {
  unsigned long flags = 0;
  if (host.user_ns) flags |= CLONE_NEWUSER;
  if (host.mount_ns) flags |= CLONE_NEWNS;
  if (host.pid_ns) flags |= CLONE_NEWPID;
  if (host.net_ns && own_network) flags |= CLONE_NEWNET;
  if (host.ipc_ns) flags |= CLONE_NEWIPC;
  if (host.uts_ns) flags |= CLONE_NEWUTS;
  return flags;
}

Status WriteIdMaps(pid_t pid) {
  const bool root = ::geteuid() == 0;
  const std::string outside_uid = std::to_string(root ? kOutsideIdWhenRoot : ::geteuid());
  const std::string outside_gid = std::to_string(root ? kOutsideIdWhenRoot : ::getegid());
  if (!root) ZF_RETURN_IF_ERROR(WriteProcFile(pid, "setgroups", "deny"));
  ZF_RETURN_IF_ERROR(
      WriteProcFile(pid, "uid_map", std::to_string(kInsideId) + " " + outside_uid + " 1"));
  return WriteProcFile(pid, "gid_map", std::to_string(kInsideId) + " " + outside_gid + " 1");
}

Result<PreparedSandbox> PrepareSandbox(const HostLayers& host, uint64_t memory_bytes,
                                       bool own_network) {
  PreparedSandbox p;
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
    return ErrnoError("socketpair (prepared sandbox)", errno);
  }
  p.control = UniqueFd(sv[0]);
  UniqueFd child_end(sv[1]);
  if (host.cgroup_v2_memory || host.cgroup_v1_memory) {
    Result<MemoryCgroup> cg = MemoryCgroup::Create(host, memory_bytes);
    if (!cg.ok()) return cg.status();
    p.cgroup.emplace(std::move(*cg));
  }
  ChildPlan identity;
  PlanIdentity(host, nullptr, &identity);  // the hostname comes with the run
  identity.control_fd = child_end.get();
  {
    BlockSignals blocked;
    int pidfd = -1;
    const long pid = ::syscall(SYS_clone, NamespaceFlags(host, own_network) | CLONE_PIDFD | SIGCHLD,
                               nullptr, &pidfd, nullptr, nullptr);
    if (pid < 0) return ErrnoError("clone (sandbox namespaces)", errno);
    if (pid == 0) RunPreparedChild(identity);
    p.pid = static_cast<pid_t>(pid);
    p.pidfd = UniqueFd(pidfd);
  }
  child_end.Close();
  // The pool's thread runs as SCHED_BATCH (see Refill); the program runs as any other.
  if (::sched_getscheduler(0) == SCHED_BATCH) {
    const sched_param none{};
    if (::sched_setscheduler(p.pid, SCHED_OTHER, &none) != 0) {
      return ErrnoError("sched_setscheduler (prepared sandbox)", errno);
    }
  }
  if (host.user_ns) ZF_RETURN_IF_ERROR(WriteIdMaps(p.pid));
  if (p.cgroup) ZF_RETURN_IF_ERROR(p.cgroup->AddProcess(p.pid));
  const char go = 1;
  if (::write(p.control.get(), &go, 1) != 1)
    return ErrnoError("write go (prepared sandbox)", errno);

  pollfd pfd{p.control.get(), POLLIN, 0};
  int n;
  do {
    n = ::poll(&pfd, 1, kReadyTimeoutMs);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return ErrnoError("poll (prepared sandbox)", errno);
  if (n == 0) return Status::Error(ErrorCode::kSandboxSetup, "a prepared sandbox was not ready");
  ChildMessage m;
  const ssize_t got = ::read(p.control.get(), &m, sizeof m);
  if (got == static_cast<ssize_t>(sizeof m) && m.kind == ChildMessage::kReady) return p;
  if (got == static_cast<ssize_t>(sizeof m) && m.kind == ChildMessage::kFailed) {
    return Status::Error(ErrorCode::kSandboxSetup, std::string("step '") + ChildStepName(m.step) +
                                                       "' failed: " + std::strerror(m.err));
  }
  return Status::Error(ErrorCode::kSandboxSetup, "a prepared sandbox ended before it was ready");
}

struct PreparedSandboxPool::State {
  std::mutex mu;
  std::condition_variable wake;  // the pool's thread waits on it
  std::deque<PreparedSandbox> ready;
  std::deque<MemoryCgroup> retired;
  size_t size = kDefaultPoolSize;
  bool started = false;
  std::optional<HostLayers> host;  // set by the first Take
  uint64_t memory_bytes = 0;       // the last run's limit: the next sandbox's
  size_t runs_in_progress = 0;

  // What the pool's thread does next: remove a used cgroup, or prepare a sandbox. The first
  // half of the pool is refilled at once; the rest, and the removals, wait until no run is
  // in progress (or too many removals wait), so that they do not take a run's CPU.
  bool ShouldRemove() const {
    return !retired.empty() && (runs_in_progress == 0 || retired.size() > kMaxRetired);
  }
  bool ShouldPrepare() const {
    return ready.size() < size && (runs_in_progress == 0 || ready.size() < (size + 1) / 2);
  }
};

namespace {

PreparedSandboxPool* g_pool = nullptr;

}  // namespace

PreparedSandboxPool& PreparedSandboxPool::Get() {
  // Never destroyed: the pool's thread runs until the process ends.
  static PreparedSandboxPool* pool = [] {
    auto* created = new PreparedSandboxPool;
    created->state_ = new State;
    g_pool = created;
    // Around fork(): the pool's lock is held, so that the child gets a consistent copy; the
    // child lets go of its parent's sandboxes (their descriptors, not their processes, which
    // are the parent's) and starts an empty pool without a thread.
    ::pthread_atfork([] { g_pool->state_->mu.lock(); }, [] { g_pool->state_->mu.unlock(); },
                     [] {
                       State* old = g_pool->state_;
                       for (PreparedSandbox& p : old->ready) {
                         ::close(p.pidfd.Release());
                         ::close(p.control.Release());
                         p.pid = -1;
                       }
                       auto* fresh = new State;
                       fresh->size = old->size;
                       g_pool->state_ = fresh;
                       // `old` is left as it is (locked, its cgroups the parent's).
                     });
    return created;
  }();
  return *pool;
}

void PreparedSandboxPool::Refill(State* s) {
  std::unique_lock<std::mutex> lock(s->mu);
  // The pool's sandboxes share one empty network namespace: this thread's own, which it
  // enters once (it has no interface up; the seccomp policy refuses socket and socketpair).
  // A runner that may not create one gives each sandbox its own.
  const bool own_network = !(s->host->net_ns && ::unshare(CLONE_NEWNET) == 0);
  // Runs come first: a SCHED_BATCH thread is not favoured at wakeup, so waking this thread at
  // a run's end does not preempt the run's own thread on a busy machine.
  const sched_param none{};
  ::sched_setscheduler(0, SCHED_BATCH, &none);
  for (;;) {
    s->wake.wait(lock, [s] { return s->ShouldRemove() || s->ShouldPrepare(); });
    if (s->ShouldRemove() && (!s->ShouldPrepare() || s->retired.size() > kMaxRetired)) {
      std::optional<MemoryCgroup> gone(std::move(s->retired.front()));
      s->retired.pop_front();
      lock.unlock();
      gone.reset();
      lock.lock();
      continue;
    }
    const HostLayers host = *s->host;
    const uint64_t memory_bytes = s->memory_bytes;
    lock.unlock();
    Result<PreparedSandbox> p = PrepareSandbox(host, memory_bytes, own_network);
    if (!p.ok()) {
      std::fprintf(stderr, "zerofarm sandbox: cannot prepare a sandbox: %s\n",
                   p.status().ToString().c_str());
      std::this_thread::sleep_for(kRetryAfterFailure);
    }
    lock.lock();
    if (p.ok()) s->ready.push_back(std::move(*p));
  }
}

Result<PreparedSandbox> PreparedSandboxPool::Take(const HostLayers& host, uint64_t memory_bytes) {
  State* s = state_;
  std::optional<PreparedSandbox> taken;
  {
    std::lock_guard<std::mutex> lock(s->mu);
    if (!s->host) s->host = host;
    s->memory_bytes = memory_bytes;
    if (!s->ready.empty()) {
      taken.emplace(std::move(s->ready.front()));
      s->ready.pop_front();
    }
    if (!s->started && s->size > 0) {
      s->started = true;
      std::thread(Refill, s).detach();
    }
  }
  if (taken) s->wake.notify_one();
  // A child killed from outside while it waited is discarded (and reaped).
  if (taken && !Ended(taken->pidfd.get())) {
    if (taken->cgroup) ZF_RETURN_IF_ERROR(taken->cgroup->SetLimit(memory_bytes));
    return std::move(*taken);
  }
  return PrepareSandbox(host, memory_bytes, true);
}

void PreparedSandboxPool::Retire(MemoryCgroup cgroup) {
  State* s = state_;
  {
    std::lock_guard<std::mutex> lock(s->mu);
    if (!s->started) return;  // removed here, by `cgroup`'s destructor
    s->retired.push_back(std::move(cgroup));
  }
  s->wake.notify_one();
}

PreparedSandboxPool::RunInProgress::RunInProgress(PreparedSandboxPool& pool) : state_(pool.state_) {
  std::lock_guard<std::mutex> lock(state_->mu);
  ++state_->runs_in_progress;
}

PreparedSandboxPool::RunInProgress::~RunInProgress() {
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    --state_->runs_in_progress;
  }
  state_->wake.notify_one();
}

void PreparedSandboxPool::SetSize(size_t size) {
  State* s = state_;
  std::deque<PreparedSandbox> dropped;
  {
    std::lock_guard<std::mutex> lock(s->mu);
    s->size = size;
    while (s->ready.size() > size) {
      dropped.push_back(std::move(s->ready.back()));
      s->ready.pop_back();
    }
  }
  s->wake.notify_one();
  // `dropped` kills and reaps them here.
}

std::vector<pid_t> PreparedSandboxPool::Pids() {
  State* s = state_;
  std::lock_guard<std::mutex> lock(s->mu);
  std::vector<pid_t> pids;
  for (const PreparedSandbox& p : s->ready) pids.push_back(p.pid);
  return pids;
}

}  // namespace zerofarm::sandbox
