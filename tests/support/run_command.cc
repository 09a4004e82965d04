#include "run_command.h"

#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <spawn.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "zerofarm/base/unique_fd.h"

extern char** environ;

namespace zerofarm::test {
namespace {

using Clock = std::chrono::steady_clock;

// After the kill, how long we keep draining pipes that something outside the process group
// may still hold open.
constexpr std::chrono::milliseconds kDrainAfterKill{5000};

// RAII for posix_spawn's attribute and file-action objects.
class SpawnSetup {
 public:
  SpawnSetup() {
    posix_spawnattr_init(&attr_);
    posix_spawn_file_actions_init(&actions_);
  }
  ~SpawnSetup() {
    posix_spawn_file_actions_destroy(&actions_);
    posix_spawnattr_destroy(&attr_);
  }
  SpawnSetup(const SpawnSetup&) = delete;
  SpawnSetup& operator=(const SpawnSetup&) = delete;

  posix_spawnattr_t* attr() { return &attr_; }
  posix_spawn_file_actions_t* actions() { return &actions_; }

 private:
  posix_spawnattr_t attr_;
  posix_spawn_file_actions_t actions_;
};

int RemainingMs(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return left.count() < 0 ? 0 : static_cast<int>(left.count());
}

// Reads whatever is available on the open fds into the matching strings; closes a fd at EOF.
// Returns false when poll timed out before anything happened.
bool PumpOnce(std::array<UniqueFd*, 2> fds, std::array<std::string*, 2> sinks, int timeout_ms) {
  std::array<pollfd, 2> pfds{};
  nfds_t n = 0;
  std::array<size_t, 2> which{};
  for (size_t i = 0; i < fds.size(); ++i) {
    if (!fds[i]->valid()) continue;
    pfds[n] = pollfd{fds[i]->get(), POLLIN, 0};
    which[n] = i;
    ++n;
  }
  if (n == 0) return true;
  int ready = ::poll(pfds.data(), n, timeout_ms);
  if (ready < 0) return errno == EINTR;
  if (ready == 0) return false;
  for (nfds_t k = 0; k < n; ++k) {
    if (pfds[k].revents == 0) continue;
    std::array<std::byte, 65536> buf;
    auto got = ReadSome(pfds[k].fd, buf);
    if (!got.ok() || *got == 0) {
      fds[which[k]]->Close();
      continue;
    }
    sinks[which[k]]->append(reinterpret_cast<const char*>(buf.data()), *got);
  }
  return true;
}

}  // namespace

std::string CommandResult::DescribeEnd() const {
  if (!started) return "not started: " + spawn_error;
  if (timed_out) return "timed out (killed)";
  if (term_signal != 0) return "signal " + std::to_string(term_signal);
  return "exit " + std::to_string(exit_code);
}

CommandResult RunOnTerminal(const std::vector<std::string>& argv, std::chrono::milliseconds timeout,
                            const std::function<bool(const std::string&)>& interrupt_when) {
  CommandResult result;
  if (argv.empty()) {
    result.spawn_error = "empty argv";
    return result;
  }
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  winsize size{};
  size.ws_row = 24;
  size.ws_col = 80;
  int master = -1;
  const pid_t pid = ::forkpty(&master, nullptr, nullptr, &size);
  if (pid < 0) {
    result.spawn_error = std::string("forkpty: ") + std::strerror(errno);
    return result;
  }
  if (pid == 0) {  // the child: a session leader whose controlling terminal is the pty
    ::execv(args[0], args.data());
    std::fprintf(stderr, "exec %s: %s\n", args[0], std::strerror(errno));
    ::_exit(127);
  }
  result.started = true;
  UniqueFd terminal(master);
  const auto deadline = Clock::now() + timeout;
  bool interrupted = false;
  int status = 0;
  bool reaped = false;
  // Read until the terminal hangs up (EIO once every holder of the slave side is gone).
  while (terminal.valid()) {
    if (Clock::now() >= deadline && !result.timed_out) {
      result.timed_out = true;
      ::kill(-pid, SIGKILL);
    }
    pollfd pfd{terminal.get(), POLLIN, 0};
    int ready = ::poll(&pfd, 1, std::min(RemainingMs(deadline) + 1, 200));
    if (ready < 0 && errno != EINTR) break;
    if (ready > 0) {
      char buf[4096];
      ssize_t n = ::read(terminal.get(), buf, sizeof(buf));
      if (n > 0) {
        result.out.append(buf, static_cast<size_t>(n));
      } else if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
        terminal.Close();
      }
    }
    if (interrupt_when && !interrupted && interrupt_when(result.out)) {
      interrupted = true;
      ::kill(pid, SIGINT);
    }
    if (!reaped && ::waitpid(pid, &status, WNOHANG) == pid) reaped = true;
    if (reaped && ready == 0) break;  // exited and nothing more to read
  }
  while (!reaped) {
    if (Clock::now() >= deadline && !result.timed_out) {
      result.timed_out = true;
      ::kill(-pid, SIGKILL);
    }
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      reaped = true;
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) result.term_signal = WTERMSIG(status);
  return result;
}

std::string FormatCommand(const std::vector<std::string>& argv) {
  std::string line;
  for (const auto& arg : argv) {
    if (!line.empty()) line += ' ';
    bool plain = !arg.empty() && arg.find_first_not_of(
                                     "abcdefghijklmnopqrstuvwxyz"
                                     "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                     "0123456789-_./=:,+%@") == std::string::npos;
    if (plain) {
      line += arg;
      continue;
    }
    line += '\'';
    for (char c : arg) {
      if (c == '\'') {
        line += "'\\''";
      } else {
        line += c;
      }
    }
    line += '\'';
  }
  return line;
}

CommandResult RunCommand(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
  CommandResult result;
  if (argv.empty()) {
    result.spawn_error = "empty argv";
    return result;
  }
  auto out_pipe = MakePipe();
  auto err_pipe = MakePipe();
  if (!out_pipe.ok() || !err_pipe.ok()) {
    result.spawn_error = (out_pipe.ok() ? err_pipe.status() : out_pipe.status()).ToString();
    return result;
  }

  SpawnSetup setup;
  // Its own process group, so a timeout kills everything it started too.
  posix_spawnattr_setflags(setup.attr(), POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(setup.attr(), 0);
  posix_spawn_file_actions_addopen(setup.actions(), STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(setup.actions(), out_pipe->write.get(), STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(setup.actions(), err_pipe->write.get(), STDERR_FILENO);

  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);

  pid_t pid = -1;
  int rc = posix_spawnp(&pid, args[0], setup.actions(), setup.attr(), args.data(), environ);
  out_pipe->write.Close();
  err_pipe->write.Close();
  if (rc != 0) {
    result.spawn_error = argv[0] + ": " + std::strerror(rc);
    return result;
  }
  result.started = true;

  const auto deadline = Clock::now() + timeout;
  std::array<UniqueFd*, 2> fds{&out_pipe->read, &err_pipe->read};
  std::array<std::string*, 2> sinks{&result.out, &result.err};
  auto open_fds = [&] { return out_pipe->read.valid() || err_pipe->read.valid(); };

  int status = 0;
  bool reaped = false;
  while (!result.timed_out) {
    if (open_fds()) {
      if (!PumpOnce(fds, sinks, RemainingMs(deadline)) && Clock::now() >= deadline) {
        result.timed_out = true;
      }
      continue;
    }
    // Both pipes are closed; wait for the exit itself, still under the deadline.
    pid_t w = ::waitpid(pid, &status, WNOHANG);
    if (w == pid) {
      reaped = true;
      break;
    }
    if (w < 0 && errno != EINTR) break;
    if (Clock::now() >= deadline) {
      result.timed_out = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }

  if (result.timed_out) {
    ::kill(-pid, SIGKILL);
    const auto drain_deadline = Clock::now() + kDrainAfterKill;
    while (open_fds() && Clock::now() < drain_deadline) {
      PumpOnce(fds, sinks, RemainingMs(drain_deadline));
    }
  }
  if (!reaped) {
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
  if (WIFEXITED(status)) {
    result.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.term_signal = WTERMSIG(status);
  }
  return result;
}

pid_t SpawnWithLog(const std::vector<std::string>& argv, const std::string& log_path) {
  std::vector<std::string> args = argv;
  std::vector<char*> cargv;
  for (auto& a : args) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid != 0) return pid;
  ::setpgid(0, 0);
  int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  ::dup2(fd, 1);
  ::dup2(fd, 2);
  ::execv(cargv[0], cargv.data());
  ::_exit(127);
}

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace zerofarm::test
