// The names a job gives its objects and metadata records in the store, all in one place (as
// LevelDB's db/filename.h). Every name of a job starts with its prefix "jobs/<id>/", so deleting
// the prefix deletes the job. Task outputs are named after their input ("<prefix>chunks/00003#out/
// 720p" for segment 3, made from chunk 3) so that a cluster's ring places them with it (ring.h:
// "A#B" lives with "A"): the node that holds a chunk keeps its outputs. Pure; thread-safe.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace zerofarm::transcode {

// "jobs/<id>/": the prefix of every name below.
std::string JobPrefix(std::string_view job_id);

// Objects written by ingest: the source as uploaded, its video chunks ("chunks/00042", one per
// segment), and its audio track as one packet stream.
std::string SourceObjectName(const std::string& prefix);
std::string ChunkObjectName(const std::string& prefix, size_t index);
std::string AudioSourceObjectName(const std::string& prefix);

// Objects written by the tasks: segment `index` of rendition `rung`, the encoded audio, and the
// thumbnail (made by the first segment's task).
std::string SegmentObjectName(const std::string& prefix, const std::string& rung, size_t index);
std::string AudioObjectName(const std::string& prefix);
std::string ThumbnailObjectName(const std::string& prefix);

// Metadata records of the scheduler: the job's plan and each task's result ("tasks/00042", or
// "tasks/audio" for the audio task); TaskRecordPrefix lists them all.
std::string PlanRecordName(const std::string& prefix);
std::string TaskRecordPrefix(const std::string& prefix);
std::string TaskRecordName(const std::string& prefix, size_t index);
std::string AudioTaskRecordName(const std::string& prefix);

}  // namespace zerofarm::transcode
