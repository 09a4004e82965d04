// The worker's two jobs. Each reads the input packet stream from fd 0, writes its outputs to the
// task's fds and fills the report's counters; the caller closes the fds and writes the report.
// An error's code says whose fault it is (see main.cc). Not thread-safe: one job per process.
#pragma once

#include "zerofarm/base/status.h"
#include "zerofarm/transcode/worker_task.h"

namespace zerofarm::transcode::worker {

// Limits on any input: a larger picture is refused as "unsupported" before it is decoded.
inline constexpr int kMaxDimension = 8192;
inline constexpr int kMaxThreads = 64;

// Decode once, encode every rung (and the thumbnail).
Status RunVideo(const VideoTask& task, WorkerReport* report);
// Decode, resample to 48 kHz stereo, encode AAC-LC.
Status RunAudio(const AudioTask& task, WorkerReport* report);

}  // namespace zerofarm::transcode::worker
