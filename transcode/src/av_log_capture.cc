#include "av_log_capture.h"

#include <cstdio>
#include <cstdlib>
#include <mutex>

extern "C" {
#include <libavutil/log.h>
}

namespace zerofarm::transcode {
namespace {

thread_local AvLogCapture* t_capture = nullptr;
bool g_print = false;

void Callback(void* avcl, int level, const char* fmt, va_list vl) {
  if (level > av_log_get_level()) return;
  char line[1024];
  int print_prefix = 1;
  av_log_format_line2(avcl, level, fmt, vl, line, sizeof(line), &print_prefix);
  if (g_print) std::fputs(line, stderr);
  if (level <= AV_LOG_ERROR) CaptureLine(level, line);
}

}  // namespace

void CaptureLine(int /*level*/, const std::string& line) {
  if (!t_capture) return;
  std::string s = line;
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  // Drop the "[mov,mp4,... @ 0x...] " context prefix: the words are what matter.
  if (!s.empty() && s.front() == '[') {
    size_t close = s.find("] ");
    if (close != std::string::npos) s.erase(0, close + 2);
  }
  if (s.empty()) return;
  // Keep the first distinct messages: the root cause comes first ("trun track id unknown"),
  // its consequences after ("error reading header").
  std::string& acc = t_capture->last_error_;
  if (acc.find(s) != std::string::npos) return;
  if (acc.empty()) {
    acc = s;
  } else if (acc.find("; ") == std::string::npos) {
    acc += "; " + s;
  }
}

void InstallAvLogCallback() {
  static std::once_flag once;
  std::call_once(once, [] {
    const char* env = std::getenv("ZEROFARM_LIBAV_LOG");
    g_print = env && *env && *env != '0';
    av_log_set_callback(&Callback);
  });
}

AvLogCapture::AvLogCapture() : previous_(t_capture) {
  InstallAvLogCallback();
  t_capture = this;
}

AvLogCapture::~AvLogCapture() { t_capture = previous_; }

}  // namespace zerofarm::transcode
