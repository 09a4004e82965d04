// Servers started and stopped on purpose: tenants and deletion checked in the store itself,
// kill -9 mid-job and restart, tus offsets across a restart.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "corpus.h"
#include "run_command.h"
#include "serve_process.h"
#include "zerofarm/storage/store.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace zerofarm;
using namespace zerofarm::test;
using namespace std::chrono_literals;

namespace {

const std::vector<std::string> kFlags = {"--chunk-seconds", "1", "--workers", "2"};

json Upload(const ServeProcess& s, const std::string& token, const fs::path& file) {
  auto args = Bearer(token);
  args.insert(args.end(), {"--data-binary", "@" + file.string()});
  auto r = Curl(args, s.url("/v1/videos?ladder=360p&filename=clip.mp4"));
  INFO(r.body << r.error);
  REQUIRE(r.status == 201);
  return ParseJson(r);
}

}  // namespace

TEST_CASE("a tenant sees only its own videos and a deleted video leaves no byte in the store",
          "[integration][api][slow]") {
  auto dir = ScratchDir::Create("api-tenants");
  REQUIRE(dir.ok());
  const fs::path data = dir->path() / "data";
  const std::string alice = NewToken(data, "alice");  // before the first start: no default token
  ServeProcess s(data, kFlags);
  std::string err = s.Start();
  INFO(err);
  REQUIRE(err.empty());
  CHECK(s.token().empty());
  const std::string bob = NewToken(data, "bob");  // while it runs

  const fs::path clip = MakeShortClip(4);
  json v = Upload(s, alice, clip);
  const std::string id = v["id"];
  CHECK(Curl(Bearer(alice), s.url("/v1/videos/" + id)).status == 200);
  CHECK(Curl(Bearer(bob), s.url("/v1/videos/" + id)).status == 404);
  CHECK(ParseJson(Curl(Bearer(bob), s.url("/v1/videos")))["videos"].empty());
  CHECK(ParseJson(Curl(Bearer(alice), s.url("/v1/videos")))["videos"].size() == 1);
  auto tus = Bearer(alice);
  tus.insert(tus.end(), {"-X", "POST", "-H", "Tus-Resumable: 1.0.0", "-H", "Upload-Length: 1000"});
  const std::string location = Curl(tus, s.url("/v1/uploads")).header("location");
  REQUIRE(!location.empty());
  auto bob_head = Bearer(bob);
  bob_head.insert(bob_head.end(), {"-I", "-H", "Tus-Resumable: 1.0.0"});
  CHECK(Curl(bob_head, s.url(location)).status == 404);
  auto alice_end = Bearer(alice);
  alice_end.insert(alice_end.end(), {"-X", "DELETE", "-H", "Tus-Resumable: 1.0.0"});
  CHECK(Curl(alice_end, s.url(location)).status == 204);
  auto del_bob = Bearer(bob);
  del_bob.insert(del_bob.end(), {"-X", "DELETE"});
  CHECK(Curl(del_bob, s.url("/v1/videos/" + id)).status == 404);

  std::string body = WaitForStatus(s, alice, id, {"ready", "failed"}, 240s);
  INFO(body << s.log());
  REQUIRE(json::parse(body)["status"] == "ready");
  CHECK(Curl(Bearer(bob), s.url("/v1/videos/" + id + "/hls/master.m3u8")).status == 404);
  CHECK(Curl({}, s.url("/v1/videos/" + id + "/mp4/180p.mp4?access_token=" + bob)).status == 404);

  auto del = Bearer(alice);
  del.insert(del.end(), {"-X", "DELETE"});
  CHECK(Curl(del, s.url("/v1/videos/" + id)).status == 204);
  CHECK(Curl(Bearer(alice), s.url("/v1/videos/" + id)).status == 404);
  CHECK(s.Stop() == 0);

  CHECK(!fs::exists(data / "videos" / id));
  CHECK(!fs::exists(data / "uploads" / id));
  storage::Options so;
  so.dir = data / "store";
  auto store = storage::Store::Open(so);
  REQUIRE(store.ok());
  auto objects = (*store)->ListObjects("");
  REQUIRE(objects.ok());
  for (const auto& name : *objects) CHECK(name.find(id) == std::string::npos);
  auto meta = (*store)->ListMeta("");
  REQUIRE(meta.ok());
  for (const auto& [key, value] : *meta) {
    CHECK(key.find(id) == std::string::npos);
    CHECK(value.find(id) == std::string::npos);
  }
}

TEST_CASE("after kill -9 mid-job the restarted server finishes the video frame-exact",
          "[integration][api][restart][slow]") {
  auto dir = ScratchDir::Create("api-restart");
  REQUIRE(dir.ok());
  const fs::path data = dir->path() / "data";
  ServeProcess s(data, kFlags);
  std::string err = s.Start();
  INFO(err);
  REQUIRE(err.empty());
  REQUIRE(!s.token().empty());
  const std::string token = s.token();

  // A finished video, a video mid-transcode, and a resumable upload half sent.
  const fs::path small = MakeShortClip(4), longer = MakeShortClip(12);
  const std::string done_id = Upload(s, token, small)["id"];
  std::string body = WaitForStatus(s, token, done_id, {"ready", "failed"}, 240s);
  REQUIRE(json::parse(body)["status"] == "ready");

  const std::string busy_id = Upload(s, token, longer)["id"];
  bool some_done = false;
  for (int i = 0; i < 600 && !some_done; ++i) {
    json v = ParseJson(Curl(Bearer(token), s.url("/v1/videos/" + busy_id)));
    REQUIRE(v["status"] != "failed");
    REQUIRE(v["status"] != "ready");  // too late to test a restart mid-job
    some_done = v["progress"]["tasks_done"].get<int>() >= 1;
    if (!some_done) std::this_thread::sleep_for(100ms);
  }
  REQUIRE(some_done);

  const std::string bytes = ReadFile(small);
  auto create = Bearer(token);
  create.insert(create.end(), {"-X", "POST", "-H", "Tus-Resumable: 1.0.0", "-H",
                               "Upload-Length: " + std::to_string(bytes.size())});
  auto created = Curl(create, s.url("/v1/uploads"));
  REQUIRE(created.status == 201);
  const std::string location = created.header("location");
  const fs::path half = dir->path() / "half.bin";
  {
    std::ofstream out(half, std::ios::binary);
    out << bytes.substr(0, bytes.size() / 2);
  }
  auto patch = Bearer(token);
  patch.insert(patch.end(), {"-X", "PATCH", "-H", "Tus-Resumable: 1.0.0", "-H",
                             "Content-Type: application/offset+octet-stream", "-H",
                             "Upload-Offset: 0", "--data-binary", "@" + half.string()});
  REQUIRE(Curl(patch, s.url(location)).status == 204);

  s.Kill9();
  err = s.Start();
  INFO(err);
  REQUIRE(err.empty());

  auto head = Bearer(token);
  head.insert(head.end(), {"-I", "-H", "Tus-Resumable: 1.0.0"});
  auto h = Curl(head, s.url(location));
  CHECK(h.status == 200);
  CHECK(h.header("upload-offset") == std::to_string(bytes.size() / 2));

  CHECK(Curl(Bearer(token), s.url("/v1/videos/" + done_id + "/hls/master.m3u8")).status == 200);
  body = WaitForStatus(s, token, busy_id, {"ready", "failed"}, 240s);
  json v = json::parse(body);
  INFO(body << s.log());
  REQUIRE(v["status"] == "ready");
  const std::string rung = v["renditions"][0]["name"];
  const fs::path got = dir->path() / "played.mp4";
  auto fetch =
      RunCommand({"curl", "-sS", "-o", got.string(), "-H", "Authorization: Bearer " + token,
                  s.url("/v1/videos/" + busy_id + "/mp4/" + rung + ".mp4")},
                 60s);
  REQUIRE(fetch.succeeded());
  CHECK(CountFrames(got) == CountFrames(longer));
  CHECK(s.Stop() == 0);
}
