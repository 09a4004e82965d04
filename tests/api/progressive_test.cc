// Progressive publication: a video plays while the farm still transcodes it. Its media playlists
// are EVENT playlists that only grow, a player (ffmpeg) reads them to the end, and what was
// published survives kill -9 of the server byte for byte.
#include <atomic>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "clip_factory.h"
#include "hls_playlist.h"
#include "run_command.h"
#include "scratch_dir.h"
#include "serve_process.h"
#include "wait_for.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace zerofarm;
using namespace zerofarm::test;
using namespace std::chrono_literals;

namespace {

// One worker and a 720p source with three rungs: the job runs long enough to be watched while
// it is processing, even on a fast machine.
const std::vector<std::string> kFlags = {"--workers", "1"};

fs::path LongerClip() {
  auto clip = MakeCachedClip(
      "progressive.mp4", {"-f",        "lavfi",     "-i",   "testsrc2=size=1280x720:rate=25",
                          "-f",        "lavfi",     "-i",   "sine=frequency=440:sample_rate=48000",
                          "-t",        "24",        "-c:v", "libx264",
                          "-preset",   "ultrafast", "-g",   "50",
                          "-pix_fmt",  "yuv420p",   "-c:a", "aac",
                          "-movflags", "+faststart"});
  REQUIRE(clip.ok());
  return *clip;
}

std::string UploadClip(const ServeProcess& s, const fs::path& clip) {
  auto args = Bearer(s.token());
  args.insert(args.end(), {"--data-binary", "@" + clip.string()});
  auto r = Curl(args, s.url("/v1/videos?filename=progressive.mp4"));
  INFO(r.body << r.error);
  REQUIRE(r.status == 201);
  return ParseJson(r)["id"];
}

json GetVideo(const ServeProcess& s, const std::string& id) {
  return ParseJson(Curl(Bearer(s.token()), s.url("/v1/videos/" + id)));
}

// Polls until the video is playable or no longer processing; the last video object.
json WaitPlayable(const ServeProcess& s, const std::string& id) {
  json v;
  const auto deadline = std::chrono::steady_clock::now() + 180s;
  while (std::chrono::steady_clock::now() < deadline) {
    v = GetVideo(s, id);
    if (v.value("playable", false) || v.value("status", "") != "processing") break;
    std::this_thread::sleep_for(50ms);
  }
  return v;
}

// The segment files a media playlist lists, in order (tests/support's strict reader).
std::vector<std::string> Listed(const std::string& playlist) {
  auto listed = ListedSegments(playlist);
  INFO(playlist);
  REQUIRE(listed.ok());
  return *listed;
}

// The playlist's "#EXT-X-TARGETDURATION:N" line ("" without one).
std::string TargetDurationLine(const std::string& playlist) {
  const size_t at = playlist.find("#EXT-X-TARGETDURATION:");
  if (at == std::string::npos) return "";
  return playlist.substr(at, playlist.find('\n', at) - at);
}

std::string ReadWholeFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string Fetch(const ServeProcess& s, const std::string& path) {
  auto r = Curl(Bearer(s.token()), s.url(path));
  INFO(path << " -> " << r.status << " " << r.error);
  REQUIRE(r.status == 200);
  return r.body;
}

}  // namespace

TEST_CASE("a video plays while it is still processing and its EVENT playlists only grow",
          "[integration][api][progressive][slow]") {
  auto dir = ScratchDir::Create("api-progressive");
  REQUIRE(dir.ok());
  ServeProcess s(dir->path() / "data", kFlags);
  std::string err = s.Start();
  INFO(err);
  REQUIRE(err.empty());
  const fs::path clip = LongerClip();
  const std::string id = UploadClip(s, clip);

  json v = WaitPlayable(s, id);
  INFO(v.dump() << s.log());
  REQUIRE(v["status"] == "processing");
  REQUIRE(v["playable"] == true);
  CHECK(v["playable_seconds"].get<double>() > 0);
  REQUIRE(v["playback"]["hls"].is_string());
  const std::string base = "/v1/videos/" + id + "/hls/";
  const std::string master = Fetch(s, base + "master.m3u8");
  CHECK_THAT(master, Catch::Contains("720p/index.m3u8"));
  CHECK_THAT(master, Catch::Contains("audio/index.m3u8"));

  // While processing: EVENT playlists without an end, every listed segment served.
  const std::string first = Fetch(s, base + "720p/index.m3u8");
  CHECK_THAT(first, Catch::Contains("#EXT-X-PLAYLIST-TYPE:EVENT"));
  CHECK_THAT(first, !Catch::Contains("#EXT-X-ENDLIST"));
  const auto listed_first = Listed(first);
  REQUIRE(!listed_first.empty());
  for (const char* rung : {"720p", "480p", "360p", "audio"})
    CHECK(Curl(Bearer(s.token()), s.url(base + rung + "/" + listed_first[0])).status == 200);

  // A player that starts now reads the growing playlist to its end (ffmpeg reloads an EVENT
  // playlist until EXT-X-ENDLIST appears).
  // The player gets its own copies: this thread goes on replacing `v` while it plays.
  const fs::path played = dir->path() / "played.ts";
  auto player =
      std::async(std::launch::async, [played, url = v["playback"]["hls"].get<std::string>()] {
        return RunCommand({"ffmpeg", "-nostdin", "-v", "error", "-live_start_index", "0", "-i", url,
                           "-map", "0:v:0", "-c", "copy", "-f", "mpegts", "-y", played.string()},
                          300s);
      });

  // Each reload lists what the one before did, and more, until the video is ready; the target
  // duration never changes (RFC 8216 6.2.1), from the first EVENT reload to the VOD playlist.
  const std::string target_line = TargetDurationLine(first);
  REQUIRE(!target_line.empty());
  std::vector<std::string> before = listed_first;
  bool grew = false;
  std::string body;
  for (;;) {
    v = GetVideo(s, id);
    body = Fetch(s, base + "720p/index.m3u8");
    auto now = Listed(body);
    CHECK(TargetDurationLine(body) == target_line);
    REQUIRE(now.size() >= before.size());
    CHECK(std::equal(before.begin(), before.end(), now.begin()));
    grew = grew || now.size() > before.size();
    before = now;
    if (v["status"] != "processing") break;
    std::this_thread::sleep_for(200ms);
  }
  REQUIRE(v["status"] == "ready");
  CHECK(grew);
  body = Fetch(s, base + "720p/index.m3u8");
  CHECK_THAT(body, Catch::Contains("#EXT-X-PLAYLIST-TYPE:VOD"));
  CHECK_THAT(body, Catch::Contains("#EXT-X-ENDLIST"));
  CHECK(TargetDurationLine(body) == target_line);
  CHECK(v["playable_seconds"].get<double>() == Approx(24.0).margin(0.1));

  auto played_result = player.get();
  INFO(played_result.err);
  REQUIRE(played_result.exit_code == 0);
  CHECK(CountFrames(played) == CountFrames(clip));
  CHECK(s.Stop() == 0);
}

TEST_CASE("every segment published before a kill -9 is still listed, byte for byte, after restart",
          "[integration][api][progressive][slow]") {
  auto dir = ScratchDir::Create("api-progressive-kill");
  REQUIRE(dir.ok());
  ServeProcess s(dir->path() / "data", kFlags);
  std::string err = s.Start();
  INFO(err);
  REQUIRE(err.empty());
  const std::string token = s.token();
  const std::string id = UploadClip(s, LongerClip());

  json v = WaitPlayable(s, id);
  INFO(v.dump() << s.log());
  REQUIRE(v["status"] == "processing");
  REQUIRE(v["playable"] == true);
  const std::string base = "/v1/videos/" + id + "/hls/";
  std::map<std::string, std::string> published;  // "rung/segment" -> bytes
  for (const char* rung : {"720p", "360p", "audio"})
    for (const auto& seg : Listed(Fetch(s, base + rung + "/index.m3u8")))
      published[std::string(rung) + "/" + seg] = Fetch(s, base + rung + "/" + seg);
  REQUIRE(!published.empty());

  s.Kill9();
  err = s.Start();
  REQUIRE(err.empty());
  // Still listed and the same bytes, right after the restart and once the video is ready.
  for (int round = 0; round < 2; ++round) {
    std::map<std::string, std::vector<std::string>> listed;
    for (const char* rung : {"720p", "360p", "audio"})
      listed[rung] = Listed(Fetch(s, base + rung + "/index.m3u8"));
    for (const auto& [name, bytes] : published) {
      const std::string rung = name.substr(0, name.find('/'));
      const std::string seg = name.substr(name.find('/') + 1);
      INFO(name << " round " << round);
      CHECK(std::find(listed[rung].begin(), listed[rung].end(), seg) != listed[rung].end());
      CHECK(Fetch(s, base + name) == bytes);
    }
    if (round == 0) {
      const std::string body = WaitForStatus(s, token, id, {"ready", "failed"}, 240s);
      INFO(body);
      REQUIRE(json::parse(body)["status"] == "ready");
    }
  }
  CHECK(s.Stop() == 0);
}

TEST_CASE("a source still uploading, slower than real time, is playable before its last byte",
          "[integration][api][progressive][slow]") {
  auto dir = ScratchDir::Create("api-progressive-trickle");
  REQUIRE(dir.ok());
  ServeProcess s(dir->path() / "data", {"--chunk-seconds", "2"});
  std::string err = s.Start();
  INFO(err);
  REQUIRE(err.empty());
  // MPEG-TS is read front to back: its head can be transcoded before the rest has arrived.
  auto made = MakeCachedClip(
      "trickle.ts", {"-f",       "lavfi",     "-i",   "testsrc2=size=640x360:rate=25",
                     "-f",       "lavfi",     "-i",   "sine=frequency=440:sample_rate=48000",
                     "-t",       "16",        "-c:v", "libx264",
                     "-preset",  "ultrafast", "-g",   "25",
                     "-pix_fmt", "yuv420p",   "-c:a", "aac"});
  REQUIRE(made.ok());
  const std::string bytes = ReadWholeFile(*made);
  REQUIRE(bytes.size() > 64 * 1024);

  // A raw chunked POST whose body takes twice the clip's length to arrive.
  UploadStream up(s.port(),
                  "POST /v1/videos?filename=trickle.ts HTTP/1.1\r\nHost: x\r\n"
                  "Authorization: Bearer " +
                      s.token() + "\r\nTransfer-Encoding: chunked\r\n\r\n");
  REQUIRE(up.connected());
  const size_t pieces = 64;
  const auto pace = std::chrono::milliseconds(32000 / pieces);
  std::atomic<bool> sent_all{false};
  std::thread sender([&] {
    for (size_t i = 0; i < pieces; ++i) {
      const size_t from = bytes.size() * i / pieces, to = bytes.size() * (i + 1) / pieces;
      if (!up.SendChunk(std::string_view(bytes).substr(from, to - from))) return;
      std::this_thread::sleep_for(pace);
    }
    sent_all = true;
    up.SendChunk("");  // the last chunk
  });

  // The video appears in the list as soon as its upload begins.
  std::string id;
  REQUIRE(WaitFor(
      [&] {
        auto list = ParseJson(Curl(Bearer(s.token()), s.url("/v1/videos?limit=1")));
        if (!list["videos"].empty()) id = list["videos"][0]["id"];
        return !id.empty();
      },
      30s));
  json v;
  auto playable = WaitFor(
      [&] {
        v = GetVideo(s, id);
        if (v.value("playable", false) || v.value("status", "") == "failed") return true;
        std::this_thread::sleep_for(100ms);
        return false;
      },
      120s);
  const bool before_last_byte = !sent_all.load();
  sender.join();
  INFO(v.dump() << s.log());
  REQUIRE(playable.has_value());
  REQUIRE(v["playable"] == true);
  CHECK(before_last_byte);
  CHECK(Curl(Bearer(s.token()), s.url("/v1/videos/" + id + "/hls/master.m3u8")).status == 200);
  CHECK(up.Response().find(" 201 ") != std::string::npos);
  const std::string body = WaitForStatus(s, s.token(), id, {"ready", "failed"}, 240s);
  INFO(body);
  CHECK(json::parse(body)["status"] == "ready");
  CHECK(s.Stop() == 0);
}
