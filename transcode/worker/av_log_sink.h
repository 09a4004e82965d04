// Diagnostics of the worker and of libav*: one line each, on fd 2 (the only log channel).
// Thread-safe: libav* logs from its decoder and encoder threads.
#pragma once

#include <string>

namespace zerofarm::transcode::worker {

// Routes av_log() to fd 2 at `level` (an AV_LOG_* value) and above.
void InstallAvLogSink(int level);

// Writes "zerofarm-worker: <message>\n" to fd 2.
void LogLine(const std::string& message);

}  // namespace zerofarm::transcode::worker
