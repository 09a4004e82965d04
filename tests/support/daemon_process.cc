// DaemonProcess (daemon_process.h).
#include "daemon_process.h"

#include <signal.h>
#include <sys/wait.h>

#include <cerrno>
#include <filesystem>
#include <thread>

#include "run_command.h"

namespace zerofarm::test {

std::string DaemonProcess::log() const { return ReadFile(log_path_); }

std::string DaemonProcess::Start(const std::vector<std::string>& argv,
                                 const std::function<bool(const std::string&)>& ready,
                                 std::chrono::seconds deadline) {
  Kill9();
  std::error_code ec;
  const size_t log_start =
      std::filesystem::exists(log_path_, ec) ? std::filesystem::file_size(log_path_, ec) : 0;
  const pid_t pid = SpawnWithLog(argv, log_path_);
  if (pid < 0) return "fork failed";
  pid_ = pid;
  const auto end = std::chrono::steady_clock::now() + deadline;
  while (std::chrono::steady_clock::now() < end) {
    const std::string text = ReadFile(log_path_).substr(log_start);
    if (ready(text)) return "";
    int status;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return argv.at(0) + " exited at start: " + text;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  Kill9();
  return argv.at(0) + " was not ready in " + std::to_string(deadline.count()) +
         " s: " + ReadFile(log_path_).substr(log_start);
}

void DaemonProcess::Kill9() {
  if (pid_ <= 0) return;
  ::kill(-pid_, SIGKILL);
  ::kill(pid_, SIGKILL);
  int status;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
}

void DaemonProcess::Signal(int sig) {
  if (pid_ > 0) ::kill(pid_, sig);
}

int DaemonProcess::Stop(std::chrono::seconds deadline) {
  if (pid_ <= 0) return -1;
  ::kill(pid_, SIGTERM);
  const auto end = std::chrono::steady_clock::now() + deadline;
  while (std::chrono::steady_clock::now() < end) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  Kill9();
  return -1;
}

}  // namespace zerofarm::test
