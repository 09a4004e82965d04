// The rendition ladder: which rungs a source gets, their sizes and their H.264 levels.
#include "zerofarm/transcode/ladder.h"

#include <catch2/catch.hpp>

using namespace zerofarm::transcode;
using zerofarm::ErrorCode;

TEST_CASE("a 1080p landscape source gets the whole default ladder at 16:9", "[transcode][ladder]") {
  auto rungs = PlanLadder({1080, 720, 480, 360}, 1920, 1080, 30);
  REQUIRE(rungs.size() == 4);
  CHECK(rungs[0].name == "1080p");
  CHECK((rungs[0].width == 1920 && rungs[0].height == 1080));
  CHECK((rungs[1].width == 1280 && rungs[1].height == 720));
  CHECK((rungs[2].width == 854 && rungs[2].height == 480));
  CHECK((rungs[3].width == 640 && rungs[3].height == 360));
}

TEST_CASE("a portrait source names rungs by its short side, which is the width",
          "[transcode][ladder]") {
  auto rungs = PlanLadder({1080, 720}, 2160, 3840, 60);
  REQUIRE(rungs.size() == 2);
  CHECK((rungs[0].width == 1080 && rungs[0].height == 1920));
  CHECK((rungs[1].width == 720 && rungs[1].height == 1280));
}

TEST_CASE("rungs above the source are skipped, never upscaled", "[transcode][ladder]") {
  auto rungs = PlanLadder({1080, 720, 480, 360}, 640, 360, 25);
  REQUIRE(rungs.size() == 1);
  CHECK(rungs[0].name == "360p");
}

TEST_CASE("a source smaller than every rung gets one even-sized rung of its own size",
          "[transcode][ladder]") {
  auto rungs = PlanLadder({1080, 720, 480, 360}, 161, 121, 30);
  REQUIRE(rungs.size() == 1);
  CHECK(rungs[0].name == "120p");
  CHECK(rungs[0].height == 120);
  CHECK(rungs[0].width % 2 == 0);
  CHECK(rungs[0].width == 160);
}

TEST_CASE("every rung's dimensions are even and keep the display aspect", "[transcode][ladder]") {
  for (auto [w, h] : {std::pair{1920, 800}, {720, 1280}, {1000, 999}, {3840, 1600}, {321, 241}}) {
    for (const auto& r : PlanLadder({1080, 720, 480, 360}, w, h, 30)) {
      CHECK(r.width % 2 == 0);
      CHECK(r.height % 2 == 0);
      double src = static_cast<double>(w) / h, out = static_cast<double>(r.width) / r.height;
      CHECK(std::abs(src - out) / src < 0.02);
    }
  }
}

TEST_CASE("the H.264 level fits the frame size and frame rate", "[transcode][ladder]") {
  CHECK(H264LevelFor(1920, 1080, 30, 6000) == "4.0");
  CHECK(H264LevelFor(1920, 1080, 60, 9000) == "4.2");
  CHECK(H264LevelFor(1280, 720, 30, 3500) == "3.1");
  CHECK(H264LevelFor(1280, 720, 60, 5250) == "3.2");
  CHECK(H264LevelFor(640, 360, 30, 800) == "3.0");
  CHECK(H264LevelFor(1080, 1920, 60, 9000) == "4.2");
}

TEST_CASE("a ladder spec is parsed, sorted and checked", "[transcode][ladder]") {
  auto l = ParseLadder("360p,1080p,720p,720p");
  REQUIRE(l.ok());
  CHECK(*l == std::vector<int>{1080, 720, 360});
  CHECK_FALSE(ParseLadder("big").ok());
  CHECK_FALSE(ParseLadder("").ok());
  CHECK_FALSE(ParseLadder("99999p").ok());
}

TEST_CASE("a ladder with more rungs than a worker has channels is refused when parsed",
          "[transcode][ladder]") {
  std::string spec;
  for (int h = 100; h < 400; ++h) spec += std::to_string(h) + "p,";
  auto huge = ParseLadder(spec);
  REQUIRE_FALSE(huge.ok());
  CHECK(huge.status().code() == ErrorCode::kInvalidArgument);
  CHECK(huge.status().message().find("300 rungs") != std::string::npos);
  std::string fits;
  for (size_t i = 0; i < kMaxRungs; ++i) fits += std::to_string(100 + i) + "p,";
  auto ok = ParseLadder(fits + "100p");  // a repeated rung counts once
  REQUIRE(ok.ok());
  CHECK(ok->size() == kMaxRungs);
}
