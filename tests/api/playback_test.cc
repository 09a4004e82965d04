// Playback access of its own against a real `zerofarm serve`: public videos play with no token,
// signed playback ids expire, forged ones are refused, signing keys rotate; paged lists,
// metadata, absolute URLs and /readyz.
#include <catch2/catch.hpp>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "corpus.h"
#include "run_command.h"
#include "serve_process.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace zerofarm::test;
using namespace std::chrono_literals;

namespace {

const std::vector<std::string> kFlags = {"--chunk-seconds", "1", "--workers", "2"};

ServeProcess& Server() { return SharedServer("api-playback", kFlags); }

json Upload(const ServeProcess& s, const std::string& token, const std::string& query) {
  const fs::path clip = MakeShortClip(3);
  REQUIRE(!clip.empty());
  auto args = Bearer(token);
  args.insert(args.end(), {"--data-binary", "@" + clip.string()});
  auto r = Curl(args, s.url("/v1/videos?ladder=360p&" + query));
  INFO(r.body << r.error);
  REQUIRE(r.status == 201);
  return ParseJson(r);
}

json GetVideo(const ServeProcess& s, const std::string& id, const std::string& query = "") {
  auto r = Curl(Bearer(s.token()), s.url("/v1/videos/" + id + query));
  REQUIRE(r.status == 200);
  return ParseJson(r);
}

// One ready video per policy, made once, as the API shows it now: its playback URLs are signed
// afresh, since a test that ran before may have retired the key that signed earlier ones.
json ReadyVideo(const std::string& policy) {
  static std::map<std::string, std::string> made;  // policy -> video id
  ServeProcess& s = Server();
  if (!made.count(policy)) {
    json v = Upload(s, s.token(), "playback_policy=" + policy);
    made[policy] = WaitReady(s, s.token(), v["id"])["id"];
  }
  return GetVideo(s, made[policy]);
}

// The path of an absolute playback URL of this server.
std::string PathOf(const ServeProcess& s, const std::string& url) {
  const std::string origin = s.url("");
  INFO(url);
  REQUIRE(url.rfind(origin, 0) == 0);
  return url.substr(origin.size());
}

bool FfmpegPlays(const std::string& url) {
  auto r = RunCommand({"ffmpeg", "-v", "error", "-i", url, "-f", "null", "-"}, 120s);
  INFO(r.DescribeEnd() << " " << r.err);
  return r.succeeded();
}

std::string HmacHex(const std::string& key, const std::string& message) {
  auto r = RunCommand(
      {"sh", "-c", "printf %s \"$1\" | openssl dgst -sha256 -hmac \"$2\" -r", "sh", message, key},
      30s);
  REQUIRE(r.succeeded());
  return r.out.substr(0, 64);
}

std::vector<std::string> operator+(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t at; (at = s.find(sep, start)) != std::string::npos; start = at + 1)
    out.push_back(s.substr(start, at - start));
  out.push_back(s.substr(start));
  return out;
}

}  // namespace

TEST_CASE("a public video plays with no token from absolute URLs that shared caches may keep",
          "[integration][api][playback][slow]") {
  ServeProcess& s = Server();
  const json v = ReadyVideo("public");
  const std::string id = v["id"];
  const std::string rung = v["renditions"][0]["name"];
  CHECK(v["playback_policy"] == "public");
  const json& p = v["playback"];
  CHECK(p["policy"] == "public");
  CHECK(p["hls"] == s.url("/v1/play/" + id + "/hls/master.m3u8"));
  CHECK(FfmpegPlays(p["hls"]));

  auto master = Curl({}, p["hls"]);
  REQUIRE(master.status == 200);
  CHECK(master.header("cache-control") == "public, max-age=60");
  auto seg = Curl({}, s.url("/v1/play/" + id + "/hls/" + rung + "/seg00000.ts"));
  CHECK(seg.status == 200);
  CHECK(seg.header("cache-control") == "public, max-age=31536000, immutable");
  REQUIRE(p["mp4"].contains(rung));
  auto mp4 = Curl({"-H", "Range: bytes=0-99"}, p["mp4"][rung]);
  CHECK(mp4.status == 206);
  CHECK(mp4.body.size() == 100);
  CHECK(Curl({}, p["thumbnail"]).status == 200);
  CHECK(std::string(p["share"]).find("/embed.html?v=" + id) != std::string::npos);

  // A request without Host gets the same URLs relative.
  auto no_host = Curl({"--http1.0", "-H", "Host:", "-H", "Authorization: Bearer " + s.token()},
                      s.url("/v1/videos/" + id));
  REQUIRE(no_host.status == 200);
  CHECK(ParseJson(no_host)["playback"]["hls"] == "/v1/play/" + id + "/hls/master.m3u8");
}

TEST_CASE("a signed playback URL plays with no token until it expires, then answers 403",
          "[integration][api][playback][slow]") {
  ServeProcess& s = Server();
  const json v = ReadyVideo("signed");
  const std::string id = v["id"];
  const std::string rung = v["renditions"][0]["name"];
  CHECK(v["playback_policy"] == "signed");
  const std::string hls = v["playback"]["hls"];
  CHECK(hls.find(s.token()) == std::string::npos);
  CHECK(hls.find("access_token") == std::string::npos);
  CHECK(FfmpegPlays(hls));

  SECTION("no URL and no playlist line carries the API token or a key secret") {
    auto keys = ParseJson(Curl(Bearer(s.token()), s.url("/v1/signing-keys")));
    REQUIRE(keys["signing_keys"].size() >= 1);
    CHECK(!keys["signing_keys"][0].contains("secret"));
    auto master = Curl({}, hls);
    REQUIRE(master.status == 200);
    CHECK(master.header("cache-control") == "private, no-cache");
    auto media = Curl({}, s.url(PathOf(s, hls).substr(0, PathOf(s, hls).rfind('/')) + "/" + rung +
                                "/index.m3u8"));
    REQUIRE(media.status == 200);
    for (const auto& body : {master.body, media.body}) {
      CHECK(body.find("zf_") == std::string::npos);
      CHECK(body.find("access_token") == std::string::npos);
      CHECK(body.find("/v1/") == std::string::npos);  // relative URIs only
    }
  }

  SECTION("signed media stays out of shared caches") {
    const std::string mp4 = v["playback"]["mp4"][rung];
    auto r = Curl({"-H", "Range: bytes=0-9"}, mp4);
    CHECK(r.status == 206);
    CHECK(r.header("cache-control").rfind("private, max-age=", 0) == 0);
    CHECK(r.header("cache-control").find("public") == std::string::npos);
    CHECK(r.header("cache-control").find("immutable") == std::string::npos);
    // The API token route is private too now.
    auto by_token = Curl(Bearer(s.token()), s.url("/v1/videos/" + id + "/mp4/" + rung + ".mp4"));
    CHECK(by_token.status == 200);
    CHECK(by_token.header("cache-control").find("public") == std::string::npos);
  }

  SECTION("the bare video id does not play a signed video") {
    auto r = Curl({}, s.url("/v1/play/" + id + "/hls/master.m3u8"));
    CHECK(r.status == 403);
    CHECK(ParseJson(r)["error"]["code"] == "forbidden");
  }

  SECTION("a short-lived URL plays, then stops with 403 expired") {
    json shortv = GetVideo(s, id, "?expires_in=8");
    const std::string pid = shortv["playback"]["id"];
    const std::string master = shortv["playback"]["hls"];
    const std::string seg = s.url("/v1/play/" + pid + "/hls/" + rung + "/seg00000.ts");
    CHECK(Curl({}, master).status == 200);
    CHECK(Curl({}, seg).status == 200);
    const int64_t expires = std::stoll(Split(pid, '.')[2]);
    while (std::chrono::system_clock::now().time_since_epoch() < std::chrono::seconds(expires))
      std::this_thread::sleep_for(250ms);
    auto late = Curl({}, master);
    CHECK(late.status == 403);
    CHECK(ParseJson(late)["error"]["code"] == "expired");
    CHECK(Curl({}, seg).status == 403);
    CHECK(!FfmpegPlays(master));
  }

  SECTION("a bad expires_in is refused") {
    auto r = Curl(Bearer(s.token()), s.url("/v1/videos/" + id + "?expires_in=0"));
    CHECK(r.status == 400);
  }
}

TEST_CASE("forged, tampered or foreign playback signatures answer 403",
          "[integration][api][playback][slow]") {
  ServeProcess& s = Server();
  const json v = ReadyVideo("signed");
  const std::string id = v["id"];
  const std::string rung = v["renditions"][0]["name"];
  const std::string pid = v["playback"]["id"];
  auto parts = Split(pid, '.');
  REQUIRE(parts.size() == 5);
  auto status_of = [&](const std::string& forged) {
    return Curl({}, s.url("/v1/play/" + forged + "/hls/master.m3u8")).status;
  };
  REQUIRE(status_of(pid) == 200);

  SECTION("one changed hex digit of the signature") {
    std::string sig = parts[4];
    sig[10] = sig[10] == '0' ? '1' : '0';
    CHECK(status_of(parts[0] + "." + parts[1] + "." + parts[2] + "." + parts[3] + "." + sig) ==
          403);
  }
  SECTION("a later expiry with the old signature") {
    const std::string later = std::to_string(std::stoll(parts[2]) + 86400);
    CHECK(status_of(parts[0] + "." + parts[1] + "." + later + "." + parts[3] + "." + parts[4]) ==
          403);
  }
  SECTION("a narrower scope reaches only its files") {
    // Signed by the test itself with a key it created: the signing string of playback.h.
    auto key = ParseJson(Curl(Bearer(s.token()) + std::vector<std::string>{"-X", "POST"},
                              s.url("/v1/signing-keys")));
    const std::string kid = key["id"], secret = key["secret"];
    const std::string exp = std::to_string(std::stoll(parts[2]));
    const std::string sig =
        HmacHex(secret, "zerofarm-playback-v1\n" + id + "\nmp4\n" + exp + "\n" + kid);
    const std::string mp4_only = id + ".mp4." + exp + "." + kid + "." + sig;
    CHECK(Curl({}, s.url("/v1/play/" + mp4_only + "/mp4/" + rung + ".mp4")).status == 200);
    CHECK(status_of(mp4_only) == 403);
  }
  SECTION("a key of another tenant, even with a good signature") {
    const std::string bob = NewToken(s.data(), "bob");
    auto key = ParseJson(
        Curl(Bearer(bob) + std::vector<std::string>{"-X", "POST"}, s.url("/v1/signing-keys")));
    const std::string kid = key["id"], secret = key["secret"];
    const std::string sig =
        HmacHex(secret, "zerofarm-playback-v1\n" + id + "\nall\n" + parts[2] + "\n" + kid);
    CHECK(status_of(id + ".all." + parts[2] + "." + kid + "." + sig) == 403);
    // and bob cannot see or retire alice's keys
    auto mine = ParseJson(Curl(Bearer(bob), s.url("/v1/signing-keys")));
    CHECK(mine["signing_keys"].size() == 1);
    auto del = Curl(Bearer(bob) + std::vector<std::string>{"-X", "DELETE"},
                    s.url("/v1/signing-keys/" + parts[3]));
    CHECK(del.status == 404);
  }
  SECTION("garbage playback ids") {
    CHECK(status_of("a.b.c.d.e") == 403);
    CHECK(status_of(id + ".all.1.k_0000000000000000." + std::string(64, '0')) == 403);
    CHECK(status_of("v_0123456789abcdef") == 404);
  }
}

TEST_CASE("a rotated signing key keeps old links playing until it is retired",
          "[integration][api][playback][slow]") {
  ServeProcess& s = Server();
  const std::string id = ReadyVideo("signed")["id"];
  const std::string old_hls = GetVideo(s, id)["playback"]["hls"];
  const std::string old_kid = Split(GetVideo(s, id)["playback"]["id"], '.')[3];

  auto created =
      Curl(Bearer(s.token()) + std::vector<std::string>{"-X", "POST"}, s.url("/v1/signing-keys"));
  REQUIRE(created.status == 201);
  const std::string new_kid = ParseJson(created)["id"];
  CHECK(new_kid != old_kid);
  const json now = GetVideo(s, id);
  const std::string new_hls = now["playback"]["hls"];
  CHECK(Split(now["playback"]["id"], '.')[3] == new_kid);  // the newest key signs
  CHECK(Curl({}, old_hls).status == 200);
  CHECK(Curl({}, new_hls).status == 200);

  auto del = Curl(Bearer(s.token()) + std::vector<std::string>{"-X", "DELETE"},
                  s.url("/v1/signing-keys/" + old_kid));
  CHECK(del.status == 204);
  CHECK(Curl({}, old_hls).status == 403);
  CHECK(Curl({}, new_hls).status == 200);
  auto keys = ParseJson(Curl(Bearer(s.token()), s.url("/v1/signing-keys")));
  for (const auto& k : keys["signing_keys"]) CHECK(k["id"] != old_kid);
}

TEST_CASE("the playback policy changes later and the bare id follows it",
          "[integration][api][playback][slow]") {
  ServeProcess& s = Server();
  const std::string id = ReadyVideo("signed")["id"];
  const std::string bare = s.url("/v1/play/" + id + "/thumbnail.jpg");
  auto patch = [&](const std::string& body) {
    return Curl(Bearer(s.token()) + std::vector<std::string>{"-X", "PATCH", "-H",
                                                             "Content-Type: application/json",
                                                             "--data-binary", body},
                s.url("/v1/videos/" + id));
  };
  CHECK(Curl({}, bare).status == 403);
  auto r = patch(R"({"playback_policy": "public"})");
  REQUIRE(r.status == 200);
  CHECK(ParseJson(r)["playback"]["id"] == id);
  CHECK(Curl({}, bare).status == 200);
  r = patch(R"({"playback_policy": "signed"})");
  REQUIRE(r.status == 200);
  CHECK(ParseJson(r)["playback"]["id"] != id);
  CHECK(Curl({}, bare).status == 403);
  CHECK(patch(R"({"playback_policy": "open"})").status == 400);
  CHECK(patch(R"({"status": "ready"})").status == 400);
  CHECK(patch("not json").status == 400);
}

TEST_CASE("lists are paged newest first and videos keep their metadata",
          "[integration][api][list][slow]") {
  ServeProcess& s = Server();
  const std::string carol = NewToken(s.data(), "carol");
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) {
    auto r = Curl({"-H", "Authorization: Bearer " + carol, "--data-binary",
                   "not a video " + std::to_string(i)},
                  s.url("/v1/videos?passthrough=order-" + std::to_string(i) +
                        "&metadata=%7B%22n%22%3A%22" + std::to_string(i) + "%22%7D"));
    REQUIRE(r.status == 201);
    json v = ParseJson(r);
    CHECK(v["passthrough"] == "order-" + std::to_string(i));
    CHECK(v["metadata"]["n"] == std::to_string(i));
    ids.push_back(v["id"]);
  }
  std::vector<std::string> seen;
  std::string cursor;
  int pages = 0;
  do {
    auto r = Curl(Bearer(carol),
                  s.url("/v1/videos?limit=2" + (cursor.empty() ? "" : "&cursor=" + cursor)));
    REQUIRE(r.status == 200);
    json page = ParseJson(r);
    CHECK(page["total"] == 5);
    CHECK(page["videos"].size() <= 2);
    for (const auto& v : page["videos"]) seen.push_back(v["id"]);
    cursor = page["next_cursor"].is_string() ? page["next_cursor"].get<std::string>() : "";
    REQUIRE(++pages <= 3);
  } while (!cursor.empty());
  CHECK(pages == 3);
  CHECK(seen == std::vector<std::string>(ids.rbegin(), ids.rend()));

  CHECK(Curl(Bearer(carol), s.url("/v1/videos?limit=0")).status == 400);
  CHECK(Curl(Bearer(carol), s.url("/v1/videos?cursor=garbage")).status == 400);
  const std::string big(5000, 'x');
  auto too_big = Curl({"-H", "Authorization: Bearer " + carol, "--data-binary", "x"},
                      s.url("/v1/videos?passthrough=" + big));
  CHECK(too_big.status == 400);
  auto not_object = Curl({"-H", "Authorization: Bearer " + carol, "--data-binary", "x"},
                         s.url("/v1/videos?metadata=%5B1%5D"));
  CHECK(not_object.status == 400);
}

TEST_CASE("/readyz answers apart from /healthz; /metrics shows the version and the memory held",
          "[integration][api][slow]") {
  ServeProcess& s = Server();
  auto r = Curl({}, s.url("/readyz"));
  REQUIRE(r.status == 200);
  json j = ParseJson(r);
  CHECK(j["status"] == "ready");
  CHECK(j["checks"]["store"] == "ok");
  auto metrics = Curl({}, s.url("/metrics"));
  auto version = RunCommand({ZF_ZEROFARM_BIN, "--version"}, 30s);
  REQUIRE(version.succeeded());
  REQUIRE(version.out.rfind("zerofarm ", 0) == 0);
  const std::string v = version.out.substr(9, version.out.find('\n') - 9);
  CHECK(!v.empty());
  CHECK(metrics.body.find("zerofarm_build_info{version=\"" + v + "\"") != std::string::npos);
  // What the process's memory is made of, for telling a leak from memory kept for reuse.
  auto gauge = [&](const std::string& series) -> double {
    const size_t at = metrics.body.find("\n" + series + " ");
    if (at == std::string::npos) return -1;
    return std::stod(metrics.body.substr(at + series.size() + 2));
  };
  CHECK(gauge("process_resident_memory_bytes") > 1e6);
  CHECK(gauge("process_open_fds") > 0);
  CHECK(gauge("zerofarm_heap_bytes{state=\"in_use\"}") > 0);
  CHECK(gauge("zerofarm_store_memory_bytes{kind=\"memtables\"}") >= 0);
}
