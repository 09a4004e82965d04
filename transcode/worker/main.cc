// zerofarm-worker: `zerofarm-worker video|audio --task JSON` (see worker_task.h for the ABI).
// It only reads and writes the file descriptors it inherits; it opens nothing.
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <set>
#include <string>
#include <string_view>

extern "C" {
#include <libavutil/log.h>
}

#include "av_log_sink.h"
#include "jobs.h"
#include "zerofarm/base/unique_fd.h"
#include "zerofarm/transcode/worker_task.h"

namespace zerofarm::transcode::worker {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitInputFault = 1;  // never worth a retry
constexpr int kExitInternal = 2;    // worth a retry

constexpr const char* kUsage = "usage: zerofarm-worker video|audio --task JSON";

// Errors that the input is to blame for; everything else (the task, I/O, memory) is internal.
bool IsInputFault(ErrorCode code) {
  return code == ErrorCode::kBadStream || code == ErrorCode::kUndecodable ||
         code == ErrorCode::kUnsupportedCodec || code == ErrorCode::kUnsupported;
}

double CpuSeconds() {
  rusage usage{};
  if (getrusage(RUSAGE_SELF, &usage) != 0) return 0;
  auto seconds = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
  };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

struct Outcome {
  Status status;
  std::set<int> output_fds;  // closed before the report is written
};

Outcome Run(int argc, char** argv, WorkerReport* report) {
  Outcome outcome;
  if (argc != 4 || std::string_view(argv[2]) != "--task") {
    outcome.status = Status::Error(ErrorCode::kInvalidTask, kUsage);
    return outcome;
  }
  const std::string_view mode = argv[1];
  if (mode == "video") {
    auto task = VideoTaskFromJson(argv[3]);
    if (!task.ok()) {
      outcome.status = Status::Error(ErrorCode::kInvalidTask, task.status().message());
      return outcome;
    }
    for (const RungOutput& o : task->outputs) outcome.output_fds.insert(o.fd);
    if (task->thumbnail_pts) outcome.output_fds.insert(task->thumbnail_fd);
    outcome.status = RunVideo(*task, report);
  } else if (mode == "audio") {
    auto task = AudioTaskFromJson(argv[3]);
    if (!task.ok()) {
      outcome.status = Status::Error(ErrorCode::kInvalidTask, task.status().message());
      return outcome;
    }
    outcome.output_fds.insert(task->output_fd);
    outcome.status = RunAudio(*task, report);
  } else {
    outcome.status = Status::Error(ErrorCode::kInvalidTask, kUsage);
  }
  return outcome;
}

int Main(int argc, char** argv) {
  const auto started = std::chrono::steady_clock::now();
  // A reader that goes away must turn into a reported write error, not a silent SIGPIPE death.
  signal(SIGPIPE, SIG_IGN);
  InstallAvLogSink(AV_LOG_WARNING);

  WorkerReport report;
  Outcome outcome = Run(argc, argv, &report);
  // The parent reads every output to EOF: close them all before reporting.
  for (int fd : outcome.output_fds)
    if (fd > 2) ::close(fd);

  const Status& status = outcome.status;
  report.ok = status.ok();
  if (!status.ok()) {
    const ErrorCode code =
        status.code() == ErrorCode::kIoError ? ErrorCode::kInternal : status.code();
    report.error_code = code;
    report.error_message = status.message();
    LogLine(std::string(ErrorCodeName(code)) + ": " + report.error_message);
  }
  report.cpu_seconds = CpuSeconds();
  report.wall_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  const std::string json = ToJson(report) + "\n";
  Status written = WriteAll(kWorkerReportFd, std::as_bytes(std::span(json.data(), json.size())));
  if (!written.ok()) LogLine("cannot write the report: " + written.message());

  if (status.ok()) return written.ok() ? kExitOk : kExitInternal;
  return IsInputFault(*report.error_code) ? kExitInputFault : kExitInternal;
}

}  // namespace
}  // namespace zerofarm::transcode::worker

int main(int argc, char** argv) { return zerofarm::transcode::worker::Main(argc, argv); }
