#include "zerofarm/sandbox/runner.h"

#include <fcntl.h>
#include <linux/audit.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <utility>

#include "cgroup.h"
#include "child_setup.h"
#include "prepared_sandbox.h"
#include "syscall_policy.h"
#include "zerofarm/base/unique_fd.h"

namespace zerofarm::sandbox {
namespace {

// Explicit limits of the runner itself.
constexpr size_t kRelayChunk = 1 << 16;  // bytes moved per read
constexpr int kMaxChannels = 64;         // the child parks at most 256 descriptors
// After the sandbox is killed, its pipes close at once; this bounds the wait for a stuck
// outside descriptor (a reader of an output that stopped reading).
constexpr std::chrono::milliseconds kDrainGrace{2000};
// The kernel kills at RLIMIT_CPU by its precise runtime; wait4's tick-sampled user + system
// time can read lower. An unexplained SIGKILL after this share of the limit is the CPU limit.
constexpr double kCpuKillShare = 0.8;

using Clock = std::chrono::steady_clock;

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

double TimevalMs(const timeval& tv) {
  return static_cast<double>(tv.tv_sec) * 1000.0 + static_cast<double>(tv.tv_usec) / 1000.0;
}

Status SetNonBlocking(int fd) {
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
    return ErrnoError("fcntl(O_NONBLOCK)", errno);
  }
  return Status::Ok();
}

bool ValidName(const std::string& name) {
  if (name.empty()) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.';
  });
}

// The seccomp program depends on the exec descriptor's number only; built once per number.
Result<const SyscallFilter*> CachedFilter(int exec_fd, bool notify) {
  static std::mutex mu;
  static std::map<std::pair<int, bool>, SyscallFilter> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find({exec_fd, notify});
  if (it == cache.end()) {
    Result<SyscallFilter> built = BuildSyscallFilter(exec_fd, notify);
    if (!built.ok()) return built.status();
    it = cache.emplace(std::make_pair(exec_fd, notify), std::move(*built)).first;
  }
  return &it->second;
}

// One channel's relay between the sandbox's pipe and the outside end.
struct Relay {
  const Channel* spec = nullptr;
  UniqueFd sandbox;  // parent's end of the pipe (non-blocking)
  UniqueFd child;    // the program's end, closed after clone
  UniqueFd file;     // kFile: the opened file
  int outside = -1;  // kDescriptor or kFile: where bytes come from or go to; -1 for memory
  std::string buf;   // bytes read and not yet written
  size_t buf_off = 0;
  size_t memory_off = 0;  // kMemory input: how much was taken
  bool source_done = false;
  ChannelStats stats;

  bool pending() const { return buf_off < buf.size(); }
};

// Kills the sandbox on every early return; reaps it.
class SandboxProcess {
 public:
  SandboxProcess() = default;
  SandboxProcess(const SandboxProcess&) = delete;
  SandboxProcess& operator=(const SandboxProcess&) = delete;
  ~SandboxProcess() {
    if (pid_ > 0) {
      Kill();
      int status;
      while (::waitpid(pid_, &status, __WALL) < 0 && errno == EINTR) {
      }
    }
  }
  void Set(pid_t pid, UniqueFd pidfd) {
    pid_ = pid;
    pidfd_ = std::move(pidfd);
  }
  pid_t pid() const { return pid_; }
  int pidfd() const { return pidfd_.get(); }
  // Killing the PID namespace's init kills every process in it.
  void Kill() const {
    if (pidfd_.valid()) {
      ::syscall(SYS_pidfd_send_signal, pidfd_.get(), SIGKILL, nullptr, 0);
    } else if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
    }
  }
  void Reaped() { pid_ = -1; }

 private:
  pid_t pid_ = -1;
  UniqueFd pidfd_;
};

const char* SignalName(int sig) {
  const char* abbrev = sigabbrev_np(sig);
  return abbrev != nullptr ? abbrev : "?";
}

Status CheckSpec(const SandboxSpec& spec, const HostLayers& host) {
  if (spec.program == nullptr) return Status::Error(ErrorCode::kBadSpec, "no program");
  if (spec.argv.empty())
    return Status::Error(ErrorCode::kBadSpec, "argv is empty (argv[0] is needed)");
  if (spec.verdict == nullptr) {
    return Status::Error(ErrorCode::kNotValidated, "the program has no validation verdict");
  }
  if (spec.verdict->counts.program_bytes != spec.program->bytes().size()) {
    return Status::Error(ErrorCode::kNotValidated, "the verdict is for a program of another size");
  }
  if (!spec.verdict->accepted() && !spec.options.allow_rejected_program) {
    return Status::Error(ErrorCode::kRejected, "the validator rejected the program");
  }
  if (spec.channels.size() > kMaxChannels)
    return Status::Error(ErrorCode::kBadSpec, "too many channels");
  std::vector<int> targets;
  for (const Channel& c : spec.channels) {
    if (!ValidName(c.name))
      return Status::Error(ErrorCode::kBadSpec, "bad channel name '" + c.name + "'");
    if (c.target_fd < 0 || c.target_fd > 1000) {
      return Status::Error(ErrorCode::kBadSpec, "channel " + c.name + ": bad descriptor number");
    }
    if (std::find(targets.begin(), targets.end(), c.target_fd) != targets.end()) {
      return Status::Error(ErrorCode::kBadSpec,
                           "two channels on descriptor " + std::to_string(c.target_fd));
    }
    targets.push_back(c.target_fd);
    if (c.end.kind == ChannelEnd::Kind::kDescriptor && c.end.fd < 0) {
      return Status::Error(ErrorCode::kBadSpec, "channel " + c.name + ": no descriptor");
    }
    if (c.end.kind == ChannelEnd::Kind::kCallback &&
        (c.direction == Direction::kIn ? !c.end.pull : !c.end.push)) {
      return Status::Error(ErrorCode::kBadSpec, "channel " + c.name + ": no callback");
    }
  }
  const std::vector<std::string> missing = host.Missing();
  for (const std::string& layer : spec.options.required_layers) {
    if (std::find(missing.begin(), missing.end(), layer) != missing.end()) {
      return Status::Error(ErrorCode::kLayerMissing, "required isolation layer '" + layer +
                                                         "' is not available on this host");
    }
  }
  return Status::Ok();
}

Status OpenRelay(const Channel& c, Relay* r) {
  r->spec = &c;
  r->stats.name = c.name;
  r->stats.target_fd = c.target_fd;
  r->stats.direction = c.direction;
  r->stats.quota_bytes = c.quota_bytes;
  Result<Pipe> pipe = MakePipe();
  if (!pipe.ok()) return pipe.status().WithContext("channel " + c.name);
  const bool in = c.direction == Direction::kIn;
  r->sandbox = in ? std::move(pipe->write) : std::move(pipe->read);
  r->child = in ? std::move(pipe->read) : std::move(pipe->write);
  ZF_RETURN_IF_ERROR(SetNonBlocking(r->sandbox.get()));
  switch (c.end.kind) {
    case ChannelEnd::Kind::kDescriptor:
      r->outside = c.end.fd;
      break;
    case ChannelEnd::Kind::kFile:
      r->file =
          UniqueFd(in ? ::open(c.end.path.c_str(), O_RDONLY | O_CLOEXEC)
                      : ::open(c.end.path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
      if (!r->file.valid()) return ErrnoError("channel " + c.name + ": open " + c.end.path, errno);
      r->outside = r->file.get();
      break;
    case ChannelEnd::Kind::kMemory:
    case ChannelEnd::Kind::kCallback:
      break;
  }
  return Status::Ok();
}

// The run's state shared by the relay loop's pieces.
struct Run {
  SandboxProcess process;
  std::vector<Relay> relays;
  UniqueFd report;    // child -> parent messages; EOF at exec
  UniqueFd go;        // parent -> child: the go pipe, or a prepared child's control socket
  UniqueFd listener;  // seccomp notifications
  bool exec_seen = false;
  bool exited = false;
  ChildMessage failure;
  bool failed = false;
  StopRule stop_rule = StopRule::kNone;
  std::string stop_detail;
  std::optional<std::string> seccomp_syscall;
  Clock::time_point start;
  Clock::time_point exec_at;
  Clock::time_point killed_at;

  void Stop(StopRule rule, std::string detail) {
    if (stop_rule == StopRule::kNone) {
      stop_rule = rule;
      stop_detail = std::move(detail);
      killed_at = Clock::now();
    }
    process.Kill();
  }
};

Status OnReport(Run* run) {
  ChildMessage m;
  const ssize_t n = ::read(run->report.get(), &m, sizeof m);
  if (n < 0) {
    if (errno == EINTR || errno == EAGAIN) return Status::Ok();
    return ErrnoError("read report pipe", errno);
  }
  if (n == 0) {
    // Close-on-exec closed it (and every copy a concurrently cloned child held briefly).
    run->report.Close();
    return Status::Ok();
  }
  if (static_cast<size_t>(n) != sizeof m)
    return Status::Error(ErrorCode::kSandboxSetup, "short message");
  if (m.kind == ChildMessage::kExecuting) {
    // The program runs, unless the exec itself fails (then kFailed follows).
    run->exec_seen = true;
    run->exec_at = Clock::now();
  } else if (m.kind == ChildMessage::kFailed) {
    run->failed = true;
    run->failure = m;
  } else if (m.kind == ChildMessage::kListener) {
    const long fd = ::syscall(SYS_pidfd_getfd, run->process.pidfd(), m.value, 0);
    if (fd < 0) return ErrnoError("pidfd_getfd (seccomp listener)", errno);
    run->listener = UniqueFd(static_cast<int>(fd));
    ZF_RETURN_IF_ERROR(SetNonBlocking(run->listener.get()));
    const char go = 1;
    if (::write(run->go.get(), &go, 1) != 1) return ErrnoError("write go pipe", errno);
  }
  return Status::Ok();
}

void OnNotification(Run* run) {
  seccomp_notif req;
  std::memset(&req, 0, sizeof req);
  if (::ioctl(run->listener.get(), SECCOMP_IOCTL_NOTIF_RECV, &req) != 0) {
    if (errno != EINTR && errno != EAGAIN && errno != ENOENT) run->listener.Close();
    return;
  }
  const std::string what = DescribeSyscall(req.data.arch, req.data.nr);
  run->seccomp_syscall = what;
  run->Stop(StopRule::kSeccomp, "seccomp: killed at " + what);
}

// Input, with an empty buffer: takes the next piece from the outside into r->buf, up to the
// quota, and marks the source done at its end or at the quota.
Status FillInput(Relay* r, short revents_outside) {
  const Channel& c = *r->spec;
  const uint64_t left = c.quota_bytes - r->stats.bytes;
  if (left == 0) {
    // Whether more was coming is known for memory; a descriptor or callback may have had
    // more, so it counts as reached.
    r->stats.quota_reached =
        c.end.kind != ChannelEnd::Kind::kMemory || r->memory_off < c.end.bytes.size();
    r->source_done = true;
  } else if (c.end.kind == ChannelEnd::Kind::kCallback) {
    Result<std::string> piece = c.end.pull();
    if (!piece.ok()) return piece.status().WithContext("channel " + c.name);
    if (piece->empty()) {
      r->source_done = true;
    } else {
      r->buf = std::move(*piece);
      r->buf_off = 0;
      if (r->buf.size() > left) {
        r->buf.resize(static_cast<size_t>(left));
        r->stats.quota_reached = true;
        r->source_done = true;
      }
    }
  } else if (c.end.kind == ChannelEnd::Kind::kMemory) {
    const size_t take = std::min<uint64_t>({left, kRelayChunk, c.end.bytes.size() - r->memory_off});
    r->buf.assign(c.end.bytes, r->memory_off, take);
    r->buf_off = 0;
    r->memory_off += take;
    if (take == 0) r->source_done = true;
  } else if (revents_outside != 0) {
    char chunk[kRelayChunk];
    const ssize_t n =
        ::read(r->outside, chunk, static_cast<size_t>(std::min<uint64_t>(left, sizeof chunk)));
    if (n > 0) {
      r->buf.assign(chunk, static_cast<size_t>(n));
      r->buf_off = 0;
    } else if (n == 0) {
      r->source_done = true;
    } else if (errno != EAGAIN && errno != EINTR) {
      return ErrnoError("channel " + c.name + ": read input", errno);
    }
  }
  return Status::Ok();
}

// Input: writes buffered bytes into the sandbox's pipe when it is writable; a program that
// closed its end closes the relay's.
Status WriteInput(Relay* r, short revents_sandbox) {
  if (!r->pending() || (revents_sandbox & (POLLOUT | POLLERR)) == 0) return Status::Ok();
  const ssize_t n =
      ::write(r->sandbox.get(), r->buf.data() + r->buf_off, r->buf.size() - r->buf_off);
  if (n > 0) {
    r->buf_off += static_cast<size_t>(n);
    r->stats.bytes += static_cast<uint64_t>(n);
  } else if (errno == EPIPE) {
    r->sandbox.Close();  // the program closed its end
  } else if (errno != EAGAIN && errno != EINTR) {
    return ErrnoError("channel " + r->spec->name + ": write to sandbox", errno);
  }
  return Status::Ok();
}

// Output: writes buffered bytes to the outside descriptor when it is writable.
Status FlushOutput(Relay* r, short revents_outside) {
  if (!r->pending() || (revents_outside & (POLLOUT | POLLERR)) == 0) return Status::Ok();
  const ssize_t n = ::write(r->outside, r->buf.data() + r->buf_off, r->buf.size() - r->buf_off);
  if (n > 0) {
    r->buf_off += static_cast<size_t>(n);
  } else if (errno != EAGAIN && errno != EINTR) {
    return ErrnoError("channel " + r->spec->name + ": write output", errno);
  }
  return Status::Ok();
}

// Output, with an empty buffer: reads what the program wrote, up to the quota (going over it
// stops the run), and hands it to the channel's end: captured, pushed, or buffered for the
// outside descriptor.
Status ReadOutput(Run* run, Relay* r, short revents_sandbox) {
  if (r->pending() || (revents_sandbox & (POLLIN | POLLHUP | POLLERR)) == 0) return Status::Ok();
  const Channel& c = *r->spec;
  char chunk[kRelayChunk];
  const ssize_t n = ::read(r->sandbox.get(), chunk, sizeof chunk);
  if (n == 0) {
    r->sandbox.Close();
    return Status::Ok();
  }
  if (n < 0) {
    if (errno != EAGAIN && errno != EINTR) {
      return ErrnoError("channel " + c.name + ": read from sandbox", errno);
    }
    return Status::Ok();
  }
  uint64_t got = static_cast<uint64_t>(n);
  if (r->stats.bytes + got > c.quota_bytes) {
    got = c.quota_bytes - r->stats.bytes;
    r->stats.quota_reached = true;
    run->Stop(StopRule::kQuota, "quota: channel " + c.name + " wrote more than " +
                                    std::to_string(c.quota_bytes) + " bytes");
  }
  r->stats.bytes += got;
  if (c.end.kind == ChannelEnd::Kind::kMemory) {
    r->stats.captured.append(chunk, static_cast<size_t>(got));
  } else if (c.end.kind == ChannelEnd::Kind::kCallback) {
    if (got > 0) {
      const Status pushed = c.end.push(std::string_view(chunk, static_cast<size_t>(got)));
      if (!pushed.ok()) return pushed.WithContext("channel " + c.name);
    }
  } else {
    r->buf.assign(chunk, static_cast<size_t>(got));
    r->buf_off = 0;
  }
  if (r->stats.quota_reached) r->sandbox.Close();
  return Status::Ok();
}

// Moves bytes for one relay; `revents_sandbox` / `revents_outside` are its poll results.
Status Pump(Run* run, Relay* r, short revents_sandbox, short revents_outside) {
  if (r->spec->direction == Direction::kIn) {
    if (!r->pending() && !r->source_done) ZF_RETURN_IF_ERROR(FillInput(r, revents_outside));
    ZF_RETURN_IF_ERROR(WriteInput(r, revents_sandbox));
    if (r->sandbox.valid() && !r->pending() && r->source_done) r->sandbox.Close();
    return Status::Ok();
  }
  // Output: flush what is buffered, then read more.
  ZF_RETURN_IF_ERROR(FlushOutput(r, revents_outside));
  return ReadOutput(run, r, revents_sandbox);
}

bool RelaysDone(const std::vector<Relay>& relays) {
  for (const Relay& r : relays) {
    if (r.spec->direction == Direction::kOut && (r.sandbox.valid() || r.pending())) return false;
  }
  return true;
}

// Once the sandbox has exited: closes the inputs nobody will read any more, and says whether
// the loop is over (every output drained and the report pipe closed, or the drain given up).
bool DrainedAfterExit(Run* run, Clock::time_point deadline) {
  for (Relay& r : run->relays) {
    if (r.spec->direction == Direction::kIn) r.sandbox.Close();
  }
  if (RelaysDone(run->relays) && !run->report.valid()) return true;
  // An outside descriptor that stops taking output is given until the deadline, and at least
  // kDrainGrace after the end; the rest is dropped.
  const Clock::time_point give_up = std::max(deadline, run->killed_at + kDrainGrace);
  return Clock::now() >= give_up;
}

// While the sandbox runs: stops it when the caller cancels or the wall clock runs out.
void ApplyStopRules(const SandboxSpec& spec, Clock::time_point deadline, Run* run) {
  const Clock::time_point now = Clock::now();
  if (run->stop_rule == StopRule::kNone && spec.cancel && spec.cancel->load()) {
    run->Stop(StopRule::kCancelled, "cancelled: the caller gave up the run");
  }
  if (run->stop_rule == StopRule::kNone && now >= deadline) {
    run->Stop(StopRule::kTimeout, "timeout: wall clock over " +
                                      std::to_string(spec.limits.wall_timeout.count()) + " ms");
  }
}

// One round's poll set: the descriptors each relay waits on, the report pipe, the seccomp
// listener and the pidfd, with each one's index in fds (-1: not polled).
struct PollSet {
  std::vector<pollfd> fds;
  std::vector<std::pair<int, int>> slots;  // per relay: {sandbox end, outside end}
  int report_slot = -1;
  int listener_slot = -1;
  int pidfd_slot = -1;

  int Add(int fd, short events) {
    fds.push_back({fd, events, 0});
    return static_cast<int>(fds.size() - 1);
  }
  short Revents(int slot) const {
    return slot >= 0 ? fds[static_cast<size_t>(slot)].revents : static_cast<short>(0);
  }
};

PollSet BuildPollSet(const Run& run) {
  PollSet set;
  set.slots.assign(run.relays.size(), {-1, -1});
  for (size_t i = 0; i < run.relays.size(); ++i) {
    const Relay& r = run.relays[i];
    if (!r.sandbox.valid() && !r.pending()) continue;
    if (r.spec->direction == Direction::kIn) {
      if (!r.sandbox.valid()) continue;
      if (r.pending()) {
        set.slots[i].first = set.Add(r.sandbox.get(), POLLOUT);
      } else if (!r.source_done) {
        if (r.outside >= 0 && r.stats.bytes < r.spec->quota_bytes) {
          set.slots[i].second = set.Add(r.outside, POLLIN);
        }
      }
    } else if (r.pending()) {
      set.slots[i].second = set.Add(r.outside, POLLOUT);
    } else if (r.sandbox.valid()) {
      set.slots[i].first = set.Add(r.sandbox.get(), POLLIN);
    }
  }
  set.report_slot = run.report.valid() ? set.Add(run.report.get(), POLLIN) : -1;
  set.listener_slot = run.listener.valid() ? set.Add(run.listener.get(), POLLIN) : -1;
  set.pidfd_slot = !run.exited ? set.Add(run.process.pidfd(), POLLIN) : -1;
  return set;
}

// The poll timeout: 0 when an input can be pumped without waiting, else until the deadline
// (or the drain's end once stopped), at most a second so that cancellation is seen.
int PollTimeoutMs(const Run& run, Clock::time_point deadline) {
  bool ready_now = false;
  for (const Relay& r : run.relays) {
    // Memory and callback inputs, and reached quotas, need no waiting: pump at once.
    if (r.spec->direction == Direction::kIn && r.sandbox.valid() && !r.pending() &&
        !r.source_done && (r.outside < 0 || r.stats.bytes >= r.spec->quota_bytes)) {
      ready_now = true;
    }
  }
  const Clock::time_point wake =
      run.stop_rule == StopRule::kNone && !run.exited ? deadline : run.killed_at + kDrainGrace;
  int timeout_ms =
      static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(wake - Clock::now()).count());
  if (ready_now) timeout_ms = 0;
  return std::clamp(timeout_ms, 0, 1000);
}

// Acts on one round's poll results: child reports, seccomp notifications, every relay, and
// the sandbox's exit.
Status Dispatch(const PollSet& set, Run* run) {
  if (set.Revents(set.report_slot) != 0) ZF_RETURN_IF_ERROR(OnReport(run));
  if (set.listener_slot >= 0) {
    const short ev = set.Revents(set.listener_slot);
    if (ev & POLLIN) OnNotification(run);
    if (ev & (POLLHUP | POLLERR | POLLNVAL)) run->listener.Close();
  }
  for (size_t i = 0; i < run->relays.size(); ++i) {
    const short a = set.Revents(set.slots[i].first);
    const short b = set.Revents(set.slots[i].second);
    ZF_RETURN_IF_ERROR(Pump(run, &run->relays[i], a, b));
  }
  if (set.Revents(set.pidfd_slot) != 0) {
    run->exited = true;
    if (run->killed_at == Clock::time_point{}) run->killed_at = Clock::now();
  }
  return Status::Ok();
}

Status Loop(const SandboxSpec& spec, Run* run) {
  const Clock::time_point deadline = run->start + spec.limits.wall_timeout;
  for (;;) {
    if (run->exited) {
      if (DrainedAfterExit(run, deadline)) return Status::Ok();
    } else {
      ApplyStopRules(spec, deadline, run);
    }
    PollSet set = BuildPollSet(*run);
    const int timeout_ms = PollTimeoutMs(*run, deadline);
    const int n = ::poll(set.fds.data(), set.fds.size(), timeout_ms);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("poll", errno);
    }
    ZF_RETURN_IF_ERROR(Dispatch(set, run));
  }
}

std::string Manifest(const std::vector<Channel>& channels) {
  std::string out;
  for (const Channel& c : channels) {
    if (!out.empty()) out += ',';
    out += c.direction == Direction::kIn ? "in:" : "out:";
    out += std::to_string(c.target_fd);
    out += ':';
    out += c.name;
  }
  return out;
}

// --- RunSandboxed's steps, in the order it takes them. ---

// A program that closes an input early must not kill the runner with SIGPIPE.
void IgnoreSigpipeIfDefault() {
  struct sigaction old_pipe;
  if (::sigaction(SIGPIPE, nullptr, &old_pipe) == 0 && old_pipe.sa_handler == SIG_DFL) {
    ::signal(SIGPIPE, SIG_IGN);
  }
}

// The report's fields known before the run: the host's layers and the program's verdict.
RunReport StartReport(const SandboxSpec& spec, const HostLayers& host) {
  RunReport report;
  report.layers_active = host.Active();
  report.layers_missing = host.Missing();
  report.verdict = spec.verdict->verdict;
  report.program_sha256 = spec.verdict->sha256;
  report.syscall_sites = spec.verdict->counts.syscall_sites;
  report.data_region_bytes = spec.verdict->counts.data_region_bytes;
  return report;
}

// One relay per channel, in the spec's order; each relay points into `spec`.
Status OpenRelays(const SandboxSpec& spec, Run* run) {
  run->relays.resize(spec.channels.size());
  for (size_t i = 0; i < spec.channels.size(); ++i) {
    ZF_RETURN_IF_ERROR(OpenRelay(spec.channels[i], &run->relays[i]));
  }
  return Status::Ok();
}

// Memory: a cgroup where the host has one (left in *cgroup), the address space otherwise.
// Sets *via to the mechanism used.
Status LimitMemory(const HostLayers& host, uint64_t memory_bytes,
                   std::optional<MemoryCgroup>* cgroup, MemoryLimitVia* via) {
  if (host.cgroup_v2_memory || host.cgroup_v1_memory) {
    Result<MemoryCgroup> cg = MemoryCgroup::Create(host, memory_bytes);
    if (!cg.ok()) return cg.status();
    *via = cg->v2() ? MemoryLimitVia::kCgroupV2 : MemoryLimitVia::kCgroupV1;
    cgroup->emplace(std::move(*cg));
  } else {
    *via = MemoryLimitVia::kRlimitAs;
  }
  return Status::Ok();
}

// Everything the child reads after clone: its plan and what the plan points into. Neither
// copied nor moved, so the pointers stay good; the child's ends of the runner's pipes are
// owned here until the clone has its copies.
struct ChildLaunch {
  ChildLaunch() = default;
  ChildLaunch(const ChildLaunch&) = delete;
  ChildLaunch& operator=(const ChildLaunch&) = delete;

  ChildPlan plan;
  UniqueFd report_write;  // the child's end of the report pipe
  UniqueFd go_read;       // the child's end of the go pipe
  sock_fprog fprog{};
  std::vector<std::string> env_strings;
  std::vector<char*> argv;
  std::vector<char*> envp;
};

// The child's descriptor plan: channels at their numbers, then the runner's own (the program
// and the report pipe; the go pipe or control socket follows). Leaves the parent's end of the
// report pipe in `run`.
Status PlanDescriptors(const SandboxSpec& spec, Run* run, ChildLaunch* launch) {
  int max_target = 2;
  for (const Channel& c : spec.channels) max_target = std::max(max_target, c.target_fd);
  ChildPlan& plan = launch->plan;
  const int exec_fd = max_target + 1;
  plan.exec_fd = exec_fd;
  plan.report_fd = exec_fd + 1;
  plan.go_fd = exec_fd + 2;
  plan.first_free_fd = exec_fd + 3;
  Result<Pipe> report_pipe = MakePipe();
  if (!report_pipe.ok()) return report_pipe.status();
  run->report = std::move(report_pipe->read);
  launch->report_write = std::move(report_pipe->write);
  for (const Relay& r : run->relays) plan.AddFd({r.child.get(), r.spec->target_fd, false});
  plan.AddFd({spec.program->fd(), exec_fd, true});
  plan.AddFd({launch->report_write.get(), plan.report_fd, true});
  return Status::Ok();
}

// A child cloned for the run (not prepared) gets a go pipe: its end at plan.go_fd.
Status PlanGoPipe(Run* run, ChildLaunch* launch) {
  Result<Pipe> go_pipe = MakePipe();
  if (!go_pipe.ok()) return go_pipe.status();
  run->go = std::move(go_pipe->write);
  launch->go_read = std::move(go_pipe->read);
  launch->plan.AddFd({launch->go_read.get(), launch->plan.go_fd, true});
  launch->plan.parent_go_write_fd = run->go.get();
  return Status::Ok();
}

// Resource limits and priority; the address space is limited only without a memory cgroup.
void PlanLimits(const SandboxLimits& lim, bool memory_cgroup, ChildPlan* plan) {
  // The listener takes one more descriptor before the exec.
  const rlim_t nofile = std::max<rlim_t>(lim.max_open_files, plan->first_free_fd + 1);
  plan->AddLimit({RLIMIT_NOFILE, nofile});
  plan->AddLimit({RLIMIT_NPROC, lim.max_threads});
  plan->AddLimit({RLIMIT_CPU, lim.cpu_seconds == 0 ? RLIM_INFINITY : lim.cpu_seconds});
  plan->AddLimit({RLIMIT_FSIZE, lim.max_file_bytes});
  plan->AddLimit({RLIMIT_CORE, 0});
  if (!memory_cgroup) plan->AddLimit({RLIMIT_AS, lim.memory_bytes});
  plan->nice = std::clamp(lim.nice, 0, 19);
}

// The seccomp filter for the planned exec descriptor, where the host has seccomp.
Status PlanSeccomp(const HostLayers& host, ChildLaunch* launch) {
  if (!host.seccomp) return Status::Ok();
  Result<const SyscallFilter*> f = CachedFilter(launch->plan.exec_fd, host.seccomp_notify);
  if (!f.ok()) return f.status();
  const SyscallFilter* filter = *f;
  launch->fprog.len = static_cast<unsigned short>(filter->program.size());
  launch->fprog.filter = const_cast<sock_filter*>(filter->program.data());
  launch->plan.seccomp = &launch->fprog;
  launch->plan.seccomp_listener = filter->notify_kills;
  return Status::Ok();
}

// argv from the spec; the environment is the channel manifest alone.
void PlanExec(const SandboxSpec& spec, ChildLaunch* launch) {
  launch->env_strings = {spec.options.manifest_variable + "=" + Manifest(spec.channels)};
  for (const std::string& a : spec.argv) launch->argv.push_back(const_cast<char*>(a.c_str()));
  launch->argv.push_back(nullptr);
  for (std::string& e : launch->env_strings) launch->envp.push_back(e.data());
  launch->envp.push_back(nullptr);
  launch->plan.argv = launch->argv.data();
  launch->plan.envp = launch->envp.data();
}

// Clones the child into the host's namespaces (it runs RunChild and never returns here), hands
// it to run->process, and closes the parent's copies of the child's descriptors.
Status CloneChild(const HostLayers& host, Run* run, ChildLaunch* launch) {
  const unsigned long flags = NamespaceFlags(host, true) | CLONE_PIDFD | SIGCHLD;
  {
    BlockSignals blocked;
    int pidfd = -1;
    const long pid = ::syscall(SYS_clone, flags, nullptr, &pidfd, nullptr, nullptr);
    if (pid < 0) return ErrnoError("clone (sandbox namespaces)", errno);
    if (pid == 0) RunChild(launch->plan);
    run->process.Set(static_cast<pid_t>(pid), UniqueFd(pidfd));
  }
  // The child holds its own copies now.
  for (Relay& r : run->relays) r.child.Close();
  launch->report_write.Close();
  launch->go_read.Close();
  return Status::Ok();
}

// What the child waits for before its first step: its id maps, its cgroup, then "go".
Status ReleaseChild(const HostLayers& host, const MemoryCgroup* cgroup, Run* run) {
  const pid_t pid = run->process.pid();
  if (host.user_ns) ZF_RETURN_IF_ERROR(WriteIdMaps(pid));
  if (cgroup != nullptr) ZF_RETURN_IF_ERROR(cgroup->AddProcess(pid));
  const char go = 1;
  if (::write(run->go.get(), &go, 1) != 1) return ErrnoError("write go pipe", errno);
  return Status::Ok();
}

// The usual start: a prepared sandbox (from the pool, or prepared now) takes the plan and
// becomes run->process; its cgroup goes to *cgroup and its control socket to run->go. Closes
// the parent's copies of the child's descriptors (the child received its own).
Status StartPrepared(const SandboxSpec& spec, const HostLayers& host, Run* run, ChildLaunch* launch,
                     std::optional<MemoryCgroup>* cgroup) {
  Result<PreparedSandbox> taken =
      spec.options.prepare_during_call
          ? PrepareSandbox(host, spec.limits.memory_bytes, true)
          : PreparedSandboxPool::Get().Take(host, spec.limits.memory_bytes);
  if (!taken.ok()) return taken.status();
  run->process.Set(std::exchange(taken->pid, -1), std::move(taken->pidfd));
  run->go = std::move(taken->control);
  if (taken->cgroup) cgroup->emplace(std::move(*taken->cgroup));
  ZF_RETURN_IF_ERROR(SendExecPlan(run->go.get(), launch->plan));
  for (Relay& r : run->relays) r.child.Close();
  launch->report_write.Close();
  return Status::Ok();
}

// The start for a plan too large for a prepared child: a child cloned for the run, which
// waits for its id maps and cgroup.
Status StartCloned(const SandboxSpec& spec, const HostLayers& host, Run* run, ChildLaunch* launch,
                   std::optional<MemoryCgroup>* cgroup, MemoryLimitVia* via) {
  ZF_RETURN_IF_ERROR(PlanGoPipe(run, launch));
  ZF_RETURN_IF_ERROR(LimitMemory(host, spec.limits.memory_bytes, cgroup, via));
  ZF_RETURN_IF_ERROR(CloneChild(host, run, launch));
  return ReleaseChild(host, *cgroup ? &**cgroup : nullptr, run);
}

// Waits for the sandbox's init and marks it reaped; its status and usage go to the out-params.
Status Reap(Run* run, int* status, rusage* usage) {
  const pid_t pid = run->process.pid();
  pid_t waited;
  do {
    waited = ::wait4(pid, status, __WALL, usage);
  } while (waited < 0 && errno == EINTR);
  if (waited < 0) return ErrnoError("wait4", errno);
  run->process.Reaped();
  return Status::Ok();
}

// A run whose child failed a setup step, or never reached its exec, is an error.
Status CheckStarted(const Run& run) {
  if (run.failed) {
    return Status::Error(ErrorCode::kSandboxSetup,
                         std::string("step '") + ChildStepName(run.failure.step) +
                             "' failed: " + std::strerror(run.failure.err));
  }
  if (!run.exec_seen) {
    return Status::Error(ErrorCode::kSandboxSetup, "the sandbox ended before its program started");
  }
  return Status::Ok();
}

// Times, CPU, peak memory (the cgroup's when it has one) and the channels' statistics, which
// are moved out of `run`.
void RecordUsage(Run* run, Clock::time_point end, const rusage& usage,
                 const std::optional<MemoryCgroup>& cgroup, RunReport* report) {
  report->wall_ms = Ms(end - run->start);
  report->spawn_ms = Ms(run->exec_at - run->start);
  report->user_cpu_ms = TimevalMs(usage.ru_utime);
  report->system_cpu_ms = TimevalMs(usage.ru_stime);
  report->peak_memory_bytes = static_cast<uint64_t>(usage.ru_maxrss) * 1024;
  report->peak_memory_source = MemorySource::kRusage;
  if (cgroup && cgroup->PeakBytes() > 0) {
    report->peak_memory_bytes = cgroup->PeakBytes();
    report->peak_memory_source = MemorySource::kCgroup;
  }
  for (Relay& r : run->relays) report->channels.push_back(std::move(r.stats));
}

// How the program ended, and the rule that ended it: the runner's own stop, else the limit a
// signal points to.
void RecordEnd(int status, const Run& run, const SandboxLimits& lim,
               const std::optional<MemoryCgroup>& cgroup, RunReport* report) {
  if (WIFEXITED(status)) {
    report->ended = RunEnd::kExited;
    report->exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    report->ended = RunEnd::kSignaled;
    report->signal = WTERMSIG(status);
    report->signal_name = std::string("SIG") + SignalName(report->signal);
  }
  report->stopped_by = run.stop_rule;
  report->detail = run.stop_detail;
  report->seccomp_syscall = run.seccomp_syscall;
  if (report->stopped_by != StopRule::kNone || report->ended != RunEnd::kSignaled) return;
  const double cpu_ms = report->user_cpu_ms + report->system_cpu_ms;
  if (report->signal == SIGSYS) {
    report->stopped_by = StopRule::kSeccomp;
    report->detail =
        "seccomp: killed (the kernel does not name the syscall without "
        "user notification)";
  } else if (report->signal == SIGKILL && cgroup && cgroup->OomKills() > 0) {
    report->stopped_by = StopRule::kMemory;
    report->detail = "memory: over " + std::to_string(lim.memory_bytes) + " bytes (" +
                     std::string(MemoryLimitViaName(report->memory_limit_via)) + ")";
  } else if ((report->signal == SIGKILL || report->signal == SIGXCPU) && lim.cpu_seconds > 0 &&
             cpu_ms >= static_cast<double>(lim.cpu_seconds) * 1000.0 * kCpuKillShare) {
    report->stopped_by = StopRule::kCpu;
    report->detail = "cpu: over " + std::to_string(lim.cpu_seconds) + " s";
  } else if (report->signal == SIGXFSZ) {
    report->stopped_by = StopRule::kFsize;
    report->detail = "fsize: a file over " + std::to_string(lim.max_file_bytes) + " bytes";
  } else {
    report->stopped_by = StopRule::kSignal;
    report->detail = "killed by " + report->signal_name;
  }
}

}  // namespace

ChannelEnd ChannelEnd::Descriptor(int fd) {
  ChannelEnd e;
  e.kind = Kind::kDescriptor;
  e.fd = fd;
  return e;
}

ChannelEnd ChannelEnd::File(std::string path) {
  ChannelEnd e;
  e.kind = Kind::kFile;
  e.path = std::move(path);
  return e;
}

ChannelEnd ChannelEnd::Pull(std::function<Result<std::string>()> pull) {
  ChannelEnd e;
  e.kind = Kind::kCallback;
  e.pull = std::move(pull);
  return e;
}

ChannelEnd ChannelEnd::Push(std::function<Status(std::string_view)> push) {
  ChannelEnd e;
  e.kind = Kind::kCallback;
  e.push = std::move(push);
  return e;
}

ChannelEnd ChannelEnd::Memory(std::string bytes) {
  ChannelEnd e;
  e.kind = Kind::kMemory;
  e.bytes = std::move(bytes);
  return e;
}

void SetPreparedSandboxes(size_t count) { PreparedSandboxPool::Get().SetSize(count); }

std::vector<pid_t> PreparedSandboxPids() { return PreparedSandboxPool::Get().Pids(); }

Result<RunReport> RunSandboxed(const SandboxSpec& spec) {
  // The host probe runs once per process (the first call) and is not part of a run's time.
  const HostLayers& host = ProbeHostLayers();
  // Destroyed last: the pool's thread waits for the run's end (its child reaped) to refill.
  PreparedSandboxPool::RunInProgress in_progress(PreparedSandboxPool::Get());
  Run run;
  run.start = Clock::now();
  ZF_RETURN_IF_ERROR(CheckSpec(spec, host));
  IgnoreSigpipeIfDefault();
  RunReport report = StartReport(spec, host);
  ZF_RETURN_IF_ERROR(OpenRelays(spec, &run));
  const bool memory_cgroup = host.cgroup_v2_memory || host.cgroup_v1_memory;
  report.memory_limit_via = !memory_cgroup          ? MemoryLimitVia::kRlimitAs
                            : host.cgroup_v2_memory ? MemoryLimitVia::kCgroupV2
                                                    : MemoryLimitVia::kCgroupV1;

  ChildLaunch launch;
  ZF_RETURN_IF_ERROR(PlanDescriptors(spec, &run, &launch));
  PlanLimits(spec.limits, memory_cgroup, &launch.plan);
  ZF_RETURN_IF_ERROR(PlanSeccomp(host, &launch));
  PlanIdentity(host, spec.options.hostname.c_str(), &launch.plan);
  PlanExec(spec, &launch);
  std::optional<MemoryCgroup> cgroup;
  if (FitsExecPlan(launch.plan)) {
    ZF_RETURN_IF_ERROR(StartPrepared(spec, host, &run, &launch, &cgroup));
  } else {
    ZF_RETURN_IF_ERROR(StartCloned(spec, host, &run, &launch, &cgroup, &report.memory_limit_via));
  }

  ZF_RETURN_IF_ERROR(Loop(spec, &run));

  int status = 0;
  rusage usage{};
  ZF_RETURN_IF_ERROR(Reap(&run, &status, &usage));
  const Clock::time_point end = Clock::now();
  ZF_RETURN_IF_ERROR(CheckStarted(run));
  RecordUsage(&run, end, usage, cgroup, &report);
  RecordEnd(status, run, spec.limits, cgroup, &report);
  // Its peak and OOM count are read; it is removed in the background.
  if (cgroup) PreparedSandboxPool::Get().Retire(std::move(*cgroup));
  return report;
}

}  // namespace zerofarm::sandbox
