// The job's progress counts what it says: video segments done of known, never past them, and
// the audio track (one task, encoded whole) apart. Progress lines, the API and the page all
// read these counts.
#include <catch2/catch.hpp>
#include <filesystem>

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
