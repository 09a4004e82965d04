// The local job engine: retries of failed and hung workers, refusal to retry input faults.
// The worker is the real zerofarm-worker; faults are injected at the process boundary by a
// wrapper script that misbehaves on chosen invocations and otherwise runs the real worker. A
// shell script cannot run in the sandbox (it is not a static program), so these tests use the
// runtime's development mode, Isolation::kUnsandboxed; sandbox_job_test.cc covers the sandbox.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "clip_factory.h"
#include "corpus.h"
#include "run_command.h"
#include "test_pattern.h"
#include "zerofarm/scheduler/transcode_job.h"
#include "zerofarm/storage/store.h"
#include "zerofarm/transcode/file_source.h"

namespace fs = std::filesystem;
using namespace zerofarm;

namespace {

// A wrapper around the real worker: on the invocation numbers listed in `misbehave` of tasks of
// `kind` ("video" or "audio") it runs `action` (a shell snippet) instead. Those invocations are
// counted in "count" (with one slot video tasks come one at a time); the others are left alone.
fs::path WrapWorker(const fs::path& dir, const std::string& misbehave, const std::string& action,
                    const std::string& kind = "video") {
  fs::path script = dir / "worker.sh";
  std::ofstream out(script);
  out << "#!/bin/sh\n"
      << "if [ \"$1\" = " << kind << " ]; then\n"
      << "n=$(cat '" << (dir / "count").string() << "' 2>/dev/null || echo 0)\n"
      << "n=$((n+1)); echo $n > '" << (dir / "count").string() << "'\n"
      << "case \" " << misbehave << " \" in *\" $n \"*) " << action << " ;; esac\n"
      << "fi\n"
      << "exec '" << ZF_WORKER_BIN << "' \"$@\"\n";
  out.close();
  ::chmod(script.c_str(), 0755);
  return script;
}

int Invocations(const fs::path& dir) {
  std::ifstream in(dir / "count");
  int n = 0;
  in >> n;
  return n;
}

fs::path MakeClip(const fs::path& dir) {
  auto clip = test::MakeTestPattern(dir, 4);
  REQUIRE(clip.ok());
  return *clip;
}

struct JobRun {
  Result<scheduler::JobReport> report = Status::Error(ErrorCode::kInternal, "not run");
};

JobRun Run(const fs::path& dir, const fs::path& input, const fs::path& worker,
           std::chrono::seconds timeout_base = std::chrono::seconds(60), int max_retries = 3,
           const scheduler::ProgressFn& progress = nullptr) {
  storage::Options so;
  so.dir = dir / "store";
  auto store = storage::Store::Open(so);
  REQUIRE(store.ok());
  auto source = transcode::FileSource::Open(input.string());
  REQUIRE(source.ok());
  scheduler::JobOptions opt;
  opt.ladder = {180};
  opt.chunk_seconds = 2;
  opt.task_slots = 1;
  scheduler::WorkerRuntimeOptions wo;
  wo.path = worker.string();
  wo.isolation = scheduler::Isolation::kUnsandboxed;
  auto runtime = scheduler::WorkerRuntime::Load(wo);
  REQUIRE(runtime.ok());
  opt.worker = *runtime;
  opt.task_timeout_base = timeout_base;
  opt.task_timeout_per_second = 0;
  opt.max_retries = max_retries;
  JobRun run;
  run.report = scheduler::RunTranscodeJob(**store, **source, "job", opt, dir / "out", progress);
  return run;
}

}  // namespace

TEST_CASE("a worker killed by a signal is retried and the job completes", "[scheduler][slow]") {
  auto scratch = test::ScratchDir::Create("scheduler");
  REQUIRE(scratch.ok());
  const fs::path& dir = scratch->path();
  auto clip = MakeClip(dir);
  auto worker = WrapWorker(dir, "1", "kill -9 $$");
  auto run = Run(dir, clip, worker);
  REQUIRE(run.report.ok());
  auto report = nlohmann::json::parse(scheduler::ToJson(*run.report));
  // Two segments, plus the one retried attempt.
  CHECK(Invocations(dir) == 3);
  int attempts = 0;
  for (const auto& c : report["chunks"]) attempts += c["attempts"].get<int>();
  attempts += report["audio"]["attempts"].get<int>();
  CHECK(attempts == 4);
  CHECK(fs::exists(dir / "out" / "master.m3u8"));
}

TEST_CASE("an audio worker killed mid-track is retried on the stored track and the job completes",
          "[scheduler][slow]") {
  auto scratch = test::ScratchDir::Create("scheduler");
  REQUIRE(scratch.ok());
  const fs::path& dir = scratch->path();
  auto clip = MakeClip(dir);
  // The first attempt reads the track while ingest stores it, and dies after 1 s of it.
  auto worker = WrapWorker(dir, "1", "head -c 200000 > /dev/null; kill -9 $$", "audio");
  auto run = Run(dir, clip, worker);
  INFO(run.report.status().ToString());
  REQUIRE(run.report.ok());
  auto report = nlohmann::json::parse(scheduler::ToJson(*run.report));
  CHECK(Invocations(dir) == 2);
  CHECK(report["audio"]["attempts"] == 2);
  CHECK(report["audio_seconds"].get<double>() == Approx(4.0).margin(0.05));
  CHECK(fs::exists(dir / "out" / "master.m3u8"));
}

TEST_CASE("a hung worker is killed at its deadline and the task is retried", "[scheduler][slow]") {
  auto scratch = test::ScratchDir::Create("scheduler");
  REQUIRE(scratch.ok());
  const fs::path& dir = scratch->path();
  auto clip = MakeClip(dir);
  auto worker = WrapWorker(dir, "1", "exec sleep 600");
  auto run = Run(dir, clip, worker, std::chrono::seconds(3));
  REQUIRE(run.report.ok());
  CHECK(Invocations(dir) == 3);
}

TEST_CASE("a worker failing every attempt fails the job with the reason after four attempts",
          "[scheduler][slow]") {
  auto scratch = test::ScratchDir::Create("scheduler");
  REQUIRE(scratch.ok());
  const fs::path& dir = scratch->path();
  auto clip = MakeClip(dir);
  auto worker = WrapWorker(dir, "1 2 3 4 5 6 7 8", "exit 3");
  auto run = Run(dir, clip, worker);
  REQUIRE_FALSE(run.report.ok());
  CHECK(run.report.status().code() == ErrorCode::kWorkerFailed);
  CHECK_THAT(run.report.status().message(), Catch::Contains("after 4 attempts"));
  CHECK(Invocations(dir) == 4);
  CHECK_FALSE(fs::exists(dir / "out" / "master.m3u8"));
}

TEST_CASE("a failed job marks the tasks it never ran as cancelled, not queued",
          "[scheduler][slow]") {
  auto scratch = test::ScratchDir::Create("scheduler");
  REQUIRE(scratch.ok());
  const fs::path& dir = scratch->path();
  auto clip = MakeClip(dir);
  auto worker = WrapWorker(dir, "1", "exit 3");
  scheduler::JobProgress last;
  auto run = Run(dir, clip, worker, std::chrono::seconds(60), /*max_retries=*/0,
                 [&last](const scheduler::JobProgress& p) { last = p; });
  REQUIRE_FALSE(run.report.ok());
  CHECK(Invocations(dir) == 1);  // one worker per slot: the other segment never started
  // Two segments and the audio track: one failed, one never ran; the audio track runs beside
  // the segments, so it finished or never began.
  REQUIRE(last.tasks.size() == 3);
  std::map<std::string, int> states;
  for (const auto& t : last.tasks)
    if (t.index >= 0) ++states[std::string(storage::TaskStateName(t.state))];
  CHECK(states["failed"] == 1);
  CHECK(states["cancelled"] == 1);
  CHECK(states["queued"] == 0);
  CHECK((last.tasks.back().state == storage::TaskState::kDone ||
         last.tasks.back().state == storage::TaskState::kCancelled));
  CHECK(last.tasks_done == 0);
}

TEST_CASE("a failed job stops its running audio task instead of waiting for it",
          "[scheduler][slow]") {
  auto scratch = test::ScratchDir::Create("scheduler");
  REQUIRE(scratch.ok());
  const fs::path& dir = scratch->path();
  auto clip = MakeClip(dir);
  // The audio task stalls for 20 s before it would mark its end and encode; the first video
  // task fails at once.
  const fs::path marker = dir / "audio-went-on";
  const fs::path script = dir / "worker.sh";
  {
    std::ofstream out(script);
    out << "#!/bin/sh\n"
        << "if [ \"$1\" = audio ]; then sleep 20; touch '" << marker.string() << "'; fi\n"
        << "if [ \"$1\" = video ]; then exit 3; fi\n"
        << "exec '" << ZF_WORKER_BIN << "' \"$@\"\n";
  }
  ::chmod(script.c_str(), 0755);
  scheduler::JobProgress last;
  auto run = Run(dir, clip, script, std::chrono::seconds(60), /*max_retries=*/0,
                 [&last](const scheduler::JobProgress& p) { last = p; });
  REQUIRE_FALSE(run.report.ok());
  INFO(run.report.status().message());
  CHECK_THAT(run.report.status().message(), Catch::Contains("exit"));
  // The job answered while the audio task still slept: it was stopped, not waited for.
  CHECK_FALSE(fs::exists(marker));
  REQUIRE(!last.tasks.empty());
  CHECK(last.tasks.back().index < 0);
  CHECK(last.tasks.back().state == storage::TaskState::kCancelled);
}

TEST_CASE("an input the worker cannot decode fails at once, without retries", "[scheduler][slow]") {
  auto scratch = test::ScratchDir::Create("scheduler");
  REQUIRE(scratch.ok());
  const fs::path& dir = scratch->path();
  // Valid container and headers, but every video packet is noise.
  auto made = test::MakeCachedClip(
      "noise.mkv", {"-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25:duration=2", "-c:v",
                    "libx264", "-bsf:v", "noise=amount=-1", "-bsf:v", "noise=dropamount=0"});
  INFO(made.status().ToString());
  REQUIRE(made.ok());
  const fs::path clip = *made;
  auto worker = WrapWorker(dir, "", "true");
  auto run = Run(dir, clip, worker);
  REQUIRE_FALSE(run.report.ok());
  CHECK(run.report.status().code() == ErrorCode::kUndecodable);
  CHECK(Invocations(dir) == 1);
}
