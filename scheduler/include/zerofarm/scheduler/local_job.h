// The local job engine: one machine runs a whole transcode job with an embedded store.
//
// RunLocalJob ingests the source (tasks start while ingest is still running), runs one
// zerofarm-worker process per task (plus one for the audio track) on `jobs` parallel slots,
// longest task first, retries a failed or hung task up to `max_retries` times (never a task
// whose input is at fault), then stitches and verifies the renditions into `out_dir`.
// State is persisted in the store under "jobs/<job_id>/": once ingest has finished, running
// the same job again (after a crash or kill -9) redoes only the tasks that had not finished.
// Thread safety: RunLocalJob blocks its caller and uses its own threads; the progress callback
// is called from those threads, one call at a time.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "zerofarm/base/status.h"
#include "zerofarm/storage/store.h"
#include "zerofarm/transcode/ingest.h"

namespace zerofarm::scheduler {

struct JobOptions {
  std::vector<int> ladder{1080, 720, 480, 360};  // rung short sides
  std::string preset = "veryfast";
  double chunk_seconds = 4.0;
  int jobs = 0;             // parallel worker processes; 0 = the number of cores
  int max_retries = 3;      // further attempts after a failed or hung one
  std::string worker_path;  // the zerofarm-worker executable
  // A task is declared hung after base + per_second * (seconds of video it owns).
  std::chrono::seconds task_timeout_base{300};
  double task_timeout_per_second = 60.0;
};

struct JobProgress {
  bool ingest_done = false;
  size_t tasks_known = 0;  // grows while ingesting
  size_t tasks_done = 0;
  size_t tasks_resumed = 0;  // finished in an earlier run
  std::string phase;         // "ingest", "transcode", "stitch", "verify"
};

using ProgressFn = std::function<void(const JobProgress&)>;

// Returns the JSON report (also written to out_dir/report.json). Error codes are ingest's
// (see ingest.h) plus "undecodable", "unsupported_codec", "worker_failed", "verify_failed",
// "io_error", "internal"; the message is one line for the user.
Result<std::string> RunLocalJob(storage::Store& store, transcode::ByteSource& source,
                                const std::string& job_id, const JobOptions& options,
                                const std::filesystem::path& out_dir, const ProgressFn& progress);

}  // namespace zerofarm::scheduler
