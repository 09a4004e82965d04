// Captures libav* log messages of the current thread while an AvLogCapture is alive, so a
// failure can be explained with the library's own words ("moov atom not found").
// libav's messages are not printed (set ZEROFARM_LIBAV_LOG=1 to print them to stderr).
// One capture per thread at a time; captures on different threads are independent.
#pragma once

#include <string>

namespace zerofarm::transcode {

void CaptureLine(int level, const std::string& line);

class AvLogCapture {
 public:
  AvLogCapture();
  ~AvLogCapture();
  AvLogCapture(const AvLogCapture&) = delete;
  AvLogCapture& operator=(const AvLogCapture&) = delete;

  // The first two distinct messages of level error or worse, joined by "; "; empty if none.
  const std::string& last_error() const { return last_error_; }

 private:
  friend void CaptureLine(int level, const std::string& line);
  std::string last_error_;
  AvLogCapture* previous_;
};

// Installs the process-wide callback; idempotent and thread-safe.
void InstallAvLogCallback();

}  // namespace zerofarm::transcode
