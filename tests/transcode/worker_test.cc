// zerofarm-worker driven as the scheduler drives it: a packet stream on fd 0, one pipe per
// output, the JSON report on fd 1. Clips are made with the ffmpeg CLI and demuxed here.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <random>

#include "clip_factory.h"
#include "corpus.h"
#include "run_command.h"
#include "worker_harness.h"
#include "zerofarm/transcode/ffmpeg_ptr.h"
#include "zerofarm/transcode/ladder.h"
#include "zerofarm/transcode/worker_task.h"

namespace zerofarm::transcode {
namespace {

using worker_test::DecodedPicture;
using worker_test::Demux;
using worker_test::DemuxedStream;
using worker_test::ParsedStream;
using worker_test::RunWorker;
using worker_test::WorkerRun;

std::string MakeClip(const std::string& name, const std::vector<std::string>& ffmpeg_args) {
  auto clip = test::MakeCachedClip(name, ffmpeg_args);
  INFO(clip.status().ToString());
  REQUIRE(clip.ok());
  return clip->string();
}

// 3 s of 640x360 at 25 fps (75 frames, a keyframe every 25, 2 B-frames) with a 44.1 kHz tone.
std::string TestClip() {
  return MakeClip("clip.mp4", {"-f",       "lavfi",   "-i",   "testsrc2=size=640x360:rate=25",
                               "-f",       "lavfi",   "-i",   "sine",
                               "-t",       "3",       "-c:v", "libx264",
                               "-pix_fmt", "yuv420p", "-g",   "25",
                               "-bf",      "2",       "-c:a", "aac"});
}

// 1 s of black 320x180 with a white 80x60 box in the top-left corner.
std::string BoxClip() {
  return MakeClip("box.mp4", {"-f", "lavfi", "-i",
                              "color=c=black:s=320x180:r=25,"
                              "drawbox=x=0:y=0:w=80:h=60:color=white:t=fill",
                              "-t", "1", "-c:v", "libx264", "-pix_fmt", "yuv420p"});
}

// 2 s of 10-bit 4:2:2 H.264 (High 4:2:2).
std::string TenBitClip() {
  return MakeClip("tenbit.mp4", {"-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25", "-t", "2",
                                 "-c:v", "libx264", "-pix_fmt", "yuv422p10le"});
}

DemuxedStream MustDemux(const std::string& path, char kind) {
  auto demuxed = Demux(path, kind);
  INFO(demuxed.status().ToString());
  REQUIRE(demuxed.ok());
  return std::move(*demuxed);
}

RungSettings Rung(const std::string& name, int width, int height) {
  RungSettings r;
  r.name = name;
  r.width = width;
  r.height = height;
  r.crf = 23;
  r.maxrate_kbps = 1500;
  r.bufsize_kbps = 3000;
  r.level = H264LevelFor(width, height, 25, r.maxrate_kbps);
  return r;
}

VideoTask TaskFor(std::vector<RungSettings> rungs) {
  VideoTask task;
  task.preset = "veryfast";
  int fd = 3;
  for (RungSettings& r : rungs) task.outputs.push_back({std::move(r), fd++});
  return task;
}

struct Outcome {
  WorkerRun run;
  WorkerReport report;
};

Outcome Run(const std::string& mode, const std::string& task, const std::string& input,
            int outputs) {
  auto run = RunWorker(mode, task, input, outputs);
  INFO(run.status().ToString());
  REQUIRE(run.ok());
  INFO("worker log: " << run->log << "\nreport: " << run->report);
  auto report = WorkerReportFromJson(run->report);
  REQUIRE(report.ok());
  return Outcome{std::move(*run), std::move(*report)};
}

std::vector<int64_t> SortedPts(const std::vector<Packet>& packets) {
  std::vector<int64_t> pts;
  for (const Packet& p : packets) pts.push_back(p.pts);
  std::sort(pts.begin(), pts.end());
  return pts;
}

ParsedStream MustParse(const std::string& bytes) {
  auto parsed = worker_test::ParseStream(bytes);
  INFO(parsed.status().ToString());
  REQUIRE(parsed.ok());
  return std::move(*parsed);
}

// Every check a rung's packet stream must pass; returns its decoded pictures.
std::vector<DecodedPicture> CheckRung(const std::string& bytes, const RungSettings& rung,
                                      uint64_t frames) {
  INFO("rung " << rung.name);
  ParsedStream out = MustParse(bytes);
  CHECK(out.header.codec_id == AV_CODEC_ID_H264);
  CHECK(out.header.width == rung.width);
  CHECK(out.header.height == rung.height);
  CHECK(out.header.time_base_num == 1);
  CHECK(out.header.time_base_den == kOutputTimeBase);
  CHECK(out.header.format == AV_PIX_FMT_YUV420P);
  CHECK(out.header.sar_num == out.header.sar_den);
  CHECK(out.header.extradata.empty());  // parameter sets are in-band
  REQUIRE(out.packets.size() == frames);
  if (frames == 0) return {};

  // The first packet is an IDR and the only keyframe: each task is one self-contained segment.
  CHECK((out.packets[0].flags & kPacketKey) != 0);
  CHECK(std::count_if(out.packets.begin(), out.packets.end(),
                      [](const Packet& p) { return p.flags & kPacketKey; }) == 1);
  std::vector<int64_t> pts = SortedPts(out.packets);
  CHECK(std::adjacent_find(pts.begin(), pts.end()) == pts.end());
  for (const Packet& p : out.packets) CHECK(p.duration > 0);

  auto pictures = worker_test::DecodeH264(out);
  INFO(pictures.status().ToString());
  REQUIRE(pictures.ok());
  REQUIRE(pictures->size() == frames);
  CHECK(pictures->front().key);
  for (size_t i = 0; i < pictures->size(); ++i) {
    CHECK((*pictures)[i].width == rung.width);
    CHECK((*pictures)[i].height == rung.height);
    if (i > 0) CHECK((*pictures)[i].pts > (*pictures)[i - 1].pts);
  }
  return std::move(*pictures);
}

std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::string out(n, '\0');
  for (char& c : out) c = static_cast<char>(gen() & 0xff);
  return out;
}

TEST_CASE("a worker report carries its error code by name, and an unknown name is malformed",
          "[worker]") {
  WorkerReport failed;
  failed.ok = false;
  failed.error_code = ErrorCode::kUnsupportedCodec;
  failed.error_message = "no decoder";
  const std::string json = ToJson(failed);
  CHECK(json.find(R"("code":"unsupported_codec")") != std::string::npos);
  auto back = WorkerReportFromJson(json);
  REQUIRE(back.ok());
  CHECK(back->error_code == ErrorCode::kUnsupportedCodec);
  CHECK(back->error_message == "no decoder");
  // No code reads as internal, as it always has.
  auto bare = WorkerReportFromJson(R"({"ok":false,"error":{"message":"x"}})");
  REQUIRE(bare.ok());
  CHECK(bare->error_code == ErrorCode::kInternal);
  CHECK(WorkerReportFromJson(R"({"ok":false,"error":{"code":"nope","message":"x"}})")
            .status()
            .code() == ErrorCode::kInvalidArgument);
}

TEST_CASE("the worker encodes every frame into every rung, each opening with its only keyframe",
          "[worker]") {
  const DemuxedStream source = MustDemux(TestClip(), 'v');
  const std::vector<int64_t> source_pts = SortedPts(source.packets);
  REQUIRE(source_pts.size() == 75);

  VideoTask task = TaskFor({Rung("360p", 640, 360), Rung("180p", 320, 180)});
  task.thumbnail_pts = source_pts[25];  // 1 s
  task.thumbnail_fd = 5;
  task.thumbnail_width = 320;
  task.thumbnail_height = 180;
  Outcome o = Run("video", ToJson(task), source.Serialize(), 3);

  REQUIRE(o.run.exit_code == 0);
  CHECK(o.report.ok);
  CHECK(o.report.packets_in == 75);
  CHECK(o.report.frames_decoded == 75);
  CHECK(o.report.frames_output == 75);
  CHECK(o.report.decode_errors == 0);
  CHECK(o.report.cpu_seconds > 0);
  REQUIRE(o.report.rungs.size() == 2);
  for (size_t i = 0; i < 2; ++i) {
    const RungSettings& rung = task.outputs[i].rung;
    CHECK(o.report.rungs[i].name == rung.name);
    CHECK(o.report.rungs[i].frames == 75);
    CHECK(o.report.rungs[i].bytes == o.run.outputs[i].size());
    CHECK(o.report.rungs[i].first_pts == 0);
    CHECK(o.report.rungs[i].last_pts == 74 * 3600);
    CheckRung(o.run.outputs[i], rung, 75);
  }

  const std::string& jpeg = o.run.outputs[2];
  REQUIRE(jpeg.size() > 4);
  CHECK(static_cast<uint8_t>(jpeg[0]) == 0xFF);
  CHECK(static_cast<uint8_t>(jpeg[1]) == 0xD8);
  auto thumbnail = worker_test::DecodeJpeg(jpeg);
  REQUIRE(thumbnail.ok());
  CHECK(thumbnail->width == 320);
  CHECK(thumbnail->height == 180);
}

TEST_CASE("frames before start_pts are decoded as pre-roll and dropped", "[worker]") {
  const DemuxedStream source = MustDemux(TestClip(), 'v');
  const std::vector<int64_t> source_pts = SortedPts(source.packets);
  VideoTask task = TaskFor({Rung("180p", 320, 180)});
  task.start_pts = source_pts[40];  // between two keyframes: decoding starts at frame 0
  task.origin_pts = source_pts[40];
  Outcome o = Run("video", ToJson(task), source.Serialize(), 1);

  REQUIRE(o.run.exit_code == 0);
  CHECK(o.report.frames_decoded == 75);
  CHECK(o.report.frames_output == 35);
  REQUIRE(o.report.rungs.size() == 1);
  CHECK(o.report.rungs[0].first_pts == 0);
  std::vector<DecodedPicture> pictures = CheckRung(o.run.outputs[0], task.outputs[0].rung, 35);
  CHECK(pictures.front().pts == 0);
}

TEST_CASE("a chunk task feeds only its packets and outputs only frames within its bounds",
          "[worker]") {
  const DemuxedStream source = MustDemux(TestClip(), 'v');
  REQUIRE((source.packets[25].flags & kPacketKey) != 0);  // the second GOP starts here
  const std::vector<int64_t> source_pts = SortedPts(source.packets);
  VideoTask task = TaskFor({Rung("180p", 320, 180)});
  task.decode_from = 25;
  task.decode_to = 49;
  task.start_pts = source_pts[25];
  task.end_pts = source_pts[50];
  task.origin_pts = 0;
  Outcome o = Run("video", ToJson(task), source.Serialize(), 1);

  REQUIRE(o.run.exit_code == 0);
  CHECK(o.report.packets_in == 25);
  CHECK(o.report.frames_output == 25);
  REQUIRE(o.report.rungs.size() == 1);
  CHECK(o.report.rungs[0].first_pts == 25 * 3600);  // 1 s after the origin, in 1/90000
  CheckRung(o.run.outputs[0], task.outputs[0].rung, 25);
}

TEST_CASE("display rotation turns the picture clockwise and swaps the output orientation",
          "[worker]") {
  DemuxedStream source = MustDemux(BoxClip(), 'v');
  const uint64_t frames = source.packets.size();
  // The white box covers x 0-79, y 0-59 of the 320x180 source; its centre is (40, 30).
  struct Case {
    int degrees, width, height, box_x, box_y;
  };
  const Case cases[] = {{0, 320, 180, 40, 30},
                        {90, 180, 320, 179 - 30, 40},
                        {180, 320, 180, 319 - 40, 179 - 30},
                        {270, 180, 320, 30, 319 - 40}};
  for (const Case& c : cases) {
    DYNAMIC_SECTION("rotation " << c.degrees) {
      source.header.rotation_degrees = c.degrees;
      VideoTask task = TaskFor({Rung("r", c.width, c.height)});
      Outcome o = Run("video", ToJson(task), source.Serialize(), 1);
      REQUIRE(o.run.exit_code == 0);
      std::vector<DecodedPicture> pictures =
          CheckRung(o.run.outputs[0], task.outputs[0].rung, frames);
      const DecodedPicture& last = pictures.back();
      CHECK(last.LumaAt(c.box_x, c.box_y) > 200);
      // The three other corners stay black.
      const int far_x = c.box_x < c.width / 2 ? c.width - 10 : 10;
      const int far_y = c.box_y < c.height / 2 ? c.height - 10 : 10;
      CHECK(last.LumaAt(far_x, c.box_y) < 40);
      CHECK(last.LumaAt(c.box_x, far_y) < 40);
      CHECK(last.LumaAt(far_x, far_y) < 40);
    }
  }
}

TEST_CASE("10-bit 4:2:2 input comes out as 8-bit 4:2:0 H.264", "[worker]") {
  const DemuxedStream source = MustDemux(TenBitClip(), 'v');
  REQUIRE(source.header.format == AV_PIX_FMT_YUV422P10LE);
  VideoTask task = TaskFor({Rung("360p", 640, 360)});
  Outcome o = Run("video", ToJson(task), source.Serialize(), 1);
  REQUIRE(o.run.exit_code == 0);
  CHECK(o.report.frames_output == 50);
  std::vector<DecodedPicture> pictures = CheckRung(o.run.outputs[0], task.outputs[0].rung, 50);
  CHECK(pictures.front().format == AV_PIX_FMT_YUV420P);
  double sum = 0;
  for (uint8_t v : pictures.front().luma) sum += v;
  const double mean = sum / static_cast<double>(pictures.front().luma.size());
  CHECK(mean > 30);  // a picture, not black or garbage from a misread bit depth
  CHECK(mean < 220);
}

TEST_CASE("a codec outside the allow-list is refused as unsupported_codec", "[worker]") {
  DemuxedStream source = MustDemux(TestClip(), 'v');
  source.header.codec_id = AV_CODEC_ID_BMP;
  Outcome o = Run("video", ToJson(TaskFor({Rung("180p", 320, 180)})), source.Serialize(), 1);
  CHECK(o.run.exit_code == 1);
  CHECK_FALSE(o.report.ok);
  CHECK(o.report.error_code == ErrorCode::kUnsupportedCodec);
  CHECK_THAT(o.report.error_message, Catch::Contains("bmp"));
}

TEST_CASE("bytes that are not a packet stream are refused as bad_stream", "[worker]") {
  const std::string task = ToJson(TaskFor({Rung("180p", 320, 180)}));
  SECTION("random bytes") {
    Outcome o = Run("video", task, RandomBytes(64 << 10, 7), 1);
    CHECK(o.run.exit_code == 1);
    CHECK(o.report.error_code == ErrorCode::kBadStream);
  }
  SECTION("no bytes at all") {
    Outcome o = Run("video", task, "", 1);
    CHECK(o.run.exit_code == 1);
    CHECK(o.report.error_code == ErrorCode::kBadStream);
  }
  SECTION("a stream cut inside a packet") {
    const std::string whole = MustDemux(TestClip(), 'v').Serialize();
    Outcome o = Run("video", task, whole.substr(0, whole.size() / 2 + 3), 1);
    CHECK(o.run.exit_code == 1);
    CHECK(o.report.error_code == ErrorCode::kBadStream);
  }
}

TEST_CASE("packets that do not decode make the task undecodable", "[worker]") {
  DemuxedStream source = MustDemux(TestClip(), 'v');
  for (size_t i = 0; i < source.packets.size(); ++i)
    source.packets[i].data = RandomBytes(source.packets[i].data.size(), static_cast<uint32_t>(i));
  Outcome o = Run("video", ToJson(TaskFor({Rung("180p", 320, 180)})), source.Serialize(), 1);
  CHECK(o.run.exit_code == 1);
  CHECK(o.report.error_code == ErrorCode::kUndecodable);
}

TEST_CASE("frames larger than 8192 pixels on a side are refused as unsupported", "[worker]") {
  DemuxedStream source = MustDemux(TestClip(), 'v');
  source.header.width = 8200;
  Outcome o = Run("video", ToJson(TaskFor({Rung("180p", 320, 180)})), source.Serialize(), 1);
  CHECK(o.run.exit_code == 1);
  CHECK(o.report.error_code == ErrorCode::kUnsupported);
}

TEST_CASE("a task the worker cannot carry out is an internal error, not the input's fault",
          "[worker]") {
  VideoTask task = TaskFor({Rung("180p", 320, 180)});
  task.preset = "warp9";
  Outcome o = Run("video", ToJson(task), MustDemux(TestClip(), 'v').Serialize(), 1);
  CHECK(o.run.exit_code == 2);
  CHECK(o.report.error_code == ErrorCode::kInvalidTask);
}

TEST_CASE("audio comes out as 48 kHz stereo AAC-LC as long as the input", "[worker]") {
  const DemuxedStream source = MustDemux(TestClip(), 'a');
  REQUIRE(source.header.sample_rate == 44100);
  constexpr int64_t kSourceSamples48k = 3 * kAudioSampleRate;  // the clip's tone lasts 3 s
  AudioTask task;
  task.output_fd = 3;
  task.bitrate_kbps = 128;
  task.origin_seconds = GENERATE(0.0, 0.5);
  Outcome o = Run("audio", ToJson(task), source.Serialize(), 1);

  REQUIRE(o.run.exit_code == 0);
  CHECK(o.report.ok);
  CHECK(std::llabs(static_cast<long long>(o.report.frames_output) - kSourceSamples48k) <= 1024);
  ParsedStream out = MustParse(o.run.outputs[0]);
  CHECK(out.header.kind == MediaKind::kAudio);
  CHECK(out.header.codec_id == AV_CODEC_ID_AAC);
  CHECK(out.header.profile == FF_PROFILE_AAC_LOW);
  CHECK(out.header.sample_rate == kAudioSampleRate);
  CHECK(out.header.channels == 2);
  CHECK(out.header.time_base_den == kAudioSampleRate);
  CHECK(out.header.initial_padding == 1024);
  CHECK_FALSE(out.header.extradata.empty());  // the AudioSpecificConfig
  REQUIRE(out.packets.size() > 2);
  // The source starts at 0 s: the first sample lands at -origin, the priming packet before it.
  const int64_t start = std::llround(-task.origin_seconds * kAudioSampleRate);
  CHECK(out.packets.front().pts == start - 1024);
  for (size_t i = 1; i < out.packets.size(); ++i)
    CHECK(out.packets[i].pts == out.packets[i - 1].pts + 1024);
  int64_t duration = 0;
  for (const Packet& p : out.packets) duration += p.duration;
  CHECK(std::llabs(duration - 1024 - static_cast<int64_t>(o.report.frames_output)) <= 1024);
}

TEST_CASE("audio in a codec outside the allow-list is refused as unsupported_codec", "[worker]") {
  DemuxedStream source = MustDemux(TestClip(), 'a');
  source.header.codec_id = AV_CODEC_ID_SPEEX;
  AudioTask task;
  task.output_fd = 3;
  Outcome o = Run("audio", ToJson(task), source.Serialize(), 1);
  CHECK(o.run.exit_code == 1);
  CHECK(o.report.error_code == ErrorCode::kUnsupportedCodec);
}

TEST_CASE("real corpus clips transcode frame-exactly and broken ones are refused",
          "[worker][corpus][slow]") {
  const std::optional<std::filesystem::path> corpus = test::CorpusDir();
  if (!corpus) {
    WARN("the media corpus is absent: skipping");
    return;
  }
  auto manifest = test::ReadCorpusManifest(*corpus);
  REQUIRE(manifest.ok());
  std::map<std::string, test::CorpusEntry> entries;
  for (const test::CorpusEntry& e : *manifest) entries[e.file] = e;

  const std::string file =
      GENERATE(as<std::string>{}, "vp9_bear-vp9-odd-dimensions.webm",
               "mp4_hdr10-video-with-sdr-container.mp4", "vp9_invalid-bitstream.webm");
  INFO(file);
  REQUIRE(entries.count(file) == 1);
  const test::CorpusEntry& entry = entries[file];
  const DemuxedStream source = MustDemux((*corpus / file).string(), 'v');
  const double fps =
      source.header.avg_fps_num > 0
          ? static_cast<double>(source.header.avg_fps_num) / source.header.avg_fps_den
          : 30.0;
  std::vector<RungSettings> rungs =
      PlanLadder({360}, source.header.width, source.header.height, fps);
  REQUIRE(rungs.size() == 1);
  VideoTask task = TaskFor(rungs);
  task.threads = 2;  // frame-threaded decoding reports errors late; the verdict must not change
  Outcome o = Run("video", ToJson(task), source.Serialize(), 1);
  if (!entry.transcode) {
    CHECK(o.run.exit_code == 1);
    CHECK(o.report.error_code == ErrorCode::kUndecodable);
    return;
  }
  REQUIRE(o.run.exit_code == 0);
  REQUIRE(entry.frames.has_value());
  const uint64_t frames = static_cast<uint64_t>(*entry.frames);
  CHECK(o.report.frames_output == frames);
  CheckRung(o.run.outputs[0], task.outputs[0].rung, frames);
}

}  // namespace
}  // namespace zerofarm::transcode
