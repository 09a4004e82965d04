#include "worker_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "zerofarm/base/unique_fd.h"
#include "zerofarm/sandbox/runner.h"

extern char** environ;

namespace zerofarm::scheduler {
namespace {

constexpr size_t kStderrTail = 4096;
constexpr size_t kReadSize = 1 << 16;
constexpr int kHighFdBase = 200;  // child ends are parked here before dup2 to 0..N

Result<UniqueFd> DupHigh(int fd) {
  int d = ::fcntl(fd, F_DUPFD_CLOEXEC, kHighFdBase);
  if (d < 0) return ErrnoError("fcntl(F_DUPFD_CLOEXEC)", errno);
  return UniqueFd(d);
}

Status SetNonBlocking(int fd) {
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
    return ErrnoError("fcntl(O_NONBLOCK)", errno);
  return Status::Ok();
}

double Now() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// Kills and reaps the child if the run is abandoned early.
class ChildGuard {
 public:
  explicit ChildGuard(pid_t pid) : pid_(pid) {}
  ~ChildGuard() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      int st;
      while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
      }
    }
  }
  pid_t get() const { return pid_; }
  void Release() { pid_ = -1; }

 private:
  pid_t pid_;
};

Result<WorkerExit> RunInSandbox(const WorkerRuntime& runtime, const WorkerRun& run);
Result<WorkerExit> RunUserProgram(const WorkerRuntime& runtime, const WorkerRun& run);
Result<WorkerExit> RunUnsandboxed(const std::string& program, const WorkerRun& run);

}  // namespace

Result<WorkerExit> RunWorker(const WorkerRuntime& runtime, const WorkerRun& run) {
  if (run.user.program) return RunUserProgram(runtime, run);
  if (runtime.isolation() == Isolation::kSandbox) return RunInSandbox(runtime, run);
  return RunUnsandboxed(runtime.options().path, run);
}

namespace {

constexpr uint64_t kReportQuota = uint64_t{4} << 20;
constexpr uint64_t kStderrQuota = uint64_t{64} << 20;
constexpr uint64_t kOutputQuota = uint64_t{8} << 30;
constexpr uint64_t kInputQuota = uint64_t{64} << 30;

namespace sb = zerofarm::sandbox;

// The stderr channel: its last kStderrTail bytes are kept in exit->stderr_tail.
sb::Channel StderrChannel(WorkerExit* exit) {
  return {"stderr", 2, sb::Direction::kOut, sb::ChannelEnd::Push([exit](std::string_view data) {
            exit->stderr_tail.append(data);
            if (exit->stderr_tail.size() > 2 * kStderrTail)
              exit->stderr_tail.erase(0, exit->stderr_tail.size() - kStderrTail);
            return Status::Ok();
          }),
          kStderrQuota};
}

// Limits every sandboxed run shares; CPU time may use every thread for the whole wall budget.
void SetLimits(const WorkerRuntime& runtime, const WorkerRun& run, sb::SandboxSpec* spec) {
  spec->limits.memory_bytes = runtime.options().memory_bytes;
  spec->limits.wall_timeout = run.timeout;
  const uint64_t wall_s = static_cast<uint64_t>(run.timeout.count() / 1000) + 1;
  spec->limits.cpu_seconds = wall_s * static_cast<uint64_t>(std::max(1, run.threads) + 1);
  spec->limits.max_threads = 512;
  spec->limits.max_open_files = 64;
  spec->limits.nice = run.nice;
  spec->cancel = run.cancel;
}

// Runs `spec` and completes `*ended` (whose stderr_tail its stderr channel fills) with how the
// program ended.
Result<WorkerExit> RunSpec(const sb::SandboxSpec& spec, WorkerExit* ended) {
  WorkerExit& exit = *ended;
  exit.sandboxed = true;
  auto report = sb::RunSandboxed(spec);
  if (!report.ok()) return report.status().WithContext("sandbox");
  for (const auto& c : report->channels)
    if (c.target_fd == 1 && c.name == "report") exit.report = c.captured;
  if (exit.stderr_tail.size() > kStderrTail)
    exit.stderr_tail.erase(0, exit.stderr_tail.size() - kStderrTail);
  exit.exit_code = report->ended == sandbox::RunEnd::kExited ? report->exit_code : -1;
  exit.signal = report->ended == sandbox::RunEnd::kSignaled ? report->signal : 0;
  exit.timed_out = report->stopped_by == sandbox::StopRule::kTimeout;
  exit.stopped_by = report->stopped_by;
  exit.stopped_detail = report->detail;
  exit.wall_seconds = report->wall_ms / 1000.0;
  exit.cpu_seconds = (report->user_cpu_ms + report->system_cpu_ms) / 1000.0;
  exit.peak_rss_kib = static_cast<long>(report->peak_memory_bytes / 1024);
  exit.spawn_ms = report->spawn_ms;
  exit.layers_missing = report->layers_missing;
  exit.memory_limit_via = sandbox::MemoryLimitViaName(report->memory_limit_via);
  return std::move(exit);
}

Result<WorkerExit> RunInSandbox(const WorkerRuntime& runtime, const WorkerRun& run) {
  sb::SandboxSpec spec;
  spec.program = runtime.program();
  spec.verdict = runtime.verdict();
  spec.argv.push_back("zerofarm-worker");
  spec.argv.insert(spec.argv.end(), run.args.begin(), run.args.end());
  WorkerExit exit;
  spec.channels.push_back(
      {"input", 0, sb::Direction::kIn, sb::ChannelEnd::Pull(run.next_input), kInputQuota});
  spec.channels.push_back(
      {"report", 1, sb::Direction::kOut, sb::ChannelEnd::Memory(), kReportQuota});
  spec.channels.push_back(StderrChannel(&exit));
  for (size_t i = 0; i < run.outputs; ++i) {
    spec.channels.push_back(
        {"out" + std::to_string(i), static_cast<int>(3 + i), sb::Direction::kOut,
         sb::ChannelEnd::Push([&run, i](std::string_view data) { return run.on_output(i, data); }),
         kOutputQuota});
  }
  SetLimits(runtime, run, &spec);
  spec.options.hostname = "zerofarm-worker";
  return RunSpec(spec, &exit);
}

Result<WorkerExit> RunUserProgram(const WorkerRuntime& runtime, const WorkerRun& run) {
  if (run.outputs != 1)
    return Status::Error(ErrorCode::kInvalidArgument, "a user program has exactly one output");
  const UserProgramRun& user = run.user;
  sb::SandboxSpec spec;
  spec.program = user.program;
  spec.verdict = user.verdict;
  spec.argv.push_back(user.argv0.empty() ? std::string("program") : user.argv0);
  spec.argv.insert(spec.argv.end(), run.args.begin(), run.args.end());
  WorkerExit exit;
  spec.channels.push_back(
      {"stdin", 0, sb::Direction::kIn, sb::ChannelEnd::Pull(run.next_input), kInputQuota});
  spec.channels.push_back(
      {"stdout", 1, sb::Direction::kOut,
       sb::ChannelEnd::Push([&run](std::string_view data) { return run.on_output(0, data); }),
       user.output_max_bytes > 0 ? user.output_max_bytes : kOutputQuota});
  spec.channels.push_back(StderrChannel(&exit));
  SetLimits(runtime, run, &spec);
  if (user.memory_bytes > 0) spec.limits.memory_bytes = user.memory_bytes;
  if (user.cpu_seconds > 0) spec.limits.cpu_seconds = user.cpu_seconds;
  spec.limits.max_threads = 64;
  spec.options.hostname = "zerofarm";
  return RunSpec(spec, &exit);
}

// --- RunUnsandboxed's steps. Channels: 0 input, 1 report, 2 diagnostics, 3.. outputs. ---

// Makes a pipe per channel: the parent's ends non-blocking, the worker's parked above
// kHighFdBase (close-on-exec) until the spawn places them.
Status OpenChannels(size_t nchan, std::vector<UniqueFd>* parent_ends,
                    std::vector<UniqueFd>* child_ends) {
  parent_ends->resize(nchan);
  child_ends->resize(nchan);
  for (size_t i = 0; i < nchan; ++i) {
    auto p = MakePipe();
    if (!p.ok()) return p.status();
    UniqueFd child_end = i == 0 ? std::move(p->read) : std::move(p->write);
    (*parent_ends)[i] = i == 0 ? std::move(p->write) : std::move(p->read);
    auto high = DupHigh(child_end.get());
    if (!high.ok()) return high.status();
    (*child_ends)[i] = std::move(*high);
    ZF_RETURN_IF_ERROR(SetNonBlocking((*parent_ends)[i].get()));
  }
  return Status::Ok();
}

// Spawns `program` with the run's arguments and each child end at its channel's number, then
// closes the child ends here. Sets *start to the time just before the spawn.
Result<pid_t> Spawn(const std::string& program, const WorkerRun& run,
                    std::vector<UniqueFd>* child_ends, double* start) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  for (size_t i = 0; i < child_ends->size(); ++i)
    posix_spawn_file_actions_adddup2(&actions, (*child_ends)[i].get(), static_cast<int>(i));
  std::vector<std::string> argv_s{program};
  argv_s.insert(argv_s.end(), run.args.begin(), run.args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  *start = Now();
  pid_t pid = -1;
  int err = posix_spawn(&pid, program.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  for (auto& c : *child_ends) c.Close();
  if (err != 0)
    return Status::Error(ErrorCode::kSpawnFailed, "spawn " + program + ": " + std::strerror(err));
  return pid;
}

// The parent's side of the worker's channels while it runs.
struct WorkerIo {
  std::vector<UniqueFd> ends;  // by channel; closed once done
  std::string pending_input;   // the input piece being written
  size_t input_off = 0;        // how much of it was written
  bool input_done = false;     // next_input said the input ended
  std::vector<char> buf = std::vector<char>(kReadSize);
};

// The descriptors to poll this round, with the channel of each. Takes the next input piece
// when the last one is written, and closes the input once it is all written.
Status BuildPollSet(const WorkerRun& run, WorkerIo* io, std::vector<pollfd>* fds,
                    std::vector<size_t>* chan) {
  if (io->ends[0].valid()) {
    if (io->input_off >= io->pending_input.size() && !io->input_done) {
      auto piece = run.next_input();
      if (!piece.ok()) return piece.status();
      if (piece->empty()) {
        io->input_done = true;
      } else {
        io->pending_input = std::move(*piece);
        io->input_off = 0;
      }
    }
    if (io->input_done && io->input_off >= io->pending_input.size()) {
      io->ends[0].Close();
    } else {
      fds->push_back({io->ends[0].get(), POLLOUT, 0});
      chan->push_back(0);
    }
  }
  for (size_t i = 1; i < io->ends.size(); ++i) {
    if (io->ends[i].valid()) {
      fds->push_back({io->ends[i].get(), POLLIN, 0});
      chan->push_back(i);
    }
  }
  return Status::Ok();
}

// Moves bytes on a ready channel: input written to the worker; the report captured, stderr's
// tail kept, outputs passed to run.on_output. A channel at its end is closed.
Status ServiceChannel(const WorkerRun& run, size_t c, WorkerIo* io, WorkerExit* exit) {
  if (c == 0) {
    ssize_t w = ::write(io->ends[0].get(), io->pending_input.data() + io->input_off,
                        io->pending_input.size() - io->input_off);
    if (w > 0) {
      io->input_off += static_cast<size_t>(w);
    } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
      io->ends[0].Close();  // the worker stopped reading (EPIPE): its report says why
    }
    return Status::Ok();
  }
  ssize_t r = ::read(io->ends[c].get(), io->buf.data(), io->buf.size());
  if (r > 0) {
    std::string_view data(io->buf.data(), static_cast<size_t>(r));
    if (c == 1) {
      exit->report.append(data);
    } else if (c == 2) {
      exit->stderr_tail.append(data);
      if (exit->stderr_tail.size() > 2 * kStderrTail)
        exit->stderr_tail.erase(0, exit->stderr_tail.size() - kStderrTail);
    } else {
      ZF_RETURN_IF_ERROR(run.on_output(c - 3, data));
    }
  } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
    io->ends[c].Close();
  }
  return Status::Ok();
}

// Relays until every channel is closed, the run is cancelled (exit->stopped_by) or the
// deadline passes (exit->timed_out).
Status RelayChannels(const WorkerRun& run, double deadline, WorkerIo* io, WorkerExit* exit) {
  for (;;) {
    std::vector<pollfd> fds;
    std::vector<size_t> chan;
    ZF_RETURN_IF_ERROR(BuildPollSet(run, io, &fds, &chan));
    if (fds.empty()) return Status::Ok();
    if (run.cancel && run.cancel->load()) {
      exit->stopped_by = sandbox::StopRule::kCancelled;
      return Status::Ok();
    }
    double left = deadline - Now();
    if (left <= 0) {
      exit->timed_out = true;
      return Status::Ok();
    }
    int n = ::poll(fds.data(), fds.size(), static_cast<int>(std::min(left * 1000.0, 1000.0)) + 1);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("poll", errno);
    }
    for (size_t k = 0; k < fds.size(); ++k) {
      if (!fds[k].revents) continue;
      ZF_RETURN_IF_ERROR(ServiceChannel(run, chan[k], io, exit));
    }
  }
}

// Kills a stopped or late worker and waits for it, still holding it to the deadline and to
// cancellation. Returns wait4's result (errno set when negative).
pid_t AwaitExit(pid_t pid, const WorkerRun& run, double deadline, WorkerExit* exit, int* status,
                rusage* usage) {
  // SIGKILL: a stopped worker would never act on SIGTERM.
  if (exit->timed_out || exit->stopped_by != sandbox::StopRule::kNone) ::kill(pid, SIGKILL);
  pid_t w;
  // A worker that closed its channels but does not exit is still held to the deadline.
  for (;;) {
    w = ::wait4(pid, status, WNOHANG, usage);
    if (w != 0 && !(w < 0 && errno == EINTR)) break;
    if (!exit->timed_out && Now() > deadline) {
      exit->timed_out = true;
      ::kill(pid, SIGKILL);
    }
    if (exit->stopped_by == sandbox::StopRule::kNone && run.cancel && run.cancel->load()) {
      exit->stopped_by = sandbox::StopRule::kCancelled;
      ::kill(pid, SIGKILL);
    }
    ::usleep(2000);
  }
  return w;
}

Result<WorkerExit> RunUnsandboxed(const std::string& program, const WorkerRun& run) {
  WorkerIo io;
  std::vector<UniqueFd> child_ends;
  ZF_RETURN_IF_ERROR(OpenChannels(3 + run.outputs, &io.ends, &child_ends));
  ::signal(SIGPIPE, SIG_IGN);
  double start = 0;
  Result<pid_t> pid = Spawn(program, run, &child_ends, &start);
  if (!pid.ok()) return pid.status();
  ChildGuard child(*pid);

  WorkerExit exit;
  const double deadline = start + static_cast<double>(run.timeout.count()) / 1000.0;
  ZF_RETURN_IF_ERROR(RelayChannels(run, deadline, &io, &exit));
  int status = 0;
  rusage usage{};
  const pid_t w = AwaitExit(*pid, run, deadline, &exit, &status, &usage);
  child.Release();
  if (w < 0) return ErrnoError("wait4", errno);
  exit.wall_seconds = Now() - start;
  exit.cpu_seconds = static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
                     static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) * 1e-6;
  exit.peak_rss_kib = usage.ru_maxrss;
  if (WIFEXITED(status)) exit.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) exit.signal = WTERMSIG(status);
  if (exit.stderr_tail.size() > kStderrTail)
    exit.stderr_tail.erase(0, exit.stderr_tail.size() - kStderrTail);
  return exit;
}

}  // namespace
}  // namespace zerofarm::scheduler
