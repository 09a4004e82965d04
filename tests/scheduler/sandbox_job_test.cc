// The local job engine with the product's worker: the static zerofarm-worker, validated and
// run in the sandbox for every task.
#include <catch2/catch.hpp>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "corpus.h"
#include "sandboxed_worker.h"
#include "test_pattern.h"
#include "zerofarm/scheduler/transcode_job.h"
#include "zerofarm/storage/store.h"
#include "zerofarm/transcode/file_source.h"

namespace fs = std::filesystem;
using namespace zerofarm;

namespace {

fs::path MakeClip(const fs::path& dir, int seconds, const std::string& size = "320x180") {
  auto clip = test::MakeTestPattern(dir, seconds, size);
  REQUIRE(clip.ok());
  return *clip;
}

using test::SandboxedWorker;

Result<scheduler::JobReport> RunJob(const fs::path& dir, const fs::path& clip,
                                    const scheduler::JobOptions& options,
                                    const scheduler::ProgressFn& progress = nullptr) {
  storage::Options so;
  so.dir = dir / "store";
  auto store = storage::Store::Open(so);
  REQUIRE(store.ok());
  auto source = transcode::FileSource::Open(clip.string());
  REQUIRE(source.ok());
  return scheduler::RunTranscodeJob(**store, **source, "job", options, dir / "out", progress);
}

scheduler::JobOptions SmallJob() {
  scheduler::JobOptions opt;
  opt.ladder = {180};
  opt.chunk_seconds = 2;
  opt.task_slots = 1;
  opt.max_retries = 2;
  return opt;
}

}  // namespace

TEST_CASE("every task of a job runs in the sandbox and the report says so", "[scheduler][slow]") {
  auto scratch = test::ScratchDir::Create("sandbox-job");
  REQUIRE(scratch.ok());
  auto clip = MakeClip(scratch->path(), 4);
  auto opt = SmallJob();
  opt.worker = SandboxedWorker(uint64_t{1} << 30);
  std::vector<scheduler::TaskProgress> last_tasks;
  auto report = RunJob(scratch->path(), clip, opt,
                       [&](const scheduler::JobProgress& p) { last_tasks = p.tasks; });
  INFO(report.status().ToString());
  REQUIRE(report.ok());
  auto r = nlohmann::json::parse(scheduler::ToJson(*report));
  CHECK(r["worker"]["isolation"] == "sandbox");
  CHECK(r["worker"]["sha256"].get<std::string>().size() == 64);
  REQUIRE(r["chunks"].size() == 2);
  for (const auto& c : r["chunks"]) {
    CHECK(c["isolation"] == "sandbox");
    CHECK(c["sandbox"]["spawn_ms"].get<double>() > 0);
    CHECK(c["sandbox"].contains("layers_missing"));
    CHECK(c["frames"].get<int>() == 50);
  }
  CHECK(r["audio"]["isolation"] == "sandbox");
  // The farm view's last picture: both segments and the audio track done, audio last.
  REQUIRE(last_tasks.size() == 3);
  CHECK(last_tasks.back().index == -1);
  for (const auto& t : last_tasks) {
    CHECK(t.state == storage::TaskState::kDone);
    CHECK(t.attempts == 1);
    CHECK_FALSE(t.node.empty());
  }
  CHECK(fs::exists(scratch->path() / "out" / "master.m3u8"));
}

TEST_CASE("a worker over the sandbox's memory limit fails the job as a sandbox refusal, once",
          "[scheduler][slow]") {
  auto scratch = test::ScratchDir::Create("sandbox-job");
  REQUIRE(scratch.ok());
  // Encoding 1080p needs about 175 MB; the limit is 64 MiB.
  auto clip = MakeClip(scratch->path(), 2, "1920x1080");
  auto opt = SmallJob();
  opt.ladder = {1080};
  opt.worker = SandboxedWorker(uint64_t{64} << 20);
  std::vector<scheduler::TaskProgress> last_tasks;
  auto report = RunJob(scratch->path(), clip, opt,
                       [&](const scheduler::JobProgress& p) { last_tasks = p.tasks; });
  REQUIRE_FALSE(report.ok());
  INFO(report.status().ToString());
  CHECK(report.status().code() == ErrorCode::kSandboxRefused);
  CHECK(report.status().message().find("memory") != std::string::npos);
  CHECK(opt.worker->sandbox_refusals() >= 1);
  // Not retried: the same input would meet the same limit.
  for (const auto& t : last_tasks) CHECK(t.attempts <= 1);
}

TEST_CASE("cancelling a job stops it with the code cancelled", "[scheduler][slow]") {
  auto scratch = test::ScratchDir::Create("sandbox-job");
  REQUIRE(scratch.ok());
  auto clip = MakeClip(scratch->path(), 8);
  auto opt = SmallJob();
  opt.worker = SandboxedWorker(uint64_t{1} << 30);
  opt.cancel = std::make_shared<std::atomic<bool>>(false);
  size_t done_when_cancelled = 0;
  auto report = RunJob(scratch->path(), clip, opt, [&](const scheduler::JobProgress& p) {
    if (p.tasks_done >= 1 && !opt.cancel->load()) {
      done_when_cancelled = p.tasks_done;
      opt.cancel->store(true);
    }
  });
  REQUIRE_FALSE(report.ok());
  CHECK(report.status().code() == ErrorCode::kCancelled);
  CHECK(done_when_cancelled >= 1);
  CHECK_FALSE(fs::exists(scratch->path() / "out" / "master.m3u8"));
}

TEST_CASE("a dynamically linked worker is refused before any task runs", "[scheduler]") {
  scheduler::WorkerRuntimeOptions wo;
  wo.path = "/bin/sh";  // dynamic: the validator rejects it
  auto runtime = scheduler::WorkerRuntime::Load(wo);
  REQUIRE_FALSE(runtime.ok());
  CHECK(runtime.status().code() == ErrorCode::kWorkerRejected);
  CHECK(runtime.status().message().find("dynamic") != std::string::npos);
}
