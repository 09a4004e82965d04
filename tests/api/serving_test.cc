// File answers of `zerofarm serve` as players see them: small files kept in memory yet never
// stale, large files and wide ranges sent from the file with exactly the bytes asked for, to
// fast, slow and pipelining clients alike. The files are the web folder's (--web), so a test
// can replace them as a packager does.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "run_command.h"
#include "scratch_dir.h"
#include "serve_process.h"

namespace fs = std::filesystem;
using namespace zerofarm::test;
using namespace std::chrono_literals;

namespace {

// Bytes that differ at every offset of a long run, so a shifted or repeated piece shows.
std::string Pattern(size_t n, uint32_t seed) {
  std::string out(n, '\0');
  uint32_t x = seed;
  for (size_t i = 0; i < n; ++i) {
    x = x * 1664525u + 1013904223u;
    out[i] = static_cast<char>(x >> 24);
  }
  return out;
}

void Write(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out.good());
}

// Replaces `path` the way packagers publish a playlist: a new file renamed over the old one.
void Publish(const fs::path& path, const std::string& bytes) {
  const fs::path tmp = path.string() + ".tmp";
  Write(tmp, bytes);
  fs::rename(tmp, path);
}

struct Served {
  Served() : dir(ScratchDir::Create("api-serving")) {
    REQUIRE(dir.ok());
    web = dir->path() / "web";
    fs::create_directories(web);
    server.emplace(dir->path() / "data", std::vector<std::string>{"--web", web.string()});
    REQUIRE(server->Start().empty());
  }
  zerofarm::Result<ScratchDir> dir;
  fs::path web;
  std::optional<ServeProcess> server;
};

// The answers in `raw`, one after the other, each cut at its Content-Length.
std::vector<std::pair<std::string, std::string>> SplitAnswers(std::string_view raw) {
  std::vector<std::pair<std::string, std::string>> out;
  while (!raw.empty()) {
    const size_t end = raw.find("\r\n\r\n");
    if (end == std::string_view::npos) break;
    std::string head(raw.substr(0, end + 4));
    const size_t at = head.find("Content-Length: ");
    if (at == std::string::npos) break;
    const size_t length = std::stoul(head.substr(at + 16));
    if (raw.size() < end + 4 + length) break;
    out.emplace_back(head, std::string(raw.substr(end + 4, length)));
    raw.remove_prefix(end + 4 + length);
  }
  return out;
}

}  // namespace

TEST_CASE("a playlist rewritten by rename while it is kept in memory is served fresh next time",
          "[integration][api][serving]") {
  Served s;
  const fs::path playlist = s.web / "live.m3u8";
  const std::string first = "#EXTM3U\n#EXT-X-PLAYLIST-TYPE:EVENT\nseg00000.ts\n";
  const std::string second = "#EXTM3U\n#EXT-X-PLAYLIST-TYPE:EVENT\nseg00001.ts\n";  // same size
  Publish(playlist, first);
  const std::string url = s.server->url("/live.m3u8");
  auto a = Curl({}, url);
  auto b = Curl({}, url);  // from memory now
  REQUIRE(a.status == 200);
  REQUIRE(b.status == 200);
  CHECK(a.body == first);
  CHECK(b.body == first);
  CHECK(b.header("etag") == a.header("etag"));
  CHECK(a.header("content-type") == "application/vnd.apple.mpegurl");

  Publish(playlist, second);
  auto c = Curl({}, url);
  REQUIRE(c.status == 200);
  CHECK(c.body == second);
  CHECK(c.header("etag") != a.header("etag"));
  // A client holding the old version gets the new one, not a 304.
  auto d = Curl({"-H", "If-None-Match: " + a.header("etag")}, url);
  CHECK(d.status == 200);
  CHECK(d.body == second);
  // A range of a file kept in memory is cut from the right version.
  auto e = Curl({"-H", "Range: bytes=-12"}, url);
  CHECK(e.status == 206);
  CHECK(e.body == second.substr(second.size() - 12));
  CHECK(e.header("content-range") == "bytes " + std::to_string(second.size() - 12) + "-" +
                                         std::to_string(second.size() - 1) + "/" +
                                         std::to_string(second.size()));
  auto head = Curl({"-I"}, url);
  CHECK(head.status == 200);
  CHECK(head.header("content-length") == std::to_string(second.size()));
  CHECK(head.body.empty());
}

TEST_CASE("a large file and wide ranges of it arrive with exactly the bytes asked for",
          "[integration][api][serving]") {
  Served s;
  const std::string bytes = Pattern(3 * 1024 * 1024 + 12345, 7);
  Write(s.web / "movie.mp4", bytes);
  const std::string url = s.server->url("/movie.mp4");

  auto whole = Curl({}, url);
  REQUIRE(whole.status == 200);
  CHECK(whole.header("content-length") == std::to_string(bytes.size()));
  CHECK((whole.body == bytes));

  auto wide = Curl({"-H", "Range: bytes=100001-2500000"}, url);
  REQUIRE(wide.status == 206);
  CHECK((wide.body == bytes.substr(100001, 2400000)));
  CHECK(wide.header("content-range") == "bytes 100001-2500000/" + std::to_string(bytes.size()));

  auto suffix = Curl({"-H", "Range: bytes=-700000"}, url);
  REQUIRE(suffix.status == 206);
  CHECK((suffix.body == bytes.substr(bytes.size() - 700000)));

  auto open_ended = Curl({"-H", "Range: bytes=3000000-"}, url);
  REQUIRE(open_ended.status == 206);
  CHECK((open_ended.body == bytes.substr(3000000)));

  // Several ranges: one multipart answer whose parts hold the file's bytes.
  auto several = Curl({"-H", "Range: bytes=0-99,200000-400000"}, url);
  REQUIRE(several.status == 206);
  CHECK(several.header("content-type").rfind("multipart/byteranges; boundary=", 0) == 0);
  CHECK((several.body.find(bytes.substr(0, 100)) != std::string::npos));
  CHECK((several.body.find(bytes.substr(200000, 200001)) != std::string::npos));

  auto past = Curl({"-H", "Range: bytes=" + std::to_string(bytes.size()) + "-"}, url);
  CHECK(past.status == 416);
  CHECK(past.header("content-range") == "bytes */" + std::to_string(bytes.size()));
}

TEST_CASE("a client that reads slowly still gets every byte of a large file",
          "[integration][api][serving]") {
  Served s;
  const std::string bytes = Pattern(4 * 1024 * 1024, 11);
  Write(s.web / "slow.ts", bytes);
  // 2 MB/s: the socket fills again and again, and the rest waits until the client drains it.
  auto r = Curl({"--limit-rate", "2M"}, s.server->url("/slow.ts"));
  REQUIRE(r.status == 200);
  CHECK(r.body.size() == bytes.size());
  CHECK((r.body == bytes));
}

TEST_CASE("pipelined GETs of large and small files get their answers in order, each whole",
          "[integration][api][serving]") {
  Served s;
  const std::string big = Pattern(900 * 1024, 3);
  const std::string small = "#EXTM3U\n#EXT-X-ENDLIST\n";
  Write(s.web / "seg.ts", big);
  Write(s.web / "index.m3u8", small);
  const std::string host = "Host: 127.0.0.1\r\n";
  const std::string requests =
      "GET /seg.ts HTTP/1.1\r\n" + host + "\r\n" + "GET /index.m3u8 HTTP/1.1\r\n" + host + "\r\n" +
      "GET /seg.ts HTTP/1.1\r\n" + host + "Range: bytes=70000-899999\r\n\r\n" +
      "GET /seg.ts HTTP/1.1\r\n" + host + "Connection: close\r\n\r\n";
  auto raw = RawRequest(s.server->port(), requests, 20s);
  REQUIRE(raw.connected);
  const auto answers = SplitAnswers(raw.response);
  REQUIRE(answers.size() == 4);
  CHECK(answers[0].first.rfind("HTTP/1.1 200", 0) == 0);
  CHECK((answers[0].second == big));
  CHECK(answers[1].second == small);
  CHECK(answers[2].first.rfind("HTTP/1.1 206", 0) == 0);
  CHECK((answers[2].second == big.substr(70000, 830000)));
  CHECK((answers[3].second == big));
  CHECK(raw.closed_by_server);
}
