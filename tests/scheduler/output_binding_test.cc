// Task outputs are bound to the run that wrote them: the stitcher publishes an object only if
// it holds exactly the bytes the task's chosen copy reported. The tasks run the real worker in
// the sandbox through the real local executor; the fault (a stale or foreign part under a
// task's output name, as a losing backup copy or a misbehaving peer could leave) is injected
// between the task's end and the stitch.
#include <catch2/catch.hpp>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>

#include "corpus.h"
#include "sandboxed_worker.h"
#include "test_pattern.h"
#include "zerofarm/scheduler/task_executor.h"
#include "zerofarm/scheduler/transcode_job.h"
#include "zerofarm/storage/content_hash.h"
#include "zerofarm/storage/store.h"
#include "zerofarm/transcode/file_source.h"
#include "zerofarm/transcode/object_names.h"
#include "zerofarm/transcode/stitcher.h"

namespace fs = std::filesystem;
using namespace zerofarm;

namespace {

// The local executor, except that once, after segment 1's task has ended, segment 1's output
// is overwritten with segment 0's (a well-formed stream of the right length: only the
// checksum tells them apart).
class SwapAfterRun final : public scheduler::TaskExecutor {
 public:
  SwapAfterRun(storage::Store& store, std::unique_ptr<scheduler::TaskExecutor> inner)
      : store_(store), inner_(std::move(inner)) {}

  Result<scheduler::TaskOutcome> Run(
      const scheduler::TaskSpec& spec, const std::atomic<bool>& cancel,
      const std::function<void(const std::string&)>& placed) override {
    auto outcome = inner_->Run(spec, cancel, placed);
    std::lock_guard lock(mu_);
    ++runs_[spec.outputs.empty() ? "" : spec.outputs.front().object];
    if (outcome.ok()) done_.push_back(spec);
    const std::string victim = transcode::SegmentObjectName("jobs/job/", "180p", 1);
    const std::string donor = transcode::SegmentObjectName("jobs/job/", "180p", 0);
    bool have_donor = false, have_victim = false;
    for (const auto& s : done_)
      for (const auto& o : s.outputs) {
        have_donor |= o.object == donor;
        have_victim |= o.object == victim;
      }
    if (!swapped_ && have_donor && have_victim) {
      auto bytes = store_.GetObject(donor);
      REQUIRE(bytes.ok());
      REQUIRE(store_.PutObject(victim, *bytes).ok());
      swapped_ = true;
    }
    return outcome;
  }
  int slots() const override { return inner_->slots(); }

  int RunsOf(const std::string& object) {
    std::lock_guard lock(mu_);
    return runs_[object];
  }
  bool swapped() {
    std::lock_guard lock(mu_);
    return swapped_;
  }

 private:
  storage::Store& store_;
  std::unique_ptr<scheduler::TaskExecutor> inner_;
  std::mutex mu_;
  std::vector<scheduler::TaskSpec> done_;
  std::map<std::string, int> runs_;
  bool swapped_ = false;
};

}  // namespace

TEST_CASE("a task output holding other bytes than its task reported is never published",
          "[scheduler][slow]") {
  auto scratch = test::ScratchDir::Create("binding");
  REQUIRE(scratch.ok());
  const fs::path& dir = scratch->path();
  auto clip = test::MakeTestPattern(dir, 6);
  REQUIRE(clip.ok());

  const auto worker = test::SandboxedWorker();
  storage::Options so;
  so.dir = dir / "store";
  auto store = storage::Store::Open(so);
  REQUIRE(store.ok());
  auto swapping = std::make_shared<SwapAfterRun>(
      **store, scheduler::MakeLocalExecutor(**store, worker, "here", 1));

  scheduler::JobOptions opt;
  opt.ladder = {180};
  opt.chunk_seconds = 2;
  opt.task_slots = 1;
  opt.executor = swapping;
  auto source = transcode::FileSource::Open(clip->string());
  REQUIRE(source.ok());
  auto report = scheduler::RunTranscodeJob(**store, **source, "job", opt, dir / "out", nullptr);
  INFO(report.status().ToString());
  REQUIRE(report.ok());
  REQUIRE(swapping->swapped());

  // The swapped part was refused and its task ran a second time; what was published is that
  // run's output, as its checksum in the report says, not segment 0's bytes.
  auto j = nlohmann::json::parse(scheduler::ToJson(*report));
  CHECK(j["outputs_rejected"] == 1);
  const std::string victim = transcode::SegmentObjectName("jobs/job/", "180p", 1);
  const std::string donor = transcode::SegmentObjectName("jobs/job/", "180p", 0);
  CHECK(swapping->RunsOf(victim) == 2);
  auto HashOf = [&](const std::string& object) {
    auto bytes = (*store)->GetObject(object);
    REQUIRE(bytes.ok());
    storage::ContentHash h;
    h.Update(*bytes);
    return storage::ContentHashHex(h.value());
  };
  REQUIRE(j["chunks"].size() == 3);
  CHECK(j["chunks"][1]["outputs"][0]["object"] == victim);
  CHECK(j["chunks"][1]["outputs"][0]["xxh64"] == HashOf(victim));
  CHECK(HashOf(victim) != HashOf(donor));
  CHECK(fs::exists(dir / "out" / "master.m3u8"));
}
