// The job's progress counts what it says: video segments done of known, never past them, and
// the audio track (one task, encoded whole) apart. Progress lines, the API and the page all
// read these counts.
#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <map>

#include "corpus.h"
#include "sandboxed_worker.h"
#include "test_pattern.h"
#include "zerofarm/scheduler/transcode_job.h"
#include "zerofarm/storage/store.h"
#include "zerofarm/transcode/file_source.h"

namespace fs = std::filesystem;
using namespace zerofarm;

TEST_CASE("progress counts video segments and the audio track apart, never past the total",
          "[scheduler][progress][slow]") {
  auto scratch = test::ScratchDir::Create("progress");
  REQUIRE(scratch.ok());
  auto made = test::MakeTestPattern(scratch->path(), 6);
  REQUIRE(made.ok());
  const fs::path clip = *made;

  const auto worker = test::SandboxedWorker();
  scheduler::JobOptions opt;
  opt.ladder = {1080, 180};  // 1080p is above the source: only 180p is made
  opt.chunk_seconds = 2;
  opt.task_slots = 2;
  opt.worker = worker;

  storage::Options so;
  so.dir = scratch->path() / "store";
  auto store = storage::Store::Open(so);
  REQUIRE(store.ok());
  auto source = transcode::FileSource::Open(clip.string());
  REQUIRE(source.ok());

  std::vector<scheduler::JobProgress> seen;
  auto report =
      scheduler::RunTranscodeJob(**store, **source, "job", opt, scratch->path() / "out",
                                 [&](const scheduler::JobProgress& p) { seen.push_back(p); });
  INFO(report.status().ToString());
  REQUIRE(report.ok());
  REQUIRE_FALSE(seen.empty());

  for (const auto& p : seen) {
    CHECK(p.tasks_done <= p.tasks_known);
    size_t video_done = 0;
    for (const auto& t : p.tasks)
      if (t.index >= 0 && t.state == storage::TaskState::kDone) ++video_done;
    CHECK(p.tasks_done == video_done);  // the count is of the segments listed as done
    if (p.source_known) {
      CHECK(p.has_audio);
      CHECK(p.rungs == std::vector<std::string>{"180p"});
    }
  }
  const auto& last = seen.back();
  CHECK(last.phase == "done");
  CHECK(last.ingest_done);
  CHECK(last.tasks_known == 3);
  CHECK(last.tasks_done == 3);
  CHECK(last.audio_done);
  CHECK(last.media_seconds_done == Approx(6.0).margin(0.05));
}

TEST_CASE("a finished segment is published on its planned end without waiting for the next one",
          "[scheduler][progress][slow]") {
  auto scratch = test::ScratchDir::Create("publish-planned");
  REQUIRE(scratch.ok());
  auto made = test::MakeTestPattern(scratch->path(), 6);
  REQUIRE(made.ok());

  const auto worker = test::SandboxedWorker();
  scheduler::JobOptions opt;
  opt.ladder = {180};
  opt.chunk_seconds = 2;
  opt.task_slots = 1;  // segments finish one after the other, head first
  opt.worker = worker;

  storage::Options so;
  so.dir = scratch->path() / "store";
  auto store = storage::Store::Open(so);
  REQUIRE(store.ok());
  auto source = transcode::FileSource::Open(made->string());
  REQUIRE(source.ok());

  // Segments finished in a row from the start, as a progress report lists them.
  auto done_in_a_row = [](const scheduler::JobProgress& p) {
    std::map<int, bool> done;
    for (const auto& t : p.tasks)
      if (t.index >= 0) done[t.index] = t.state == storage::TaskState::kDone;
    size_t n = 0;
    while (done[static_cast<int>(n)]) ++n;
    return n;
  };
  bool published_alone = false;  // a segment listed while the one after it was not done
  std::vector<size_t> published;
  auto report = scheduler::RunTranscodeJob(
      **store, **source, "job", opt, scratch->path() / "out", [&](const scheduler::JobProgress& p) {
        published.push_back(p.segments_published);
        if (p.phase == "done" || p.segments_published == 0) return;
        CHECK(p.segments_published <= done_in_a_row(p));
        if (p.segments_published == done_in_a_row(p) && p.segments_published < p.tasks_known)
          published_alone = true;
      });
  INFO(report.status().ToString());
  REQUIRE(report.ok());
  CHECK(published_alone);
  CHECK(std::is_sorted(published.begin(), published.end()));
  CHECK(published.back() == 3);

  // The playlist lists each segment with the length it has: 2 s each, on the plan's grid.
  std::ifstream in(scratch->path() / "out" / "180p" / "index.m3u8");
  const std::string playlist(std::istreambuf_iterator<char>(in), {});
  INFO(playlist);
  CHECK(playlist.find("#EXTINF:2.000") != std::string::npos);
  CHECK(playlist.find("#EXT-X-ENDLIST") != std::string::npos);
}
