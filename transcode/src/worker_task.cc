#include "zerofarm/transcode/worker_task.h"

#include <nlohmann/json.hpp>
#include <stdexcept>

namespace zerofarm::transcode {
namespace {

using nlohmann::json;

json RungJson(const RungSettings& r) {
  return {{"name", r.name},
          {"width", r.width},
          {"height", r.height},
          {"crf", r.crf},
          {"maxrate_kbps", r.maxrate_kbps},
          {"bufsize_kbps", r.bufsize_kbps},
          {"level", r.level},
          {"profile", r.profile}};
}

RungSettings RungFromJson(const json& j) {
  RungSettings r;
  r.name = j.at("name").get<std::string>();
  r.width = j.at("width").get<int>();
  r.height = j.at("height").get<int>();
  r.crf = j.at("crf").get<int>();
  r.maxrate_kbps = j.at("maxrate_kbps").get<int>();
  r.bufsize_kbps = j.at("bufsize_kbps").get<int>();
  r.level = j.at("level").get<std::string>();
  r.profile = j.at("profile").get<std::string>();
  return r;
}

template <class T, class F>
Result<T> Parse(const std::string& text, F&& fill) {
  try {
    json j = json::parse(text);
    return fill(j);
  } catch (const std::exception& e) {
    return Status::Error(ErrorCode::kInvalidArgument, std::string("bad worker JSON: ") + e.what());
  }
}

}  // namespace

std::string ToJson(const RungSettings& rung) { return RungJson(rung).dump(); }

Result<RungSettings> RungSettingsFromJson(const std::string& text) {
  return Parse<RungSettings>(text, [](const json& j) { return RungFromJson(j); });
}

std::string ToJson(const VideoTask& t) {
  json j = {{"decode_from", t.decode_from},
            {"decode_to", t.decode_to},
            {"origin_pts", t.origin_pts},
            {"preset", t.preset},
            {"threads", t.threads}};
  if (t.start_pts) j["start_pts"] = *t.start_pts;
  if (t.end_pts) j["end_pts"] = *t.end_pts;
  json outs = json::array();
  for (const auto& o : t.outputs) outs.push_back({{"rung", RungJson(o.rung)}, {"fd", o.fd}});
  j["outputs"] = outs;
  if (t.thumbnail_pts) {
    j["thumbnail"] = {{"pts", *t.thumbnail_pts},
                      {"fd", t.thumbnail_fd},
                      {"width", t.thumbnail_width},
                      {"height", t.thumbnail_height}};
  }
  return j.dump();
}

Result<VideoTask> VideoTaskFromJson(const std::string& text) {
  return Parse<VideoTask>(text, [](const json& j) {
    VideoTask t;
    t.decode_from = j.at("decode_from").get<uint64_t>();
    t.decode_to = j.at("decode_to").get<uint64_t>();
    t.origin_pts = j.at("origin_pts").get<int64_t>();
    t.preset = j.at("preset").get<std::string>();
    t.threads = j.value("threads", 1);
    if (j.contains("start_pts")) t.start_pts = j["start_pts"].get<int64_t>();
    if (j.contains("end_pts")) t.end_pts = j["end_pts"].get<int64_t>();
    for (const auto& o : j.at("outputs"))
      t.outputs.push_back({RungFromJson(o.at("rung")), o.at("fd").get<int>()});
    if (j.contains("thumbnail")) {
      const auto& th = j["thumbnail"];
      t.thumbnail_pts = th.at("pts").get<int64_t>();
      t.thumbnail_fd = th.at("fd").get<int>();
      t.thumbnail_width = th.at("width").get<int>();
      t.thumbnail_height = th.at("height").get<int>();
    }
    return t;
  });
}

std::string ToJson(const AudioTask& t) {
  return json{{"origin_seconds", t.origin_seconds},
              {"bitrate_kbps", t.bitrate_kbps},
              {"output_fd", t.output_fd}}
      .dump();
}

Result<AudioTask> AudioTaskFromJson(const std::string& text) {
  return Parse<AudioTask>(text, [](const json& j) {
    AudioTask t;
    t.origin_seconds = j.at("origin_seconds").get<double>();
    t.bitrate_kbps = j.at("bitrate_kbps").get<int>();
    t.output_fd = j.at("output_fd").get<int>();
    return t;
  });
}

std::string ToJson(const WorkerReport& r) {
  json rungs = json::array();
  for (const auto& x : r.rungs)
    rungs.push_back({{"name", x.name},
                     {"frames", x.frames},
                     {"bytes", x.bytes},
                     {"first_pts", x.first_pts},
                     {"last_pts", x.last_pts}});
  json j = {{"ok", r.ok},
            {"packets_in", r.packets_in},
            {"frames_decoded", r.frames_decoded},
            {"frames_output", r.frames_output},
            {"decode_errors", r.decode_errors},
            {"cpu_seconds", r.cpu_seconds},
            {"wall_seconds", r.wall_seconds},
            {"rungs", rungs}};
  if (!r.ok) {
    const ErrorCode code = r.error_code.value_or(ErrorCode::kInternal);
    j["error"] = {{"code", ErrorCodeName(code)}, {"message", r.error_message}};
  }
  return j.dump();
}

Result<WorkerReport> WorkerReportFromJson(const std::string& text) {
  return Parse<WorkerReport>(text, [](const json& j) {
    WorkerReport r;
    r.ok = j.at("ok").get<bool>();
    r.packets_in = j.value("packets_in", uint64_t{0});
    r.frames_decoded = j.value("frames_decoded", uint64_t{0});
    r.frames_output = j.value("frames_output", uint64_t{0});
    r.decode_errors = j.value("decode_errors", uint64_t{0});
    r.cpu_seconds = j.value("cpu_seconds", 0.0);
    r.wall_seconds = j.value("wall_seconds", 0.0);
    if (j.contains("error")) {
      // No code reads as internal; a name this build does not know makes the report malformed.
      const std::string name = j["error"].value("code", "internal");
      r.error_code = ErrorCodeFromName(name);
      if (!r.error_code) throw std::invalid_argument("unknown error code '" + name + "'");
      r.error_message = j["error"].value("message", "");
    }
    if (j.contains("rungs")) {
      for (const auto& x : j["rungs"]) {
        RungReport rr;
        rr.name = x.value("name", "");
        rr.frames = x.value("frames", uint64_t{0});
        rr.bytes = x.value("bytes", uint64_t{0});
        rr.first_pts = x.value("first_pts", int64_t{-1});
        rr.last_pts = x.value("last_pts", int64_t{-1});
        r.rungs.push_back(rr);
      }
    }
    return r;
  });
}

}  // namespace zerofarm::transcode
