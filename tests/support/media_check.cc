#include "media_check.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "run_command.h"

namespace zerofarm::test {
namespace {

using nlohmann::json;

std::string EnvOr(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return (v != nullptr && *v != '\0') ? v : fallback;
}

Status ToolError(const std::vector<std::string>& argv, const CommandResult& r) {
  std::string err = r.err;
  if (err.size() > 2000) err = err.substr(0, 2000) + "...";
  return Status::Error(ErrorCode::kToolFailed, FormatCommand(argv) + ": " + r.DescribeEnd() +
                                                   (err.empty() ? "" : ": ") + err);
}

// Runs an ffprobe command and parses its JSON output.
Result<json> RunProbe(const std::vector<std::string>& argv, std::string* stderr_text = nullptr) {
  CommandResult r = RunCommand(argv, kProbeTimeout);
  if (!r.succeeded()) return ToolError(argv, r);
  json doc = json::parse(r.out, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) {
    return Status::Error(ErrorCode::kBadJson, FormatCommand(argv) + ": output is not JSON");
  }
  if (stderr_text != nullptr) *stderr_text = r.err;
  return doc;
}

// ffprobe prints most numbers as strings ("0.033367", "48000") and leaves out or writes
// "N/A" for missing ones.
std::optional<double> NumberAt(const json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::nullopt;
  if (it->is_number()) return it->get<double>();
  if (it->is_string()) {
    const std::string& s = it->get_ref<const std::string&>();
    char* end = nullptr;
    double v = std::strtod(s.c_str(), &end);
    if (s.empty() || end != s.c_str() + s.size() || !std::isfinite(v)) return std::nullopt;
    return v;
  }
  return std::nullopt;
}

int IntAt(const json& obj, const char* key) {
  auto v = NumberAt(obj, key);
  return v ? static_cast<int>(std::lround(*v)) : 0;
}

std::string StringAt(const json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end()) return "";
  if (it->is_string()) return it->get<std::string>();
  if (it->is_number()) return it->dump();
  return "";
}

// "16:9" -> {16, 9}; "0:1", "N/A" or missing -> {1, 1}.
std::pair<int, int> ParseRatio(const std::string& s) {
  auto colon = s.find(':');
  if (colon == std::string::npos) return {1, 1};
  int num = std::atoi(s.substr(0, colon).c_str());
  int den = std::atoi(s.substr(colon + 1).c_str());
  if (num <= 0 || den <= 0) return {1, 1};
  return {num, den};
}

int RotationOf(const json& stream) {
  if (auto it = stream.find("side_data_list"); it != stream.end() && it->is_array()) {
    for (const auto& sd : *it) {
      if (auto r = NumberAt(sd, "rotation")) return static_cast<int>(std::lround(*r));
    }
  }
  if (auto tags = stream.find("tags"); tags != stream.end()) {
    if (auto r = NumberAt(*tags, "rotate")) return static_cast<int>(std::lround(*r));
  }
  return 0;
}

bool IsQuarterTurn(int rotation) {
  int r = ((rotation % 360) + 360) % 360;
  return r == 90 || r == 270;
}

}  // namespace

std::string FfprobePath() { return EnvOr("ZEROFARM_FFPROBE", "ffprobe"); }
std::string FfmpegPath() { return EnvOr("ZEROFARM_FFMPEG", "ffmpeg"); }

int StreamInfo::DisplayWidth() const {
  int w = static_cast<int>(std::lround(static_cast<double>(width) * sar_num / sar_den));
  return IsQuarterTurn(rotation) ? height : w;
}

int StreamInfo::DisplayHeight() const {
  int w = static_cast<int>(std::lround(static_cast<double>(width) * sar_num / sar_den));
  return IsQuarterTurn(rotation) ? w : height;
}

int MediaInfo::Count(const std::string& type) const {
  return static_cast<int>(
      std::count_if(streams.begin(), streams.end(), [&](const auto& s) { return s.type == type; }));
}

const StreamInfo* MediaInfo::First(const std::string& type) const {
  for (const auto& s : streams) {
    if (s.type == type) return &s;
  }
  return nullptr;
}

Result<MediaInfo> ProbeStreams(const std::string& path) {
  std::vector<std::string> argv = {FfprobePath(),  "-v",  "error", "-show_streams",
                                   "-show_format", "-of", "json",  path};
  auto doc = RunProbe(argv);
  if (!doc.ok()) return doc.status();
  MediaInfo info;
  if (auto fmt = doc->find("format"); fmt != doc->end())
    info.format_name = StringAt(*fmt, "format_name");
  if (auto streams = doc->find("streams"); streams != doc->end() && streams->is_array()) {
    for (const auto& s : *streams) {
      StreamInfo si;
      si.index = IntAt(s, "index");
      si.type = StringAt(s, "codec_type");
      si.codec = StringAt(s, "codec_name");
      si.profile = StringAt(s, "profile");
      si.pix_fmt = StringAt(s, "pix_fmt");
      si.width = IntAt(s, "width");
      si.height = IntAt(s, "height");
      std::tie(si.sar_num, si.sar_den) = ParseRatio(StringAt(s, "sample_aspect_ratio"));
      si.rotation = RotationOf(s);
      si.sample_rate = IntAt(s, "sample_rate");
      si.channels = IntAt(s, "channels");
      si.avg_frame_rate = StringAt(s, "avg_frame_rate");
      info.streams.push_back(std::move(si));
    }
  }
  return info;
}

double VideoFrame::Time() const {
  if (pts) return *pts;
  if (best_effort) return *best_effort;
  return std::numeric_limits<double>::quiet_NaN();
}

Result<VideoFrames> ProbeVideoFrames(const std::string& path) {
  std::vector<std::string> argv = {
      FfprobePath(),
      "-v",
      "error",
      "-select_streams",
      "v:0",
      "-show_entries",
      "stream=index:frame=best_effort_timestamp_time,pts_time,pkt_duration_time,key_frame,"
      "pict_type,width,height",
      "-of",
      "json",
      path};
  VideoFrames result;
  auto doc = RunProbe(argv, &result.decoder_messages);
  if (!doc.ok()) return doc.status();
  auto streams = doc->find("streams");
  if (streams == doc->end() || !streams->is_array() || streams->empty()) {
    return Status::Error(ErrorCode::kNoVideoStream, path + ": no video stream");
  }
  if (auto frames = doc->find("frames"); frames != doc->end() && frames->is_array()) {
    result.frames.reserve(frames->size());
    for (const auto& f : *frames) {
      VideoFrame vf;
      vf.pts = NumberAt(f, "pts_time");
      vf.best_effort = NumberAt(f, "best_effort_timestamp_time");
      vf.duration = NumberAt(f, "pkt_duration_time");
      vf.key = IntAt(f, "key_frame") != 0;
      std::string pict = StringAt(f, "pict_type");
      vf.pict_type = pict.empty() ? '?' : pict[0];
      vf.width = IntAt(f, "width");
      vf.height = IntAt(f, "height");
      result.frames.push_back(vf);
    }
  }
  return result;
}

std::string FindPtsProblem(const std::vector<VideoFrame>& frames) {
  for (size_t i = 0; i < frames.size(); ++i) {
    if (!frames[i].pts) return "frame " + std::to_string(i) + " has no pts";
    if (i > 0 && !(*frames[i].pts > *frames[i - 1].pts)) {
      std::ostringstream msg;
      msg.precision(6);
      msg << std::fixed << "frame " << i << ": pts " << *frames[i].pts << " <= previous "
          << *frames[i - 1].pts;
      return msg.str();
    }
  }
  return "";
}

std::vector<double> RelativeKeyframeTimes(const std::vector<VideoFrame>& frames) {
  std::vector<double> times;
  if (frames.empty()) return times;
  const double start = frames.front().Time();
  for (const auto& f : frames) {
    if (f.key) times.push_back(f.Time() - start);
  }
  return times;
}

Result<std::optional<AudioTrack>> ProbeAudio(const std::string& path) {
  std::vector<std::string> argv = {
      FfprobePath(),
      "-v",
      "error",
      "-select_streams",
      "a:0",
      "-show_entries",
      "stream=codec_name,sample_rate,channels:frame=pts_time,best_effort_timestamp_time,"
      "pkt_duration_time,nb_samples",
      "-of",
      "json",
      path};
  AudioTrack track;
  auto doc = RunProbe(argv, &track.decoder_messages);
  if (!doc.ok()) return doc.status();
  auto streams = doc->find("streams");
  if (streams == doc->end() || !streams->is_array() || streams->empty()) {
    return std::optional<AudioTrack>();
  }
  const json& stream = streams->front();
  track.codec = StringAt(stream, "codec_name");
  track.sample_rate = IntAt(stream, "sample_rate");
  track.channels = IntAt(stream, "channels");
  bool any = false;
  if (auto frames = doc->find("frames"); frames != doc->end() && frames->is_array()) {
    for (const auto& f : *frames) {
      auto t = NumberAt(f, "pts_time");
      if (!t) t = NumberAt(f, "best_effort_timestamp_time");
      const int64_t n = IntAt(f, "nb_samples");
      ++track.frames;
      track.samples += n;
      if (!t) continue;
      // The container's duration for the packet honours trims (an MP4 edit list shortening
      // the last frame); the decoded sample count does not.
      auto d = NumberAt(f, "pkt_duration_time");
      double duration = (d && *d > 0)           ? *d
                        : track.sample_rate > 0 ? static_cast<double>(n) / track.sample_rate
                                                : 0.0;
      if (!any || *t < track.first_pts) track.first_pts = *t;
      if (!any || *t + duration > track.end_pts) track.end_pts = *t + duration;
      any = true;
    }
  }
  return std::optional<AudioTrack>(std::move(track));
}

Result<int64_t> CountDecodedFrames(const std::string& path) {
  std::vector<std::string> argv = {FfprobePath(),
                                   "-v",
                                   "error",
                                   "-select_streams",
                                   "v:0",
                                   "-count_frames",
                                   "-show_entries",
                                   "stream=nb_read_frames",
                                   "-of",
                                   "json",
                                   path};
  auto doc = RunProbe(argv);
  if (!doc.ok()) return doc.status();
  auto streams = doc->find("streams");
  if (streams == doc->end() || !streams->is_array() || streams->empty()) {
    return Status::Error(ErrorCode::kNoVideoStream, path + ": no video stream");
  }
  auto n = NumberAt(streams->front(), "nb_read_frames");
  if (!n) return Status::Error(ErrorCode::kNoCount, path + ": ffprobe gave no nb_read_frames");
  return static_cast<int64_t>(std::llround(*n));
}

Result<std::optional<double>> SourceAudioDuration(const std::string& path) {
  auto audio = ProbeAudio(path);
  if (!audio.ok()) return audio.status();
  if (!audio->has_value()) return std::optional<double>();
  return std::optional<double>((*audio)->Duration());
}

Status DecodesCleanly(const std::string& path, const std::vector<std::string>& extra_args) {
  std::vector<std::string> argv = {FfmpegPath(), "-nostdin", "-v", "error", "-i", path};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  // Keep the input's time base: by default the CLI re-times video into 1/(guessed frame rate),
  // and for variable-frame-rate input (an MP4 at 29.3 fps average with frames 18 ms apart)
  // the null muxer then complains about equal timestamps that the file does not have.
  argv.insert(argv.end(), {"-enc_time_base", "-1", "-f", "null", "-"});
  CommandResult r = RunCommand(argv, kProbeTimeout);
  if (!r.succeeded() || !r.err.empty()) return ToolError(argv, r);
  return Status::Ok();
}

Result<std::vector<std::string>> TopLevelBoxes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::Error(ErrorCode::kOpenFailed, "cannot open " + path);
  in.seekg(0, std::ios::end);
  const uint64_t file_size = static_cast<uint64_t>(in.tellg());
  std::vector<std::string> types;
  uint64_t pos = 0;
  while (pos + 8 <= file_size) {
    in.seekg(static_cast<std::streamoff>(pos));
    unsigned char header[16];
    if (!in.read(reinterpret_cast<char*>(header), 8)) break;
    uint64_t size = (uint64_t{header[0]} << 24) | (uint64_t{header[1]} << 16) |
                    (uint64_t{header[2]} << 8) | uint64_t{header[3]};
    std::string type(reinterpret_cast<const char*>(header + 4), 4);
    if (size == 1) {
      if (!in.read(reinterpret_cast<char*>(header + 8), 8)) break;
      size = 0;
      for (int i = 8; i < 16; ++i) size = (size << 8) | header[i];
    } else if (size == 0) {
      size = file_size - pos;
    }
    if (size < 8) {
      return Status::Error(ErrorCode::kBadBox, path + ": box '" + type + "' at " +
                                                   std::to_string(pos) + " has size " +
                                                   std::to_string(size));
    }
    types.push_back(type);
    pos += size;
  }
  return types;
}

Result<bool> IsFaststart(const std::string& path) {
  auto boxes = TopLevelBoxes(path);
  if (!boxes.ok()) return boxes.status();
  auto moov = std::find(boxes->begin(), boxes->end(), "moov");
  auto mdat = std::find(boxes->begin(), boxes->end(), "mdat");
  if (moov == boxes->end()) return Status::Error(ErrorCode::kNoMoov, path + ": no moov box");
  return mdat == boxes->end() || moov < mdat;
}

}  // namespace zerofarm::test
