// The job engine's records, typed: a job's plan (kept in the store so that a job resumes
// after a restart), each finished task's result (kept in the store, and a chunk of the report)
// and the job's report (out_dir/report.json). JSON is made and read in job_report.cc only:
// a field is added in one place, and a mistyped one does not compile.
// Plain values: copyable, no shared state.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "zerofarm/base/status.h"
#include "zerofarm/transcode/ingest.h"
#include "zerofarm/transcode/ladder.h"
#include "zerofarm/transcode/stitcher.h"

namespace zerofarm::scheduler {

// The index of the audio track's task; video segments are 0, 1, ...
inline constexpr int kAudioTaskIndex = -1;

// What a job needs to know about its source to run and resume its tasks.
struct JobPlan {
  transcode::SourceInfo source;  // what the plan record keeps of it (see job_report.cc)
  std::vector<transcode::RungSettings> rungs;
  int thumb_width = 0, thumb_height = 0;
  std::vector<transcode::TaskPlan> tasks;
  size_t chunks = 0;
  uint64_t source_bytes = 0, video_packets = 0;
  double duration_seconds = 0;
  // Names this ingest's task runs: a resumed job re-attaches to runs still going on a node,
  // a job ingested again (its objects replaced) never reuses a result of the earlier ingest.
  std::string ingest_id;
};
std::string ToJson(const JobPlan& plan);
// "internal" for a record that is not a plan.
Result<JobPlan> JobPlanFromJson(std::string_view json);

// One output object of a finished task, as the run that made it reported it: the stitcher
// uses the object only while it holds exactly these bytes.
struct TaskResultOutput {
  std::string object;
  uint64_t bytes = 0;
  uint64_t xxh64 = 0;  // storage/content_hash.h
};

// One rung of a finished video segment.
struct TaskResultRung {
  std::string name;
  uint64_t frames = 0;
  uint64_t bytes = 0;
};

// A finished task: a video segment, or the audio track (index kAudioTaskIndex).
struct TaskResult {
  int index = 0;
  std::string node;  // where the run that counts ran
  int attempts = 0;
  uint64_t frames = 0;  // output frames (video) or samples (audio)
  uint64_t frames_decoded = 0;
  uint64_t decode_errors = 0;
  double wall_seconds = 0;
  double cpu_seconds = 0;
  long peak_rss_kib = 0;
  int threads = 0;
  bool sandboxed = false;  // "isolation": "sandbox" or "unsandboxed"
  uint64_t input_bytes = 0;
  uint64_t input_bytes_remote = 0;
  uint64_t output_bytes_sent = 0;
  bool backup_copy = false;  // the result came from a straggler's backup copy
  std::vector<TaskResultOutput> outputs;
  // Sandboxed runs only.
  double spawn_ms = 0;
  std::vector<std::string> layers_missing;
  std::string memory_limit_via;
  // Video segments only.
  std::vector<TaskResultRung> rungs;
  double start_seconds = 0;  // of the owned span, from the start of the video
  double seconds = 0;        // planned length of the owned span
  uint64_t preroll_packets = 0;
};
std::string ToJson(const TaskResult& result);
// "internal" when the text is not a task result; a result without output checksums (written
// by an older version) is one too, since its outputs cannot be bound: its task runs again.
Result<TaskResult> TaskResultFromJson(std::string_view json);

// One finished rendition: what the stitcher made of it and the rung it was encoded at.
struct RenditionReport {
  transcode::RenditionStats made;  // name, size, frames, bitrates, segments
  std::string level;               // H.264 level, "3.1"
  int maxrate_kbps = 0;
};

// A job that finished ("status": "ready"): what was made, what ran where, what it cost.
struct JobReport {
  JobPlan source;  // reported without its task list
  std::vector<RenditionReport> renditions;
  std::vector<TaskResult> chunks;  // by segment index
  std::optional<TaskResult> audio;
  double audio_seconds = 0;
  size_t tasks_resumed = 0;       // tasks finished by an earlier run, the audio track included
  int outputs_rejected = 0;       // task outputs holding other bytes than reported: rerun
  bool sandboxed = false;         // how the workers ran
  std::string worker_sha256;      // this process's worker program; "" when nodes ran the tasks
  uint64_t task_input_bytes = 0;  // read by the tasks
  uint64_t task_input_bytes_remote = 0;  // of those, over the network
  uint64_t task_output_bytes_sent = 0;   // sent over the network (replicas)
  double ingest_seconds = 0;
  double total_seconds = 0;
  double worker_cpu_seconds = 0;
};
// The report.json text (indented).
std::string ToJson(const JobReport& report);

}  // namespace zerofarm::scheduler
