#include "av_log_sink.h"

#include <algorithm>
#include <cstdarg>
#include <mutex>
#include <span>

#include "zerofarm/base/unique_fd.h"

extern "C" {
#include <libavutil/log.h>
}

namespace zerofarm::transcode::worker {
namespace {

constexpr int kLogFd = 2;

std::mutex& LogMutex() {
  static std::mutex mutex;
  return mutex;
}

void WriteLocked(const char* text, size_t size) {
  // Diagnostics are best effort: a closed fd 2 must not fail the task.
  (void)WriteAll(kLogFd, std::as_bytes(std::span(text, size)));
}

void AvLogToFd(void* avcl, int level, const char* fmt, va_list args) {
  if (level > av_log_get_level()) return;
  std::lock_guard lock(LogMutex());
  static int print_prefix = 1;  // guarded by LogMutex: libav continues lines across calls
  char line[1024];
  int n = av_log_format_line2(avcl, level, fmt, args, line, sizeof(line), &print_prefix);
  if (n <= 0) return;
  size_t size = std::min(static_cast<size_t>(n), sizeof(line) - 1);
  WriteLocked(line, size);
}

}  // namespace

void InstallAvLogSink(int level) {
  av_log_set_level(level);
  av_log_set_callback(AvLogToFd);
}

void LogLine(const std::string& message) {
  std::string line = "zerofarm-worker: " + message + "\n";
  std::lock_guard lock(LogMutex());
  WriteLocked(line.data(), line.size());
}

}  // namespace zerofarm::transcode::worker
