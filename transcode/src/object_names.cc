// The names of a job's objects and records (object_names.h).
#include "zerofarm/transcode/object_names.h"

#include <cstdio>

namespace zerofarm::transcode {
namespace {

// "00042": five digits keep names in index order when listed.
std::string Index(size_t index) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "%05zu", index);
  return buf;
}

}  // namespace

std::string JobPrefix(std::string_view job_id) { return "jobs/" + std::string(job_id) + "/"; }

std::string SourceObjectName(const std::string& prefix) { return prefix + "source"; }
std::string ChunkObjectName(const std::string& prefix, size_t index) {
  return prefix + "chunks/" + Index(index);
}
std::string AudioSourceObjectName(const std::string& prefix) { return prefix + "audio"; }

std::string SegmentObjectName(const std::string& prefix, const std::string& rung, size_t index) {
  return ChunkObjectName(prefix, index) + "#out/" + rung;
}
std::string AudioObjectName(const std::string& prefix) {
  return AudioSourceObjectName(prefix) + "#out";
}
std::string ThumbnailObjectName(const std::string& prefix) {
  return ChunkObjectName(prefix, 0) + "#out/thumbnail.jpg";
}

std::string PlanRecordName(const std::string& prefix) { return prefix + "plan"; }
std::string TaskRecordPrefix(const std::string& prefix) { return prefix + "tasks/"; }
std::string TaskRecordName(const std::string& prefix, size_t index) {
  return TaskRecordPrefix(prefix) + Index(index);
}
std::string AudioTaskRecordName(const std::string& prefix) {
  return TaskRecordPrefix(prefix) + "audio";
}

}  // namespace zerofarm::transcode
