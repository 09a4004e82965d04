// The HTTP API against a real `zerofarm serve` on loopback: uploads (raw, multipart, chunked,
// tus), playback (HLS through ffmpeg, MP4 ranges, ETags), tenants, limits and bad requests.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "corpus.h"
#include "run_command.h"
#include "serve_process.h"
#include "wait_for.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace zerofarm::test;
using namespace std::chrono_literals;

namespace {

const std::vector<std::string> kServeFlags = {"--chunk-seconds", "1",  "--max-upload",      "20M",
                                              "--max-header",    "8K", "--header-timeout",  "2s",
                                              "--idle-timeout",  "4s", "--max-connections", "12",
                                              "--workers",       "2",  "--request-timeout", "6s"};

// One server shared by the tests that do not restart it.
ServeProcess& Shared() { return SharedServer("api-shared", kServeFlags); }

void RequireHealthy(const ServeProcess& s) {
  auto r = Curl({}, s.url("/healthz"));
  INFO(r.error << " server log: " << s.log());
  REQUIRE(r.status == 200);
}

// POST the file raw; returns the video object.
json UploadRaw(const ServeProcess& s, const std::string& token, const fs::path& file,
               const std::string& query = "?ladder=360p&filename=clip.mp4") {
  auto args = Bearer(token);
  args.insert(args.end(), {"-H", "Content-Type: video/mp4", "--data-binary", "@" + file.string()});
  auto r = Curl(args, s.url("/v1/videos" + query));
  INFO(r.body << r.error);
  REQUIRE(r.status == 201);
  return ParseJson(r);
}

std::string Slurp(const fs::path& p) { return ReadFile(p); }

}  // namespace

TEST_CASE("an uploaded video becomes ready and plays over HLS and MP4 with exact byte ranges",
          "[integration][api][slow]") {
  ServeProcess& s = Shared();
  const fs::path clip = MakeShortClip(4);
  REQUIRE(!clip.empty());
  json v = UploadRaw(s, s.token(), clip);
  const std::string id = v["id"];
  CHECK(v["filename"] == "clip.mp4");
  CHECK((v["status"] == "processing" || v["status"] == "uploading" || v["status"] == "ready"));
  v = WaitReady(s, s.token(), id);
  CHECK(v["size"] == fs::file_size(clip));
  CHECK(v["progress"]["fraction"] == 1.0);
  REQUIRE(v["renditions"].size() >= 1);
  const std::string rung = v["renditions"][0]["name"];
  CHECK(v["playback"]["hls"].get<std::string>().rfind(s.url("/v1/play/"), 0) == 0);
  CHECK(!v["chunks"].empty());
  // Chunks are the video's segments only, counted as the progress says; the audio track is
  // apart, and a chunk carries "error" only when it failed.
  CHECK(v["progress"]["tasks_done"] == v["chunks"].size());
  for (const auto& c : v["chunks"]) {
    CHECK(c["index"].get<int>() >= 0);
    CHECK(c["state"] == "done");
    CHECK_FALSE(c.contains("error"));
  }
  CHECK(v["audio"]["state"] == "done");
  CHECK(v["progress"]["audio"] == "done");
  // The ladder names what was made (the clip is below 1080p: no 1080p).
  std::vector<std::string> made;
  for (const auto& r : v["renditions"]) made.push_back(r["name"]);
  CHECK(v["ladder"].get<std::vector<std::string>>() == made);
  const std::string base = "/v1/videos/" + id;
  const auto auth = Bearer(s.token());

  SECTION("playlists and segments carry their types, cache rules and ETags") {
    auto master = Curl(auth, s.url(base + "/hls/master.m3u8"));
    REQUIRE(master.status == 200);
    CHECK(master.header("content-type") == "application/vnd.apple.mpegurl");
    CHECK(master.header("cache-control") == "no-cache");
    CHECK(master.header("access-control-allow-origin") == "*");
    CHECK(master.body.find("#EXTM3U") == 0);
    auto media = Curl(auth, s.url(base + "/hls/" + rung + "/index.m3u8"));
    REQUIRE(media.status == 200);
    auto seg = Curl(auth, s.url(base + "/hls/" + rung + "/seg00000.ts"));
    REQUIRE(seg.status == 200);
    CHECK(seg.header("content-type") == "video/mp2t");
    CHECK(seg.header("cache-control") == "private, max-age=86400");  // fetched with the token
    CHECK(seg.body == Slurp(s.data() / "videos" / id / rung / "seg00000.ts"));
    const std::string etag = seg.header("etag");
    REQUIRE(!etag.empty());
    auto again = auth;
    again.insert(again.end(), {"-H", "If-None-Match: " + etag});
    auto not_modified = Curl(again, s.url(base + "/hls/" + rung + "/seg00000.ts"));
    CHECK(not_modified.status == 304);
    CHECK(not_modified.body.empty());
    auto thumb = Curl(auth, s.url(base + "/thumbnail.jpg"));
    CHECK(thumb.status == 200);
    CHECK(thumb.header("content-type") == "image/jpeg");
    // the token may ride in the query for <img> and download links
    auto by_query = Curl({}, s.url(base + "/thumbnail.jpg?access_token=" + s.token()));
    CHECK(by_query.status == 200);
    auto status_by_query = Curl({}, s.url(base + "?access_token=" + s.token()));
    CHECK(status_by_query.status == 401);
  }

  SECTION("ffmpeg as an HLS client decodes every frame of the stream") {
    auto r = RunCommand(
        {"ffmpeg", "-v", "error", "-headers", "Authorization: Bearer " + s.token() + "\r\n", "-i",
         s.url(base + "/hls/master.m3u8"), "-map", "0:v:0", "-f", "null", "-"},
        120s);
    INFO(r.DescribeEnd() << " " << r.err);
    CHECK(r.succeeded());
    // A player that can only be given a URL: the token rides in the query and the playlists
    // carry it on to every relative URI.
    auto by_url =
        RunCommand({"ffmpeg", "-v", "error", "-i",
                    s.url(base + "/hls/master.m3u8?access_token=" + s.token()), "-f", "null", "-"},
                   120s);
    INFO(by_url.DescribeEnd() << " " << by_url.err);
    CHECK(by_url.succeeded());
    const fs::path got = s.data().parent_path() / (id + "-played.mp4");
    auto copy = RunCommand(
        {"ffmpeg", "-v", "error", "-y", "-headers", "Authorization: Bearer " + s.token() + "\r\n",
         "-i", s.url(base + "/hls/" + rung + "/index.m3u8"), "-c", "copy", got.string()},
        120s);
    INFO(copy.err);
    REQUIRE(copy.succeeded());
    CHECK(CountFrames(got) == CountFrames(clip));
  }

  SECTION("the MP4 answers HEAD, single, suffix and multiple ranges byte-exact, and 416") {
    const std::string file = Slurp(s.data() / "videos" / id / (rung + ".mp4"));
    REQUIRE(file.size() > 1000);
    auto head = auth;
    head.push_back("-I");
    auto h = Curl(head, s.url(base + "/mp4/" + rung + ".mp4"));
    CHECK(h.status == 200);
    CHECK(h.header("content-length") == std::to_string(file.size()));
    CHECK(h.header("content-type") == "video/mp4");
    CHECK(h.header("accept-ranges") == "bytes");
    CHECK(h.body.empty());

    auto ranged = [&](const std::string& range) {
      auto a = auth;
      a.insert(a.end(), {"-H", "Range: " + range});
      return Curl(a, s.url(base + "/mp4/" + rung + ".mp4"));
    };
    auto first = ranged("bytes=0-99");
    CHECK(first.status == 206);
    CHECK(first.header("content-range") == "bytes 0-99/" + std::to_string(file.size()));
    CHECK(first.body == file.substr(0, 100));
    auto middle = ranged("bytes=500-");
    CHECK(middle.status == 206);
    CHECK(middle.body == file.substr(500));
    auto suffix = ranged("bytes=-77");
    CHECK(suffix.status == 206);
    CHECK(suffix.body == file.substr(file.size() - 77));
    auto multi = ranged("bytes=0-9,200-299");
    CHECK(multi.status == 206);
    CHECK(multi.header("content-type").find("multipart/byteranges; boundary=") == 0);
    CHECK(multi.body.find(file.substr(0, 10)) != std::string::npos);
    CHECK(multi.body.find(file.substr(200, 100)) != std::string::npos);
    CHECK(multi.body.find("Content-Range: bytes 200-299/" + std::to_string(file.size())) !=
          std::string::npos);
    auto outside = ranged("bytes=" + std::to_string(file.size() + 10) + "-");
    CHECK(outside.status == 416);
    CHECK(outside.header("content-range") == "bytes */" + std::to_string(file.size()));
    auto whole = Curl(auth, s.url(base + "/mp4/" + rung + ".mp4"));
    CHECK(whole.body == file);
    CHECK(whole.header("cache-control") == "private, max-age=86400");
  }

  SECTION("the listing shows it and /metrics counts uploads, tasks and transcode seconds") {
    auto list = ParseJson(Curl(auth, s.url("/v1/videos")));
    bool found = false;
    for (const auto& x : list["videos"]) found |= x["id"] == id && !x.contains("chunks");
    CHECK(found);
    auto m = Curl({}, s.url("/metrics"));
    REQUIRE(m.status == 200);
    CHECK(m.header("content-type").find("text/plain") == 0);
    for (const char* name :
         {"zerofarm_uploads_total ", "zerofarm_upload_bytes_total ",
          "zerofarm_http_bytes_out_total ", "zerofarm_tasks{state=\"done\"} ",
          "zerofarm_transcode_seconds_bucket{le=\"+Inf\"} ", "zerofarm_transcode_seconds_count ",
          "zerofarm_queue_depth ", "zerofarm_sandbox_refusals_total "})
      CHECK(m.body.find(name) != std::string::npos);
    CHECK(m.body.find("zerofarm_transcode_seconds_count 0\n") == std::string::npos);
  }
  RequireHealthy(s);
}

TEST_CASE("multipart and chunked uploads stream in whole", "[integration][api][slow]") {
  ServeProcess& s = Shared();
  const fs::path clip = MakeShortClip(4);
  const auto auth = Bearer(s.token());
  std::vector<std::string> ids;

  auto multipart = auth;
  multipart.insert(multipart.end(), {"-F", "note=hello", "-F",
                                     "file=@" + clip.string() + ";filename=from-form.mp4"});
  auto m = Curl(multipart, s.url("/v1/videos?ladder=360p"));
  INFO(m.body << m.error);
  REQUIRE(m.status == 201);
  json mv = ParseJson(m);
  CHECK(mv["filename"] == "from-form.mp4");
  CHECK(mv["bytes_received"] == fs::file_size(clip));
  ids.push_back(mv["id"]);

  auto chunked = auth;
  chunked.insert(chunked.end(),
                 {"-H", "Transfer-Encoding: chunked", "-H",
                  "Content-Type: application/octet-stream", "--data-binary", "@" + clip.string()});
  auto c = Curl(chunked, s.url("/v1/videos?ladder=360p&filename=chunked.mp4"));
  INFO(c.body << c.error);
  REQUIRE(c.status == 201);
  json cv = ParseJson(c);
  CHECK(cv["bytes_received"] == fs::file_size(clip));
  ids.push_back(cv["id"]);

  // The multipart one finishes as a normal video; the other is deleted while it works.
  json ready = WaitReady(s, s.token(), ids[0]);
  CHECK(ready["size"] == fs::file_size(clip));
  auto del = auth;
  del.insert(del.end(), {"-X", "DELETE"});
  CHECK(Curl(del, s.url("/v1/videos/" + ids[1])).status == 204);
  CHECK(Curl(auth, s.url("/v1/videos/" + ids[1])).status == 404);
  CHECK(Curl(del, s.url("/v1/videos/" + ids[0])).status == 204);
  RequireHealthy(s);
}

TEST_CASE("a tus upload cut mid-PATCH resumes at the offset HEAD reports and transcodes early",
          "[integration][api][tus][slow]") {
  ServeProcess& s = Shared();
  const fs::path clip = MakeShortClip(8);
  const std::string bytes = ReadFile(clip);
  const auto auth = Bearer(s.token());

  auto options = auth;
  options.insert(options.end(), {"-X", "OPTIONS"});
  auto o = Curl(options, s.url("/v1/uploads"));
  CHECK(o.status == 204);
  CHECK(o.header("tus-version") == "1.0.0");
  CHECK(o.header("tus-extension") == "creation,termination,expiration");

  auto create = auth;
  create.insert(create.end(),
                {"-X", "POST", "-H", "Tus-Resumable: 1.0.0", "-H",
                 "Upload-Length: " + std::to_string(bytes.size()), "-H",
                 "Upload-Metadata: filename dHVzLm1wNA==,ladder MzYwcA=="});  // tus.mp4, 360p
  auto created = Curl(create, s.url("/v1/uploads"));
  INFO(created.body);
  REQUIRE(created.status == 201);
  const std::string location = created.header("location");
  const std::string id = created.header("zerofarm-video-id");
  REQUIRE(location.find("/v1/uploads/u_") == 0);
  CHECK(created.header("tus-resumable") == "1.0.0");
  CHECK(ParseJson(created)["filename"] == "tus.mp4");

  // A PATCH that announces every byte but sends 70% and drops the connection.
  const size_t cut = bytes.size() * 7 / 10;
  std::string patch = "PATCH " + location + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                      s.token() +
                      "\r\nTus-Resumable: 1.0.0\r\nContent-Type: "
                      "application/offset+octet-stream\r\nUpload-Offset: 0\r\nContent-Length: " +
                      std::to_string(bytes.size()) + "\r\n\r\n" + bytes.substr(0, cut);
  auto dropped = RawRequest(s.port(), patch, 0ms, /*close_after_send=*/true);
  REQUIRE(dropped.connected);

  auto head = auth;
  head.insert(head.end(), {"-I", "-H", "Tus-Resumable: 1.0.0"});
  std::string offset;
  for (int i = 0; i < 100 && offset != std::to_string(cut); ++i) {
    std::this_thread::sleep_for(100ms);
    auto h = Curl(head, s.url(location));
    REQUIRE(h.status == 200);
    offset = h.header("upload-offset");
    CHECK(h.header("upload-length") == std::to_string(bytes.size()));
    CHECK(h.header("cache-control") == "no-store");
  }
  REQUIRE(offset == std::to_string(cut));

  // Streaming ingest: tasks run while the upload is still incomplete.
  bool early = false;
  for (int i = 0; i < 300 && !early; ++i) {
    json v = ParseJson(Curl(auth, s.url("/v1/videos/" + id)));
    REQUIRE(v["status"] == "uploading");
    for (const auto& c : v["chunks"]) early |= c["state"] == "running" || c["state"] == "done";
    if (!early) std::this_thread::sleep_for(200ms);
  }
  CHECK(early);

  // A PATCH at a stale offset is refused; the right one completes the upload.
  auto stale = auth;
  stale.insert(stale.end(), {"-X", "PATCH", "-H", "Tus-Resumable: 1.0.0", "-H",
                             "Content-Type: application/offset+octet-stream", "-H",
                             "Upload-Offset: 0", "--data-binary", "x"});
  CHECK(Curl(stale, s.url(location)).status == 409);
  const fs::path rest = s.data().parent_path() / "rest.bin";
  {
    std::ofstream out(rest, std::ios::binary);
    out << bytes.substr(cut);
  }
  auto resume = auth;
  resume.insert(resume.end(),
                {"-X", "PATCH", "-H", "Tus-Resumable: 1.0.0", "-H",
                 "Content-Type: application/offset+octet-stream", "-H",
                 "Upload-Offset: " + std::to_string(cut), "--data-binary", "@" + rest.string()});
  auto done = Curl(resume, s.url(location));
  INFO(done.body);
  CHECK(done.status == 204);
  CHECK(done.header("upload-offset") == std::to_string(bytes.size()));

  json v = WaitReady(s, s.token(), id);
  const std::string rung = v["renditions"][0]["name"];
  CHECK(CountFrames(s.data() / "videos" / id / (rung + ".mp4")) == CountFrames(clip));

  auto terminate = auth;
  terminate.insert(terminate.end(), {"-X", "DELETE", "-H", "Tus-Resumable: 1.0.0"});
  CHECK(Curl(terminate, s.url(location)).status == 204);
  CHECK(Curl(auth, s.url("/v1/videos/" + id)).status == 404);
  RequireHealthy(s);
}

TEST_CASE("bad requests get clean errors and the server stays healthy",
          "[integration][api][slow]") {
  ServeProcess& s = Shared();
  const auto auth = Bearer(s.token());
  const std::string vid = "v_0123456789abcdef";

  SECTION("auth: a missing or wrong token is 401, an unknown id 404") {
    CHECK(Curl({}, s.url("/v1/videos")).status == 401);
    CHECK(Curl(Bearer("zf_nope"), s.url("/v1/videos")).status == 401);
    auto r = Curl(auth, s.url("/v1/videos/" + vid));
    CHECK(r.status == 404);
    CHECK(ParseJson(r)["error"]["code"] == "not_found");
    CHECK(Curl(auth, s.url("/v1/videos/not-an-id")).status == 404);
    CHECK(Curl(auth, s.url("/v1/videos/" + vid + "/hls/master.m3u8")).status == 404);
  }
  SECTION("routes: unknown is 404 route_not_found, wrong method 405 with Allow") {
    auto r = Curl(auth, s.url("/v1/nothing"));
    CHECK(r.status == 404);
    CHECK(ParseJson(r)["error"]["code"] == "route_not_found");
    auto put = auth;
    put.insert(put.end(), {"-X", "PUT"});
    auto m = Curl(put, s.url("/v1/videos"));
    CHECK(m.status == 405);
    CHECK(m.header("allow").find("POST") != std::string::npos);
  }
  SECTION("CORS preflight answers any origin") {
    auto r = Curl({"-X", "OPTIONS", "-H", "Origin: http://player.example", "-H",
                   "Access-Control-Request-Method: GET"},
                  s.url("/v1/videos/" + vid + "/hls/master.m3u8"));
    CHECK(r.status == 204);
    CHECK(r.header("access-control-allow-origin") == "*");
    CHECK(r.header("access-control-allow-headers").find("Authorization") != std::string::npos);
  }
  SECTION("a garbage body is answered as a failed video with a reason") {
    const fs::path junk = s.data().parent_path() / "junk.mp4";
    {
      std::ofstream out(junk, std::ios::binary);
      for (int i = 0; i < 200000; ++i) out.put(static_cast<char>((i * 7919) % 251));
    }
    json v = UploadRaw(s, s.token(), junk);
    // The answer to the upload itself says so, as openapi.yaml promises.
    CHECK(v["status"] == "failed");
    CHECK(v.contains("error"));
    std::string body = WaitForStatus(s, s.token(), v["id"], {"failed", "ready"}, 60s);
    json f = json::parse(body);
    CHECK(f["status"] == "failed");
    CHECK(!f["error"]["code"].get<std::string>().empty());
    CHECK(!f["error"]["message"].get<std::string>().empty());
    auto m = Curl({}, s.url("/metrics"));
    CHECK(m.body.find("zerofarm_video_failures_total{reason=\"" +
                      f["error"]["code"].get<std::string>() + "\"}") != std::string::npos);
  }
  SECTION("a one-shot upload whose connection drops fails with upload_incomplete") {
    const std::string head =
        "POST /v1/videos?filename=cut.mp4 HTTP/1.1\r\nHost: x\r\n"
        "Authorization: Bearer " +
        s.token() + "\r\nContent-Length: 100000\r\n\r\n";
    REQUIRE(RawRequest(s.port(), head + std::string(50000, 'x'), 0ms, true).connected);
    std::string id, list;
    for (int i = 0; i < 50 && id.empty(); ++i) {
      std::this_thread::sleep_for(100ms);
      auto r = Curl(auth, s.url("/v1/videos"));
      list = r.body;
      const json listed = ParseJson(r);
      for (const auto& v : listed["videos"])
        if (v["filename"] == "cut.mp4") id = v["id"].get<std::string>();
    }
    INFO(list << "\nserver log: " << s.log());
    REQUIRE(!id.empty());
    json v = json::parse(WaitForStatus(s, s.token(), id, {"failed"}, 30s));
    CHECK(v["status"] == "failed");
    CHECK(v["error"]["code"] == "upload_incomplete");
  }
  SECTION("an upload above --max-upload is 413, with or without a length") {
    const fs::path big = s.data().parent_path() / "big.bin";
    {
      std::ofstream out(big, std::ios::binary);
      std::string block(1 << 20, 'z');
      for (int i = 0; i < 21; ++i) out << block;
    }
    auto a = auth;
    a.insert(a.end(), {"--data-binary", "@" + big.string()});
    CHECK(Curl(a, s.url("/v1/videos")).status == 413);
    a.insert(a.end(), {"-H", "Transfer-Encoding: chunked"});
    CHECK(Curl(a, s.url("/v1/videos")).status == 413);
  }
  SECTION("a client that sends its whole over-limit body before reading still gets the 413") {
    // A client busy writing must not be reset before it reads the answer (lingering close):
    // 30 MiB against a 20 MiB limit, refused on its declared length before a byte is read.
    const size_t length = size_t{30} << 20;
    std::string request = "POST /v1/videos HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                          s.token() + "\r\nContent-Length: " + std::to_string(length) + "\r\n\r\n";
    request.append(length, 'z');
    RawResult r = RawRequest(s.port(), request, 20s);
    CHECK(r.sent == request.size());
    CHECK(r.status() == 413);
  }
  SECTION("path traversal, raw or %-encoded, is refused and never reads outside") {
    for (const std::string& path : std::vector<std::string>{
             "/v1/videos/" + vid + "/hls/../../../../../etc/passwd",
             "/v1/videos/" + vid + "/hls/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
             "/%2e%2e/%2e%2e/etc/passwd", "/..%2f..%2f..%2fetc%2fpasswd",
             "/v1/videos/%2e%2e%2f%2e%2e%2fstore/hls/x/y.ts", "/index.html/../../../etc/passwd"}) {
      auto r = RawRequest(s.port(),
                          "GET " + path + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
                              s.token() + "\r\nConnection: close\r\n\r\n",
                          5s);
      INFO(path << " -> " << r.response.substr(0, 200));
      CHECK((r.status() == 400 || r.status() == 404));
      CHECK(r.response.find("root:") == std::string::npos);
    }
  }
  SECTION("malformed and oversized heads are 400 and 431") {
    auto bad = RawRequest(s.port(), "GET / HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n", 5s);
    CHECK(bad.status() == 400);
    auto garbage = RawRequest(s.port(), "\x01\x02 nonsense\r\n\r\n", 5s);
    CHECK(garbage.status() == 400);
    auto huge = RawRequest(
        s.port(),
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(16000, 'a') + "\r\n\r\n", 5s);
    CHECK(huge.status() == 431);
  }
  SECTION("a client too slow with its head gets 408 or is closed") {
    auto slow = RawRequest(s.port(), "GET /healthz HTTP/1.1\r\nHost: x\r\n", 6s);
    CHECK(slow.closed_by_server);
    CHECK(slow.status() == 408);
  }
  SECTION("a body trickled slower than --request-timeout allows gets 408") {
    const std::string head =
        "POST /v1/videos?filename=slow.mp4 HTTP/1.1\r\nHost: x\r\n"
        "Authorization: Bearer " +
        s.token() + "\r\nContent-Length: 1000\r\n\r\n";
    auto r = RawTrickle(s.port(), head, 500ms, 15s);  // never idle for 4 s, but too slow
    INFO(r.connected << " " << r.closed_by_server << " " << r.response);
    CHECK(r.status() == 408);
  }
  SECTION("a body that stops arriving gets 408 after --idle-timeout") {
    const std::string head =
        "POST /v1/videos?filename=stalled.mp4 HTTP/1.1\r\nHost: x\r\n"
        "Authorization: Bearer " +
        s.token() + "\r\nContent-Length: 100000\r\n\r\n" + std::string(5000, 'x');
    const auto start = std::chrono::steady_clock::now();
    auto r = RawRequest(s.port(), head, 12s);
    INFO(r.response);
    CHECK(r.status() == 408);
    CHECK(r.response.find("no body bytes arrived") != std::string::npos);
    CHECK(std::chrono::steady_clock::now() - start >= 3500ms);  // not before the idle timeout
  }
  SECTION("a request sent right behind a body on the same connection is answered in turn") {
    const std::string put =
        "PUT /v1/objects/pipelined/hello.txt HTTP/1.1\r\nHost: x\r\n"
        "Authorization: Bearer " +
        s.token() + "\r\nContent-Length: 5\r\n\r\nhello";
    const std::string get =
        "GET /v1/objects/pipelined/hello.txt HTTP/1.1\r\nHost: x\r\n"
        "Authorization: Bearer " +
        s.token() + "\r\nConnection: close\r\n\r\n";
    auto r = RawRequest(s.port(), put + get, 10s);
    INFO(r.response);
    CHECK(r.status() == 201);
    const size_t second = r.response.find("HTTP/1.1 200");
    REQUIRE(second != std::string::npos);
    CHECK(r.response.substr(r.response.size() - 5) == "hello");
  }
  SECTION("connections beyond --max-connections get 503") {
    // Twelve clients each hold a slot with half a head until the thirteenth has its answer
    // (the accept queue is first in, first out, so the thirteenth is accepted last).
    std::vector<HeldConnection> idle;
    for (int i = 0; i < 12; ++i) {
      idle.emplace_back(s.port(), "GET /healthz HTTP/1.1\r\n");
      REQUIRE(idle.back().connected());
    }
    REQUIRE(WaitFor([&] { return EstablishedConnections(s.port()) >= 12; }, 10s));
    auto over = RawRequest(s.port(), "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 3s);
    CHECK(over.status() == 503);
    idle.clear();
  }
  RequireHealthy(s);
}
