// The transcode job engine: runs one video's whole job, on this machine over its store, or
// on a farm's storage nodes through a TaskExecutor (cluster_executor.h).
//
// RunTranscodeJob ingests the source (tasks start while ingest is still running), runs one
// zerofarm-worker process per task (plus one for the audio track) on `task_slots` parallel slots,
// the audio track and the first segments first (in timeline order), then the longest task
// first, publishes the HLS renditions in `out_dir` segment by segment as they finish (EVENT
// playlists; the video is playable long before it is complete), retries a failed or hung task
// up to `max_retries` times (never a task whose input is at fault), then stitches and verifies
// the renditions into `out_dir`.
// State is persisted in the store under "jobs/<job_id>/": once ingest has finished, running
// the same job again (after a crash or kill -9) redoes only the tasks that had not finished.
// Thread safety: RunTranscodeJob blocks its caller and uses its own threads; the progress callback
// is called from those threads, one call at a time.
#pragma once

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "zerofarm/base/status.h"
#include "zerofarm/scheduler/job_report.h"
#include "zerofarm/scheduler/task_executor.h"
#include "zerofarm/scheduler/task_slots.h"
#include "zerofarm/scheduler/worker_runtime.h"
#include "zerofarm/storage/store.h"
#include "zerofarm/storage/task_state.h"
#include "zerofarm/transcode/ingest.h"

namespace zerofarm::scheduler {

struct JobOptions {
  std::vector<int> ladder{1080, 720, 480, 360};  // rung short sides
  std::string preset = "veryfast";
  double chunk_seconds = 4.0;
  // The first segments' lengths (ingest.h IngestOptions::head_seconds); empty = all alike.
  std::vector<double> head_seconds;
  int task_slots = 0;   // tasks (worker processes) at once; 0 = the number of cores
  int max_retries = 3;  // further attempts after a failed or hung one
  // The worker program, loaded and validated once (worker_runtime.h). Required unless an
  // executor runs the tasks elsewhere.
  std::shared_ptr<const WorkerRuntime> worker;
  // Shared slots across jobs; null = this job's own `task_slots` slots.
  std::shared_ptr<TaskSlots> slots;
  std::string tenant;  // whose job it is: tenants take turns at the shared slots
  // Set to true (from any thread) to stop the job: running workers are killed and RunTranscodeJob
  // returns "cancelled". May be null.
  std::shared_ptr<std::atomic<bool>> cancel;
  // Name of the node that runs the workers (reports, the farm view); "" = the host name.
  std::string node_name;
  // Where tasks run; null = on this machine over `store` (worker, task_slots and slots above).
  // With an executor, parallelism is min(task_slots, executor->slots()) (0 = the executor's).
  std::shared_ptr<TaskExecutor> executor;
  // > 0 (a farm): the first video segment runs alone, with this many encoder threads (a
  // node's cores): no other video task of the job starts before it has ended. It is what the
  // video waits for to become playable; beside the next segments it got a fraction of the CPU.
  int head_alone_threads = 0;
  // A task is declared hung after base + per_second * (seconds of video it owns).
  std::chrono::seconds task_timeout_base{300};
  double task_timeout_per_second = 60.0;
};

// One task's state, for the farm view: index -1 is the audio track.
struct TaskProgress {
  int index = 0;
  storage::TaskState state = storage::TaskState::kQueued;
  int attempts = 0;
  std::string node;
  double start_seconds = 0;  // owned media time span
  double media_seconds = 0;
  double queued_at = 0;     // seconds since the job started
  double started_at = 0;    // seconds since the job started (0 while queued)
  double wall_seconds = 0;  // of the finished attempt
  double cpu_seconds = 0;
  std::string error;  // the last attempt's error, if any
};

// Counts are of video segments only; the audio track (one task, whole) is counted apart, so
// "tasks_done of tasks_known" never mixes the two.
struct JobProgress {
  bool ingest_done = false;
  bool source_known = false;  // the source was probed: its streams and ladder are known
  size_t tasks_known = 0;     // video segments; grows while ingesting
  size_t tasks_done = 0;      // video segments finished (never above tasks_known)
  size_t tasks_resumed = 0;   // video segments finished in an earlier run
  bool has_audio = false;     // the source has an audio track to encode
  bool audio_done = false;
  std::string phase;                 // "ingest", "transcode", "stitch", "verify", "done"
  double duration_seconds = 0;       // of the source, once known
  double media_seconds_done = 0;     // of video segments finished (for speed and ETA)
  double media_seconds_resumed = 0;  // of those, finished in an earlier run
  std::vector<std::string> rungs;    // the renditions planned for this source, once known
  // Published while the job runs (stitcher.h Publisher): the video plays as soon as one
  // segment is, and `playable_seconds` of it can be watched.
  size_t segments_published = 0;
  double playable_seconds = 0;
  std::vector<TaskProgress> tasks;  // by index; the audio task (index -1) last
};

using ProgressFn = std::function<void(const JobProgress&)>;

// Returns the job's report (also written to out_dir/report.json, job_report.h). Error codes are
// ingest's (see ingest.h) plus "undecodable", "unsupported_codec", "worker_failed",
// "verify_failed", "cancelled", "sandbox_refused", "io_error", "internal"; the message is one line
// for the user.
Result<JobReport> RunTranscodeJob(storage::Store& store, transcode::ByteSource& source,
                                  const std::string& job_id, const JobOptions& options,
                                  const std::filesystem::path& out_dir, const ProgressFn& progress);

// This machine's host name (the node name of local runs); "local" when it has none.
std::string Hostname();

}  // namespace zerofarm::scheduler
