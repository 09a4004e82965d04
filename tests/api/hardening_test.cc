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
ServeProcess& Shared() {
  static ScratchDir dir = [] {
    auto d = ScratchDir::Create("api-hardening");
    REQUIRE(d.ok());
    return std::move(*d);
  }();
  static ServeProcess server(dir.path() / "data", kFlags);
  if (!server.running()) {
    std::string err = server.Start();
    INFO(err);
    REQUIRE(err.empty());
  }
  return server;
}

// How many HTTP responses a raw exchange holds (status lines at the start or after a body).
size_t CountResponses(const std::string& raw) {
  size_t n = 0;
  for (size_t at = raw.find("HTTP/1."); at != std::string::npos; at = raw.find("HTTP/1.", at + 1))
    if (at == 0 || raw[at - 1] == '\n' || raw[at - 1] == '}') ++n;
  return n;
}

std::string NewToken(const fs::path& data, const std::string& tenant) {
  auto r = RunCommand(
      {ZF_ZEROFARM_BIN, "token", "create", "--data", data.string(), "--tenant", tenant}, 30s);
  INFO(r.err);
  REQUIRE(r.succeeded());
  return r.out.substr(0, r.out.find('\n'));
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
          "[integration][api][security]") {
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
    "[integration][api][security]") {
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
