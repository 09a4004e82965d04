// The HTTP API against hostile and clumsy clients, on a real `zerofarm serve` over loopback:
// request smuggling through Transfer-Encoding, invalid UTF-8 in ids, options and metadata,
// tus uploads that are never finished, and the durability of bytes inside a PATCH.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "corpus.h"
#include "run_command.h"
#include "serve_process.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace zerofarm::test;
using namespace std::chrono_literals;

namespace {

const std::vector<std::string> kFlags = {"--chunk-seconds", "1",  "--max-upload",      "20M",
                                         "--workers",       "1",  "--header-timeout",  "3s",
                                         "--idle-timeout",  "4s", "--max-connections", "32"};

// One server for the tests that do not restart theirs.
ServeProcess& Shared() { return SharedServer("api-hardening", kFlags); }

// How many HTTP responses a raw exchange holds (status lines at the start or after a body).
size_t CountResponses(const std::string& raw) {
  size_t n = 0;
  for (size_t at = raw.find("HTTP/1."); at != std::string::npos; at = raw.find("HTTP/1.", at + 1))
    if (at == 0 || raw[at - 1] == '\n' || raw[at - 1] == '}') ++n;
  return n;
}

size_t CountEntries(const fs::path& dir) {
  size_t n = 0;
  std::error_code ec;
  for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator();
       it.increment(ec))
    ++n;
  return n;
}
size_t OpenFds(const ServeProcess& s) {
  return CountEntries("/proc/" + std::to_string(s.pid()) + "/fd");
}
size_t Threads(const ServeProcess& s) {
  return CountEntries("/proc/" + std::to_string(s.pid()) + "/task");
}

// A raw tus request on its own connection; the response text.
RawResult Tus(const ServeProcess& s, const std::string& token, const std::string& method,
              const std::string& path, const std::string& headers, const std::string& body = "") {
  return RawRequest(s.port(),
                    method + " " + path + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token +
                        "\r\nTus-Resumable: 1.0.0\r\nConnection: close\r\n" + headers +
                        "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body,
                    10s);
}
std::string HeaderOf(const std::string& response, const std::string& name) {
  std::string lower = response.substr(0, response.find("\r\n\r\n"));
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  size_t at = lower.find("\r\n" + name + ": ");
  if (at == std::string::npos) return "";
  at += name.size() + 4;
  return response.substr(at, response.find("\r\n", at) - at);
}
// Creates a tus upload of `length` bytes; its path (/v1/uploads/u_...), empty on failure.
std::string CreateUpload(const ServeProcess& s, const std::string& token, uint64_t length,
                         int* status = nullptr) {
  auto r =
      Tus(s, token, "POST", "/v1/uploads", "Upload-Length: " + std::to_string(length) + "\r\n");
  if (status) *status = r.status();
  return r.status() == 201 ? HeaderOf(r.response, "location") : "";
}

std::vector<std::string> UploadFiles(const ServeProcess& s) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(s.data() / "uploads", ec))
    out.push_back(e.path().filename().string());
  return out;
}

}  // namespace

TEST_CASE("a Transfer-Encoding that is not chunked alone is refused and the connection closes",
          "[integration][api][security][slow]") {
  ServeProcess& s = Shared();
  const std::string auth = "Authorization: Bearer " + s.token() + "\r\n";
  // A second request hidden in the body: a server that misreads the framing answers it too.
  const std::string smuggled = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
  struct Case {
    std::string name;
    std::string framing;  // header lines
    std::string body;
    int status;
  };
  const std::vector<Case> cases = {
      {"chunked, identity", "Transfer-Encoding: chunked, identity\r\n", smuggled, 400},
      {"chunked,chunked", "Transfer-Encoding: chunked,chunked\r\n", "0\r\n\r\n" + smuggled, 400},
      {"two chunked fields", "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
       "0\r\n\r\n" + smuggled, 400},
      {"xchunked with Content-Length",
       "Transfer-Encoding: xchunked\r\nContent-Length: " + std::to_string(smuggled.size()) + "\r\n",
       smuggled, 400},
      {"Content-Length then xchunked", "Content-Length: 5\r\nTransfer-Encoding: xchunked\r\n",
       "0\r\n\r\n" + smuggled, 400},
      {"gzip, chunked", "Transfer-Encoding: gzip, chunked\r\n", "0\r\n\r\n" + smuggled, 501},
      {"gzip then chunked fields", "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
       "0\r\n\r\n" + smuggled, 501},
      {"an unknown coding", "Transfer-Encoding: foo, chunked\r\n", "0\r\n\r\n" + smuggled, 501},
      {"chunked in HTTP/1.0", "Transfer-Encoding: chunked\r\n", "0\r\n\r\n" + smuggled, 400},
  };
  for (const auto& c : cases) {
    const std::string version = c.name == "chunked in HTTP/1.0" ? "HTTP/1.0" : "HTTP/1.1";
    const std::string request = "POST /v1/videos?filename=smuggle.mp4 " + version +
                                "\r\nHost: x\r\n" + auth + c.framing + "\r\n" + c.body;
    auto r = RawRequest(s.port(), request, 5s);
    INFO(c.name << " -> " << r.response);
    CHECK(r.status() == c.status);
    CHECK(CountResponses(r.response) == 1);
    CHECK(r.response.find("\"status\":\"ok\"") == std::string::npos);
    CHECK(r.closed_by_server);
  }
  // Nothing was created by any of them.
  auto list = Curl({"-H", "Authorization: Bearer " + s.token()}, s.url("/v1/videos"));
  REQUIRE(list.status == 200);
  CHECK(list.body.find("smuggle.mp4") == std::string::npos);
  // A plain chunked body is still taken, and the request after it on the same connection is
  // answered as the second request it is.
  const std::string ok = "POST /v1/videos?filename=fine.mp4 HTTP/1.1\r\nHost: x\r\n" + auth +
                         "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n" +
                         "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  auto fine = RawRequest(s.port(), ok, 5s);
  INFO(fine.response);
  CHECK(fine.status() == 201);
  CHECK(CountResponses(fine.response) == 2);
}

TEST_CASE(
    "invalid UTF-8 in an id or option or filename or tus metadata is a 400 that creates nothing",
    "[integration][api][security][slow]") {
  auto dir = ScratchDir::Create("api-utf8");
  REQUIRE(dir.ok());
  ServeProcess s(dir->path() / "data", kFlags);
  REQUIRE(s.Start().empty());
  const auto auth = Bearer(s.token());
  const std::string bearer = "Authorization: Bearer " + s.token() + "\r\n";

  auto expect_400 = [&](const std::string& what, const HttpResult& r) {
    INFO(what << " -> " << r.status << " " << r.body << r.error);
    CHECK(r.status == 400);
    auto j = json::parse(r.body, nullptr, false);
    CHECK((!j.is_discarded() && j.contains("error")));
  };
  for (const std::string method : {"GET", "DELETE"}) {
    auto a = auth;
    a.insert(a.end(), {"-X", method});
    expect_400(method + " video", Curl(a, s.url("/v1/videos/v_%FF")));
    expect_400(method + " video", Curl(a, s.url("/v1/videos/%FF%FE/thumbnail.jpg")));
    a.insert(a.end(), {"-H", "Tus-Resumable: 1.0.0"});
    expect_400(method + " upload", Curl(a, s.url("/v1/uploads/u_%C0%AF")));
  }
  auto head = auth;
  head.insert(head.end(), {"-I", "-H", "Tus-Resumable: 1.0.0"});
  CHECK(Curl(head, s.url("/v1/uploads/%ED%A0%80")).status == 400);  // a UTF-16 surrogate

  for (const std::string query : {"?filename=%FF.mp4", "?ladder=360p%FF", "?preset=fast%80",
                                  "?filename=%F0%9F%8E", "?note=%FF"}) {
    auto a = auth;
    a.insert(a.end(), {"--data-binary", "not really a video"});
    expect_400("POST " + query, Curl(a, s.url("/v1/videos" + query)));
  }

  // A multipart part whose filename is not UTF-8, sent as raw bytes.
  const std::string body =
      "--b0undary\r\nContent-Disposition: form-data; name=\"file\"; filename=\"\xff\xfe.mp4\"\r\n"
      "Content-Type: video/mp4\r\n\r\nsome bytes\r\n--b0undary--\r\n";
  auto multipart = RawRequest(s.port(),
                              "POST /v1/videos HTTP/1.1\r\nHost: x\r\n" + bearer +
                                  "Content-Type: multipart/form-data; boundary=b0undary\r\n"
                                  "Content-Length: " +
                                  std::to_string(body.size()) + "\r\n\r\n" + body,
                              5s);
  INFO(multipart.response);
  CHECK(multipart.status() == 400);

  // tus: a metadata value that decodes to invalid UTF-8, or that is not base64 at all.
  for (const std::string meta : {"filename /w==", "filename !!!!", "ladder MzYwcP8=",
                                 "preset ZmFzdIA=", "filename dHVzLm1wNA==,filename eA=="}) {
    auto a = auth;
    a.insert(a.end(), {"-X", "POST", "-H", "Tus-Resumable: 1.0.0", "-H", "Upload-Length: 100", "-H",
                       "Upload-Metadata: " + meta});
    expect_400("Upload-Metadata: " + meta, Curl(a, s.url("/v1/uploads")));
  }

  // Nothing was created: no video, no upload file.
  auto list = Curl(auth, s.url("/v1/videos"));
  REQUIRE(list.status == 200);
  CHECK(json::parse(list.body)["videos"].empty());
  CHECK(UploadFiles(s).empty());
  // And valid UTF-8 is kept as it is.
  auto a = auth;
  a.insert(a.end(), {"-X", "POST", "-H", "Tus-Resumable: 1.0.0", "-H", "Upload-Length: 100", "-H",
                     "Upload-Metadata: filename w6lsw6lWZS5tcDQ="});  // "éléVe.mp4"
  auto created = Curl(a, s.url("/v1/uploads"));
  INFO(created.body);
  REQUIRE(created.status == 201);
  CHECK(json::parse(created.body)["filename"] == "\xc3\xa9l\xc3\xa9Ve.mp4");
  CHECK(Curl({}, s.url("/healthz")).status == 200);
}

TEST_CASE("unfinished tus uploads hold no descriptor or thread and a restart reopens none",
          "[integration][api][tus][security][slow]") {
  auto dir = ScratchDir::Create("api-open-uploads");
  REQUIRE(dir.ok());
  auto flags = kFlags;
  flags.insert(flags.end(), {"--max-open-uploads", "1000"});
  ServeProcess s(dir->path() / "data", flags);
  REQUIRE(s.Start().empty());
  const size_t fds_before = OpenFds(s);
  const size_t threads_before = Threads(s);

  // 300 unfinished uploads, 100 of them with their first byte.
  std::vector<std::string> uploads;
  for (int i = 0; i < 300; ++i) {
    int status = 0;
    uploads.push_back(CreateUpload(s, s.token(), 1000, &status));
    INFO("upload " << i << " status " << status << " server log: " << s.log());
    REQUIRE(!uploads.back().empty());
  }
  for (int i = 0; i < 100; ++i) {
    auto r = Tus(s, s.token(), "PATCH", uploads[static_cast<size_t>(i)],
                 "Content-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\n", "x");
    INFO(r.response);
    REQUIRE(r.status() == 204);
  }
  const size_t fds_open = OpenFds(s);
  INFO("descriptors: " << fds_before << " at start, " << fds_open << " with 300 open uploads");
  CHECK(fds_open < fds_before + 30);
  // Only a few of them transcode while their bytes arrive (each such job holds threads).
  const size_t threads_open = Threads(s);
  INFO("threads: " << threads_before << " at start, " << threads_open << " with 100 started");
  CHECK(threads_open < threads_before + 150);

  // A restart starts no thread and opens no file for them; they resume where they were.
  REQUIRE(s.Stop() == 0);
  REQUIRE(s.Start().empty());
  const size_t fds_restarted = OpenFds(s);
  const size_t threads_restarted = Threads(s);
  INFO("after restart: " << fds_restarted << " descriptors, " << threads_restarted << " threads ("
                         << threads_before << " at the first start)");
  CHECK(fds_restarted < fds_before + 30);
  CHECK(threads_restarted < threads_before + 10);
  auto head = Tus(s, s.token(), "HEAD", uploads[5], "");
  CHECK(head.status() == 200);
  CHECK(HeaderOf(head.response, "upload-offset") == "1");
  CHECK(!HeaderOf(head.response, "upload-expires").empty());
  CHECK(Curl({}, s.url("/healthz")).status == 200);
}

TEST_CASE("unfinished tus uploads are capped per tenant and in all and they expire",
          "[integration][api][tus][security][slow]") {
  auto dir = ScratchDir::Create("api-upload-caps");
  REQUIRE(dir.ok());
  auto flags = kFlags;
  flags.insert(flags.end(), {"--max-open-uploads", "3", "--max-open-uploads-total", "5",
                             "--upload-expiry", "3s"});
  ServeProcess s(dir->path() / "data", flags);
  REQUIRE(s.Start().empty());
  const std::string other = NewToken(s.data(), "other");

  SECTION("a tenant at its cap gets 429, another tenant is served until the global cap's 503") {
    std::vector<std::string> mine;
    for (int i = 0; i < 3; ++i) mine.push_back(CreateUpload(s, s.token(), 10));
    for (const auto& u : mine) REQUIRE(!u.empty());
    auto refused = Tus(s, s.token(), "POST", "/v1/uploads", "Upload-Length: 10\r\n");
    INFO(refused.response);
    CHECK(refused.status() == 429);
    CHECK(refused.response.find("too_many_uploads") != std::string::npos);
    CHECK(!CreateUpload(s, other, 10).empty());
    CHECK(!CreateUpload(s, other, 10).empty());
    auto full = Tus(s, other, "POST", "/v1/uploads", "Upload-Length: 10\r\n");
    INFO(full.response);
    CHECK(full.status() == 503);
    CHECK(!HeaderOf(full.response, "retry-after").empty());
    // A finished upload frees its place.
    auto done =
        Tus(s, s.token(), "PATCH", mine[0],
            "Content-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\n", "0123456789");
    CHECK(done.status() == 204);
    CHECK(!CreateUpload(s, s.token(), 10).empty());
  }
  SECTION("an upload with no new byte past its expiry is removed with its file") {
    auto options = Curl({"-X", "OPTIONS"}, s.url("/v1/uploads"));
    CHECK(options.header("tus-extension").find("expiration") != std::string::npos);
    auto created = Tus(s, s.token(), "POST", "/v1/uploads", "Upload-Length: 100\r\n");
    REQUIRE(created.status() == 201);
    const std::string expires = HeaderOf(created.response, "upload-expires");
    INFO(created.response);
    CHECK(expires.size() == 29);  // "Sun, 06 Nov 1994 08:49:37 GMT"
    CHECK(expires.substr(26) == "GMT");
    const std::string upload = HeaderOf(created.response, "location");
    const std::string video = HeaderOf(created.response, "zerofarm-video-id");
    auto patch =
        Tus(s, s.token(), "PATCH", upload,
            "Content-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\n", "abc");
    CHECK(patch.status() == 204);
    CHECK(!HeaderOf(patch.response, "upload-expires").empty());
    REQUIRE(fs::exists(s.data() / "uploads" / video));
    int status = 0;
    for (int i = 0; i < 100 && status != 404; ++i) {
      std::this_thread::sleep_for(200ms);
      status = Tus(s, s.token(), "HEAD", upload, "").status();
    }
    CHECK(status == 404);
    bool gone = false;
    for (int i = 0; i < 100 && !gone; ++i) {
      gone = !fs::exists(s.data() / "uploads" / video) &&
             Curl(Bearer(s.token()), s.url("/v1/videos/" + video)).status == 404;
      if (!gone) std::this_thread::sleep_for(200ms);
    }
    CHECK(gone);
  }
}

TEST_CASE("past the upload file budget a new upload gets 503 with Retry-After while others go on",
          "[integration][api][security][slow]") {
  auto dir = ScratchDir::Create("api-fd-budget");
  REQUIRE(dir.ok());
  auto flags = kFlags;
  flags.insert(flags.end(), {"--max-upload-files", "3"});
  ServeProcess s(dir->path() / "data", flags);
  REQUIRE(s.Start().empty());
  // Three uploads that stop after 1.5 MiB of 3 MiB: each holds its file open for writing.
  const std::string head =
      "POST /v1/videos?filename=slow.bin HTTP/1.1\r\nHost: x\r\n"
      "Authorization: Bearer " +
      s.token() + "\r\nContent-Length: 3145728\r\n\r\n";
  std::vector<std::thread> stalled;
  for (int i = 0; i < 3; ++i)
    stalled.emplace_back([&] { RawRequest(s.port(), head + std::string(1572864, 'z'), 8s); });
  size_t listed = 0;
  for (int i = 0; i < 100 && listed < 3; ++i) {
    std::this_thread::sleep_for(100ms);
    auto r = Curl(Bearer(s.token()), s.url("/v1/videos"));
    listed = json::parse(r.body)["videos"].size();
  }
  REQUIRE(listed == 3);
  std::this_thread::sleep_for(300ms);
  auto args = Bearer(s.token());
  args.insert(args.end(), {"--data-binary", "one more"});
  auto refused = Curl(args, s.url("/v1/videos?filename=more.bin"));
  INFO(refused.body << s.log());
  CHECK(refused.status == 503);
  CHECK(!refused.header("retry-after").empty());
  for (auto& t : stalled) t.join();
  // The stalled ones ended (idle timeout): their files are closed and uploads go through.
  auto later = Curl(args, s.url("/v1/videos?filename=later.bin"));
  CHECK(later.status == 201);
  CHECK(Curl({}, s.url("/healthz")).status == 200);
}

TEST_CASE(
    "bytes of a tus PATCH cut by kill -9 are kept up to the last sync and so are the counters",
    "[integration][api][tus][slow]") {
  auto dir = ScratchDir::Create("api-patch-crash");
  REQUIRE(dir.ok());
  ServeProcess s(dir->path() / "data", kFlags);
  REQUIRE(s.Start().empty());
  // One finished upload, so the counters have something to keep.
  auto args = Bearer(s.token());
  args.insert(args.end(), {"--data-binary", "not a video"});
  REQUIRE(Curl(args, s.url("/v1/videos?filename=small.bin")).status == 201);

  const uint64_t total = 12u << 20;
  std::string bytes(total, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>((i * 131) % 251);
  const std::string upload = CreateUpload(s, s.token(), total);
  REQUIRE(!upload.empty());
  const size_t sent = 10u << 20;
  // The PATCH announces every byte, sends 10 MiB and waits: the server sees a PATCH in flight.
  std::thread patch([&] {
    RawRequest(s.port(),
               "PATCH " + upload + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + s.token() +
                   "\r\nTus-Resumable: 1.0.0\r\nContent-Type: application/offset+octet-stream"
                   "\r\nUpload-Offset: 0\r\nContent-Length: " +
                   std::to_string(total) + "\r\n\r\n" + bytes.substr(0, sent),
               3s);
  });
  uint64_t offset = 0;
  for (int i = 0; i < 100 && offset < (8u << 20); ++i) {
    std::this_thread::sleep_for(100ms);
    auto h = Tus(s, s.token(), "HEAD", upload, "");
    offset = std::stoull("0" + HeaderOf(h.response, "upload-offset"));
  }
  INFO("HEAD during the PATCH: " << offset);
  CHECK(offset >= (8u << 20));
  auto metrics = Curl({}, s.url("/metrics")).body;
  s.Kill9();
  patch.join();
  REQUIRE(s.Start().empty());
  auto h = Tus(s, s.token(), "HEAD", upload, "");
  REQUIRE(h.status() == 200);
  const uint64_t kept = std::stoull("0" + HeaderOf(h.response, "upload-offset"));
  INFO("kept after kill -9: " << kept);
  CHECK(kept >= (8u << 20));
  CHECK(kept <= sent);
  bool same = false;
  for (const auto& name : UploadFiles(s)) {
    const std::string file = ReadFile(s.data() / "uploads" / name);
    same |= file.size() >= kept && file.compare(0, kept, bytes, 0, kept) == 0;
  }
  CHECK(same);  // the bytes HEAD counts are the bytes sent
  // The counters survived the restart and agree.
  auto value = [](const std::string& text, const std::string& name) {
    size_t at = text.find("\n" + name + " ");
    return at == std::string::npos ? -1 : std::stoll(text.substr(at + name.size() + 2));
  };
  auto after = Curl({}, s.url("/metrics")).body;
  INFO("before:\n" << metrics << "\nafter:\n" << after);
  CHECK(value(metrics, "zerofarm_uploads_total") == 2);
  CHECK(value(after, "zerofarm_uploads_total") == 2);
  CHECK(value(metrics, "zerofarm_uploads_completed_total") == 1);
  CHECK(value(after, "zerofarm_uploads_completed_total") == 1);
}

TEST_CASE("JSON from a client nesting past 16 levels is refused with 400 and the server stays up",
          "[integration][api][clumsy][slow]") {
  ServeProcess& s = Shared();
  auto args = Bearer(s.token());
  args.insert(args.end(), {"--data-binary", "not a video"});
  auto created = Curl(args, s.url("/v1/videos?filename=small.bin"));
  REQUIRE(created.status == 201);
  const std::string id = ParseJson(created)["id"];

  const auto nested = [](int levels) {
    return std::string(levels, '[') + "1" + std::string(levels, ']');
  };
  const auto patch = [&](const std::string& body) {
    auto a = Bearer(s.token());
    a.insert(a.end(),
             {"-X", "PATCH", "-H", "Content-Type: application/json", "--data-binary", body});
    return Curl(a, s.url("/v1/videos/" + id));
  };
  for (int levels : {17, 1000}) {
    INFO(levels << " levels");
    auto r = patch(R"({"metadata": {"k": )" + nested(levels) + "}}");
    CHECK(r.status == 400);
    CHECK(ParseJson(r)["error"]["code"] == "bad_request");
    // The same nesting in the metadata query parameter of an upload (brackets %-encoded).
    std::string encoded;
    for (char c : nested(levels))
      encoded += c == '[' ? "%5B" : c == ']' ? "%5D" : std::string(1, c);
    auto q = Bearer(s.token());
    q.insert(q.end(), {"--data-binary", "x"});
    auto up = Curl(q, s.url("/v1/videos?filename=x.bin&metadata=" + encoded));
    CHECK(up.status == 400);
  }
  // A shallow body still works, and the server is up.
  CHECK(patch(R"({"metadata": {"k": "v"}})").status == 200);
  CHECK(Curl({}, s.url("/healthz")).status == 200);
}

TEST_CASE(
    "a finished video lets go of its job's thread and state and still answers from its record",
    "[integration][api][reliability][slow]") {
  auto dir = ScratchDir::Create("api-reap");
  REQUIRE(dir.ok());
  auto flags = kFlags;
  flags.insert(flags.end(), {"--upload-expiry", "2s"});  // the sweep runs every 0.5 s
  ServeProcess s(dir->path() / "data", flags);
  REQUIRE(s.Start().empty());
  auto gauge = [&] {
    const std::string m = Curl({}, s.url("/metrics")).body;
    const std::string name = "\nzerofarm_videos_in_memory ";
    const size_t at = m.find(name);
    return at == std::string::npos ? -1 : std::stoi(m.substr(at + name.size()));
  };
  std::vector<std::string> ids;
  for (int i = 0; i < 8; ++i) {
    auto a = Bearer(s.token());
    a.insert(a.end(), {"--data-binary", "not a video, number " + std::to_string(i)});
    auto r = Curl(a, s.url("/v1/videos"));
    REQUIRE(r.status == 201);
    ids.push_back(json::parse(r.body)["id"]);
  }
  for (const auto& id : ids) REQUIRE(!WaitForStatus(s, s.token(), id, {"failed"}, 60s).empty());
  int held = gauge();
  for (int i = 0; i < 100 && held != 0; ++i) {
    std::this_thread::sleep_for(100ms);
    held = gauge();
  }
  CHECK(held == 0);
  // Nothing a user sees depends on the state let go of.
  for (const auto& id : ids) {
    auto r = Curl(Bearer(s.token()), s.url("/v1/videos/" + id));
    REQUIRE(r.status == 200);
    json v = json::parse(r.body);
    CHECK(v["status"] == "failed");
    CHECK(!v["error"]["code"].get<std::string>().empty());
  }
}
