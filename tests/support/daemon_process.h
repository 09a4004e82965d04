// A long-running child for tests (`zerofarm serve`, `proxy`, `node`): started in its own
// process group with stdout and stderr appended to a log file, ready once its log says so,
// stopped with SIGTERM or SIGKILL. Killed on destruction. Thread-compatible.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

namespace zerofarm::test {

class DaemonProcess {
 public:
  explicit DaemonProcess(std::string log_path) : log_path_(std::move(log_path)) {}
  ~DaemonProcess() { Kill9(); }
  DaemonProcess(const DaemonProcess&) = delete;
  DaemonProcess& operator=(const DaemonProcess&) = delete;

  // Kills a running one, starts `argv`, then polls what it has logged since this start until
  // `ready(text)` is true. An error text (it exited, or `deadline` passed and it was killed),
  // empty on success.
  std::string Start(const std::vector<std::string>& argv,
                    const std::function<bool(const std::string&)>& ready,
                    std::chrono::seconds deadline);
  // SIGKILL to its process group and to it, then reaps it.
  void Kill9();
  // SIGTERM, then waits up to `deadline`; the exit status (128 + signal when killed by one), or
  // -1 when it had to be killed or was not running.
  int Stop(std::chrono::seconds deadline = std::chrono::seconds(60));
  void Signal(int sig);  // e.g. SIGSTOP / SIGCONT to freeze it without closing its sockets

  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  std::string log() const;  // everything it has logged, over every start

 private:
  std::string log_path_;
  pid_t pid_ = -1;
};

}  // namespace zerofarm::test
