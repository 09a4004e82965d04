// JSON of videos: the stored record (video_record.h) and the API's video object
// (video_json.h). The names here are the store's format and the API's contract: a record
// written by an earlier version must still read, and api/openapi.yaml must stay true.
#include "zerofarm/scheduler/video_record.h"

#include <array>
#include <utility>

#include "zerofarm/base/enum_names.h"
#include "zerofarm/scheduler/video_json.h"

namespace zerofarm::scheduler {
namespace {

using nlohmann::json;

constexpr std::array<std::pair<VideoStatus, std::string_view>, 4> kStatusNames{{
    {VideoStatus::kUploading, "uploading"},
    {VideoStatus::kProcessing, "processing"},
    {VideoStatus::kReady, "ready"},
    {VideoStatus::kFailed, "failed"},
}};

// One task of the farm view; "error" only when its last attempt failed.
json TaskJson(const TaskProgress& t) {
  json j = {{"state", storage::TaskStateName(t.state)},
            {"node", t.node},
            {"attempts", t.attempts},
            {"start_seconds", t.start_seconds},
            {"media_seconds", t.media_seconds},
            {"queued_at", t.queued_at},
            {"started_at", t.started_at},
            {"wall_seconds", t.wall_seconds},
            {"cpu_seconds", t.cpu_seconds}};
  if (!t.error.empty()) j["error"] = t.error;
  return j;
}

TaskProgress TaskFromJson(const json& j, int index) {
  TaskProgress t;
  t.index = index;
  t.state = storage::ParseTaskState(j.value("state", "")).value_or(storage::TaskState::kDone);
  t.node = j.value("node", "");
  t.attempts = j.value("attempts", 0);
  t.start_seconds = j.value("start_seconds", 0.0);
  t.media_seconds = j.value("media_seconds", 0.0);
  t.queued_at = j.value("queued_at", 0.0);
  t.started_at = j.value("started_at", 0.0);
  t.wall_seconds = j.value("wall_seconds", 0.0);
  t.cpu_seconds = j.value("cpu_seconds", 0.0);
  t.error = j.value("error", "");
  return t;
}

// The video's segments, by index; the audio track is not a chunk.
json ChunksJson(const std::vector<TaskProgress>& tasks) {
  json chunks = json::array();
  for (const auto& t : tasks) {
    json j = TaskJson(t);
    j["index"] = t.index;
    chunks.push_back(std::move(j));
  }
  return chunks;
}

json AudioJson(const std::optional<TaskProgress>& audio) {
  return audio ? TaskJson(*audio) : json(nullptr);
}

json NetworkJson(const ReadyFacts& r) {
  return {{"task_input_bytes", r.task_input_bytes},
          {"task_input_bytes_remote", r.task_input_bytes_remote},
          {"task_output_bytes_sent", r.task_output_bytes_sent}};
}

json RenditionsJson(const std::vector<RenditionLink>& renditions) {
  json out = json::array();
  for (const auto& r : renditions)
    out.push_back({{"name", r.name},
                   {"width", r.width},
                   {"height", r.height},
                   {"bandwidth", r.bandwidth},
                   {"playlist", r.playlist},
                   {"mp4", r.mp4}});
  return out;
}

// The fields the stored record and the video object share.
json CommonJson(const VideoRecord& r) {
  json j = {{"id", r.id},
            {"status", VideoStatusName(r.status)},
            {"filename", r.filename},
            {"created_at", r.created_at},
            {"bytes_received", r.bytes_received},
            {"size", r.size ? json(*r.size) : json(nullptr)},
            {"ladder", r.ladder},
            {"preset", r.preset},
            {"playback_policy", r.playback_policy},
            {"metadata", r.metadata},
            {"passthrough", r.passthrough}};
  if (!r.upload_id.empty()) j["upload_id"] = r.upload_id;
  if (r.upload_expires_at) j["upload_expires_at"] = *r.upload_expires_at;
  if (r.error) j["error"] = {{"code", ErrorCodeName(r.error->code)}, {"message", r.error->message}};
  if (r.ready) {
    const ReadyFacts& f = *r.ready;
    j["duration_seconds"] = f.duration_seconds;
    j["network"] = NetworkJson(f);
    j["width"] = f.width;
    j["height"] = f.height;
    j["fps"] = f.fps;
    j["warnings"] = f.warnings;
    j["renditions"] = RenditionsJson(f.renditions);
  }
  return j;
}

json ProgressJson(const VideoProgress& p) {
  json j = {{"phase", p.phase},
            {"ingest_done", p.ingest_done},
            {"tasks_known", p.tasks_known},
            {"tasks_done", p.tasks_done},
            {"tasks_running", p.tasks_running},
            {"fraction", p.fraction}};
  if (!p.audio.empty()) j["audio"] = p.audio;
  return j;
}

}  // namespace

std::string_view VideoStatusName(VideoStatus status) {
  return NameIn(kStatusNames, status, "uploading");
}

std::optional<VideoStatus> ParseVideoStatus(std::string_view name) {
  return ValueIn<VideoStatus>(kStatusNames, name);
}

std::string ToJson(const VideoRecord& r) {
  json j = CommonJson(r);
  j["tenant"] = r.tenant;
  j["created_ns"] = r.created_ns;
  j["kind"] = r.resumable ? "tus" : "raw";
  if (r.ready) {
    j["chunks"] = ChunksJson(r.ready->chunks);
    j["audio"] = AudioJson(r.ready->audio);
  }
  return j.dump();
}

Result<VideoRecord> VideoRecordFromJson(std::string_view text) {
  try {
    const json j = json::parse(text);
    VideoRecord r;
    r.id = j.at("id").get<std::string>();
    r.tenant = j.value("tenant", "");
    auto status = ParseVideoStatus(j.at("status").get<std::string>());
    if (!status)
      return Status::Error(ErrorCode::kInternal, "video " + r.id + ": an unknown status");
    r.status = *status;
    r.filename = j.value("filename", "");
    r.created_at = j.value("created_at", "");
    r.created_ns = j.value("created_ns", int64_t{0});
    r.bytes_received = j.value("bytes_received", uint64_t{0});
    if (j.contains("size") && j["size"].is_number()) r.size = j["size"].get<uint64_t>();
    r.ladder = j.value("ladder", std::vector<std::string>{});
    r.preset = j.value("preset", "veryfast");
    r.resumable = j.value("kind", "") == "tus";
    r.playback_policy = j.value("playback_policy", "signed");
    r.metadata = j.value("metadata", std::map<std::string, std::string>{});
    r.passthrough = j.value("passthrough", "");
    r.upload_id = j.value("upload_id", "");
    if (j.contains("upload_expires_at"))
      r.upload_expires_at = j["upload_expires_at"].get<std::string>();
    if (j.contains("error"))
      // A code this version does not know (a newer one wrote it) reads as "internal".
      r.error =
          VideoError{ErrorCodeFromName(j["error"].value("code", "")).value_or(ErrorCode::kInternal),
                     j["error"].value("message", "")};
    if (r.status == VideoStatus::kReady) {
      ReadyFacts f;
      f.duration_seconds = j.value("duration_seconds", 0.0);
      f.width = j.value("width", 0);
      f.height = j.value("height", 0);
      f.fps = j.value("fps", 0.0);
      f.warnings = j.value("warnings", std::vector<std::string>{});
      for (const auto& x : j.value("renditions", json::array()))
        f.renditions.push_back({x.value("name", ""), x.value("width", 0), x.value("height", 0),
                                x.value("bandwidth", int64_t{0}), x.value("playlist", ""),
                                x.value("mp4", "")});
      for (const auto& c : j.value("chunks", json::array()))
        f.chunks.push_back(TaskFromJson(c, c.value("index", 0)));
      if (j.contains("audio") && j["audio"].is_object())
        f.audio = TaskFromJson(j["audio"], kAudioTaskIndex);
      if (j.contains("network")) {
        const json& n = j["network"];
        f.task_input_bytes = n.value("task_input_bytes", uint64_t{0});
        f.task_input_bytes_remote = n.value("task_input_bytes_remote", uint64_t{0});
        f.task_output_bytes_sent = n.value("task_output_bytes_sent", uint64_t{0});
      }
      r.ready = std::move(f);
    }
    return r;
  } catch (const std::exception& e) {
    return Status::Error(ErrorCode::kInternal,
                         std::string("a video record unreadable: ") + e.what());
  }
}

json VideoJson(const Video& v, bool with_chunks) {
  json j = CommonJson(v.record);
  if (v.duration_seconds) j["duration_seconds"] = *v.duration_seconds;
  j["playable"] = v.playable;
  j["playable_seconds"] = v.playable_seconds;
  j["progress"] = ProgressJson(v.progress);
  if (!j.contains("warnings")) j["warnings"] = json::array();
  if (with_chunks) {
    j["chunks"] = ChunksJson(v.chunks);
    // A ready video says "audio": null when its source had no audio track.
    if (v.audio || v.record.ready) j["audio"] = AudioJson(v.audio);
  }
  return j;
}

}  // namespace zerofarm::scheduler
