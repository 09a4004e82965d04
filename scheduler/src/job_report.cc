// JSON of the job engine's records (job_report.h). The field names are those of report.json
// and of the records a running farm keeps in its store: renaming one breaks resumption and
// the API's "chunks", so they are written here only.
#include "zerofarm/scheduler/job_report.h"

#include <nlohmann/json.hpp>

#include "zerofarm/storage/content_hash.h"
#include "zerofarm/transcode/worker_task.h"

namespace zerofarm::scheduler {
namespace {

using nlohmann::json;
namespace tc = transcode;

json TaskPlanJson(const tc::TaskPlan& t) {
  json j = {{"index", t.index},
            {"decode_from", t.decode_from},
            {"decode_to", t.decode_to},
            {"first_chunk", t.first_chunk},
            {"last_chunk", t.last_chunk},
            {"owned_packets", t.owned_packets},
            {"preroll_packets", t.preroll_packets},
            {"seconds", t.seconds}};
  if (t.start_pts) j["start_pts"] = *t.start_pts;
  if (t.end_pts) j["end_pts"] = *t.end_pts;
  return j;
}

tc::TaskPlan TaskPlanFromJson(const json& j) {
  tc::TaskPlan t;
  t.index = j.at("index").get<uint32_t>();
  t.decode_from = j.at("decode_from").get<uint64_t>();
  t.decode_to = j.at("decode_to").get<uint64_t>();
  t.first_chunk = j.at("first_chunk").get<uint32_t>();
  t.last_chunk = j.at("last_chunk").get<uint32_t>();
  t.owned_packets = j.at("owned_packets").get<uint64_t>();
  t.preroll_packets = j.at("preroll_packets").get<uint64_t>();
  t.seconds = j.at("seconds").get<double>();
  if (j.contains("start_pts")) t.start_pts = j["start_pts"].get<int64_t>();
  if (j.contains("end_pts")) t.end_pts = j["end_pts"].get<int64_t>();
  return t;
}

// The plan without its task list: what the report says of the source.
json PlanSummaryJson(const JobPlan& p) {
  json r = json::array();
  for (const auto& x : p.rungs) r.push_back(json::parse(tc::ToJson(x)));
  const tc::SourceInfo& s = p.source;
  return {{"container", s.container},
          {"video_codec", s.video_codec},
          {"audio_codec", s.audio_codec},
          {"has_audio", s.audio.has_value()},
          {"display_width", s.display_width},
          {"display_height", s.display_height},
          {"fps", s.fps},
          {"origin_pts", s.origin_pts},
          {"origin_seconds", s.origin_seconds},
          {"time_base", {s.video.time_base_num, s.video.time_base_den}},
          {"rungs", r},
          {"thumbnail", {p.thumb_width, p.thumb_height}},
          {"chunks", p.chunks},
          {"source_bytes", p.source_bytes},
          {"video_packets", p.video_packets},
          {"duration_seconds", p.duration_seconds},
          {"ingest_id", p.ingest_id},
          {"warnings", s.warnings}};
}

json TaskResultJson(const TaskResult& r) {
  json j = {{"task", r.index == kAudioTaskIndex ? json("audio") : json(r.index)},
            {"node", r.node},
            {"attempts", r.attempts},
            {"frames", r.frames},
            {"frames_decoded", r.frames_decoded},
            {"decode_errors", r.decode_errors},
            {"wall_seconds", r.wall_seconds},
            {"cpu_seconds", r.cpu_seconds},
            {"peak_rss_kib", r.peak_rss_kib},
            {"threads", r.threads},
            {"isolation", r.sandboxed ? "sandbox" : "unsandboxed"},
            {"input_bytes", r.input_bytes},
            {"input_bytes_remote", r.input_bytes_remote},
            {"output_bytes_sent", r.output_bytes_sent}};
  if (r.backup_copy) j["backup_copy"] = true;
  json outputs = json::array();
  for (const auto& o : r.outputs)
    outputs.push_back(
        {{"object", o.object}, {"bytes", o.bytes}, {"xxh64", storage::ContentHashHex(o.xxh64)}});
  j["outputs"] = outputs;
  if (r.sandboxed)
    j["sandbox"] = {{"spawn_ms", r.spawn_ms},
                    {"layers_missing", r.layers_missing},
                    {"memory_limit_via", r.memory_limit_via}};
  if (r.index != kAudioTaskIndex) {
    json rungs = json::array();
    for (const auto& x : r.rungs)
      rungs.push_back({{"name", x.name}, {"frames", x.frames}, {"bytes", x.bytes}});
    j["rungs"] = rungs;
    j["start_seconds"] = r.start_seconds;
    j["seconds"] = r.seconds;
    j["preroll_packets"] = r.preroll_packets;
  }
  return j;
}

}  // namespace

std::string ToJson(const JobPlan& plan) {
  json j = PlanSummaryJson(plan);
  json t = json::array();
  for (const auto& x : plan.tasks) t.push_back(TaskPlanJson(x));
  j["tasks"] = t;
  return j.dump();
}

Result<JobPlan> JobPlanFromJson(std::string_view text) {
  try {
    const json j = json::parse(text);
    JobPlan p;
    p.source.container = j.at("container");
    p.source.video_codec = j.at("video_codec");
    p.source.audio_codec = j.at("audio_codec");
    if (j.at("has_audio").get<bool>()) p.source.audio = tc::StreamHeader{};
    p.source.display_width = j.at("display_width");
    p.source.display_height = j.at("display_height");
    p.source.fps = j.at("fps");
    p.source.origin_pts = j.at("origin_pts");
    p.source.origin_seconds = j.at("origin_seconds");
    p.source.video.time_base_num = j.at("time_base")[0];
    p.source.video.time_base_den = j.at("time_base")[1];
    for (const auto& r : j.at("rungs")) {
      auto rung = tc::RungSettingsFromJson(r.dump());
      if (!rung.ok()) return rung.status();
      p.rungs.push_back(*rung);
    }
    p.thumb_width = j.at("thumbnail")[0];
    p.thumb_height = j.at("thumbnail")[1];
    for (const auto& t : j.at("tasks")) p.tasks.push_back(TaskPlanFromJson(t));
    p.chunks = j.at("chunks");
    p.source_bytes = j.at("source_bytes");
    p.video_packets = j.at("video_packets");
    p.duration_seconds = j.at("duration_seconds");
    if (j.contains("warnings")) p.source.warnings = j["warnings"].get<std::vector<std::string>>();
    p.ingest_id = j.value("ingest_id", "");
    return p;
  } catch (const std::exception& e) {
    return Status::Error(ErrorCode::kInternal,
                         std::string("stored job plan unreadable: ") + e.what());
  }
}

std::string ToJson(const TaskResult& result) { return TaskResultJson(result).dump(); }

Result<TaskResult> TaskResultFromJson(std::string_view text) {
  try {
    const json j = json::parse(text);
    if (!j.contains("outputs"))
      return Status::Error(ErrorCode::kInternal, "a task result without output checksums");
    TaskResult r;
    const json& task = j.at("task");
    r.index = task.is_string() ? kAudioTaskIndex : task.get<int>();
    r.node = j.value("node", "");
    r.attempts = j.value("attempts", 0);
    r.frames = j.value("frames", uint64_t{0});
    r.frames_decoded = j.value("frames_decoded", uint64_t{0});
    r.decode_errors = j.value("decode_errors", uint64_t{0});
    r.wall_seconds = j.value("wall_seconds", 0.0);
    r.cpu_seconds = j.value("cpu_seconds", 0.0);
    r.peak_rss_kib = j.value("peak_rss_kib", 0L);
    r.threads = j.value("threads", 0);
    r.sandboxed = j.value("isolation", "") == "sandbox";
    r.input_bytes = j.value("input_bytes", uint64_t{0});
    r.input_bytes_remote = j.value("input_bytes_remote", uint64_t{0});
    r.output_bytes_sent = j.value("output_bytes_sent", uint64_t{0});
    r.backup_copy = j.value("backup_copy", false);
    for (const auto& o : j.at("outputs")) {
      auto h = storage::ParseContentHashHex(o.value("xxh64", ""));
      if (!h)
        return Status::Error(ErrorCode::kInternal,
                             "a task result with a malformed output checksum");
      r.outputs.push_back({o.at("object").get<std::string>(), o.value("bytes", uint64_t{0}), *h});
    }
    if (j.contains("sandbox")) {
      const json& s = j["sandbox"];
      r.spawn_ms = s.value("spawn_ms", 0.0);
      r.layers_missing = s.value("layers_missing", std::vector<std::string>{});
      r.memory_limit_via = s.value("memory_limit_via", "");
    }
    for (const auto& x : j.value("rungs", json::array()))
      r.rungs.push_back(
          {x.value("name", ""), x.value("frames", uint64_t{0}), x.value("bytes", uint64_t{0})});
    r.start_seconds = j.value("start_seconds", 0.0);
    r.seconds = j.value("seconds", 0.0);
    r.preroll_packets = j.value("preroll_packets", uint64_t{0});
    return r;
  } catch (const std::exception& e) {
    return Status::Error(ErrorCode::kInternal,
                         std::string("a task result unreadable: ") + e.what());
  }
}

std::string ToJson(const JobReport& report) {
  json chunks = json::array();
  for (const auto& c : report.chunks) chunks.push_back(TaskResultJson(c));
  json renditions = json::array();
  for (const auto& r : report.renditions) {
    const transcode::RenditionStats& m = r.made;
    renditions.push_back({{"name", m.name},
                          {"width", m.width},
                          {"height", m.height},
                          {"frames", m.frames},
                          {"bytes", m.bytes},
                          {"duration_seconds", m.duration_seconds},
                          {"peak_bps", m.peak_bps},
                          {"average_bps", m.average_bps},
                          {"codecs", m.codecs},
                          {"level", r.level},
                          {"maxrate_kbps", r.maxrate_kbps},
                          {"segments", m.segment_frames.size()},
                          {"playlist", m.name + "/index.m3u8"},
                          {"mp4", m.name + ".mp4"}});
  }
  json worker = {{"isolation", report.sandboxed ? "sandbox" : "unsandboxed"}};
  if (report.worker_sha256.empty())
    worker["runs_on"] = "storage nodes";
  else
    worker["sha256"] = report.worker_sha256;
  const json j = {{"status", "ready"},
                  {"source", PlanSummaryJson(report.source)},
                  {"renditions", renditions},
                  {"chunks", chunks},
                  {"audio", report.audio ? TaskResultJson(*report.audio) : json()},
                  {"audio_seconds", report.audio_seconds},
                  {"tasks_resumed", report.tasks_resumed},
                  {"outputs_rejected", report.outputs_rejected},
                  {"worker", worker},
                  {"network",
                   {{"task_input_bytes", report.task_input_bytes},
                    {"task_input_bytes_remote", report.task_input_bytes_remote},
                    {"task_output_bytes_sent", report.task_output_bytes_sent}}},
                  {"timing",
                   {{"ingest_seconds", report.ingest_seconds},
                    {"total_seconds", report.total_seconds},
                    {"worker_cpu_seconds", report.worker_cpu_seconds}}}};
  return j.dump(2);
}

}  // namespace zerofarm::scheduler
