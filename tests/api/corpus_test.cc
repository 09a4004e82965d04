// Real clips from ../shared/media/corpus through the API: what must be refused fails with a
// reason (and the server keeps serving); a real clip comes out frame-exact.
#include "corpus.h"

#include <catch2/catch.hpp>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "run_command.h"
#include "serve_process.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace zerofarm::test;
using namespace std::chrono_literals;

TEST_CASE("corpus clips uploaded over HTTP are refused with a reason or come out frame-exact",
          "[integration][api][corpus][slow]") {
  auto corpus = CorpusDir();
  if (!corpus) {
    WARN("no corpus (../shared/media/corpus or $ZEROFARM_CORPUS): skipped");
    return;
  }
  auto manifest = ReadCorpusManifest(*corpus);
  REQUIRE(manifest.ok());
  auto dir = ScratchDir::Create("api-corpus");
  REQUIRE(dir.ok());
  ServeProcess s(dir->path() / "data", {"--chunk-seconds", "1", "--workers", "2"});
  std::string err = s.Start();
  INFO(err);
  REQUIRE(err.empty());

  // Every clip to reject, plus one small real clip to transcode (the whole list is the
  // transcode tests' job; here it is the HTTP path that is under test).
  std::vector<CorpusEntry> chosen;
  for (const auto& e : *manifest)
    if (!e.transcode || e.file == "mp4_preroll-5s.mp4") chosen.push_back(e);
  std::vector<std::pair<CorpusEntry, std::string>> uploaded;
  for (const auto& e : chosen) {
    const fs::path file = *corpus / e.file;
    if (!fs::exists(file)) continue;
    auto args = Bearer(s.token());
    args.insert(args.end(), {"--data-binary", "@" + file.string()});
    auto r = Curl(args, s.url("/v1/videos?ladder=360p&filename=" + e.file));
    INFO(e.file << ": " << r.body << r.error);
    REQUIRE(r.status == 201);
    uploaded.emplace_back(e, json::parse(r.body)["id"]);
  }
  for (const auto& [e, id] : uploaded) {
    std::string body = WaitForStatus(s, s.token(), id, {"ready", "failed"}, 240s);
    json v = json::parse(body);
    INFO(e.file << " (" << e.what << "): " << body);
    if (!e.transcode) {
      CHECK(v["status"] == "failed");
      CHECK(!v["error"]["code"].get<std::string>().empty());
    } else {
      REQUIRE(v["status"] == "ready");
      const std::string rung = v["renditions"][0]["name"];
      const fs::path got = dir->path() / (id + ".mp4");
      auto fetch = RunCommand(
          {"curl", "-sS", "-o", got.string(),
           s.url("/v1/videos/" + id + "/mp4/" + rung + ".mp4?access_token=" + s.token())},
          60s);
      REQUIRE(fetch.succeeded());
      if (e.frames) CHECK(CountFrames(got) == *e.frames);
    }
    CHECK(Curl({}, s.url("/healthz")).status == 200);
  }
  CHECK(s.Stop() == 0);
}
