// Runs one zerofarm-worker process: feeds its input channel, collects every output channel and
// its report, and kills it at a deadline. Blocking; one call per thread.
#pragma once

#include <chrono>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "zerofarm/base/status.h"

namespace zerofarm::scheduler {

struct WorkerRun {
  std::string program;
  std::vector<std::string> args;  // argv[1..]
  // Produces the input bytes piece by piece; an empty piece ends the input.
  std::function<Result<std::string>()> next_input;
  // Output channel i becomes fd 3 + i in the worker; every byte is passed to on_output(i, ...).
  size_t outputs = 0;
  std::function<Status(size_t, std::string_view)> on_output;
  std::chrono::milliseconds timeout{60000};
};

struct WorkerExit {
  int exit_code = -1;  // -1 when killed by a signal
  int signal = 0;
  bool timed_out = false;
  std::string report;       // everything written to fd 1
  std::string stderr_tail;  // the last few KiB of fd 2
  double wall_seconds = 0;
  double cpu_seconds = 0;  // user + system, from wait4
  long peak_rss_kib = 0;
};

// Errors are the parent's own (spawn, pipes, a failing on_output/next_input); the worker's
// failures are described by WorkerExit.
Result<WorkerExit> RunWorker(const WorkerRun& run);

}  // namespace zerofarm::scheduler
