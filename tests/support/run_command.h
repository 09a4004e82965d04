// RunCommand: run a program with an argv vector, capture its stdout and stderr, and kill it
// (with its whole process group) when it outlives a deadline.
// Thread-compatible: no shared state beyond the child processes each call creates.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace zerofarm::test {

struct CommandResult {
  bool started = false;  // false when the program could not be spawned (see spawn_error)
  std::string spawn_error;
  bool timed_out = false;  // the deadline passed and the process group was killed
  int exit_code = -1;      // the exit status when the program exited, -1 otherwise
  int term_signal = 0;     // the signal that ended it, 0 when it exited
  std::string out;         // everything it wrote to stdout
  std::string err;         // everything it wrote to stderr

  // True when it exited on its own with status 0.
  bool succeeded() const { return started && !timed_out && term_signal == 0 && exit_code == 0; }
  // "exit 1", "signal 9", "timed out (killed)", "not started: ..." for messages.
  std::string DescribeEnd() const;
};

// Runs argv[0] (looked up in PATH) with stdin from /dev/null, in its own process group.
// Output is captured whole; after `timeout` the group gets SIGKILL and timed_out is set.
CommandResult RunCommand(const std::vector<std::string>& argv, std::chrono::milliseconds timeout);

// Runs argv[0] (an absolute path) on a fresh pseudo-terminal, as a user at a terminal would:
// stdin, stdout and stderr are the terminal (80 columns), so isatty() holds for all three, and
// `out` receives everything the terminal showed (stdout and stderr interleaved; `err` stays
// empty). When `interrupt_when` is given and returns true for the output so far, the program
// gets SIGINT once (Ctrl-C). After `timeout` its process group gets SIGKILL.
CommandResult RunOnTerminal(const std::vector<std::string>& argv, std::chrono::milliseconds timeout,
                            const std::function<bool(const std::string&)>& interrupt_when = {});

// The command line, shell-quoted, for messages ("ffprobe -v error 'a b.mp4'").
std::string FormatCommand(const std::vector<std::string>& argv);

// Starts argv[0] (an absolute path) in its own process group with stdout and stderr appended to
// `log_path`, without waiting: the caller owns the child (kill and reap it). -1 if fork fails.
pid_t SpawnWithLog(const std::vector<std::string>& argv, const std::string& log_path);

// The whole file, or "" when it cannot be read.
std::string ReadFile(const std::filesystem::path& path);

}  // namespace zerofarm::test
