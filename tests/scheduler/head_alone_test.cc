// JobOptions::head_alone_threads (a farm): the first video segment runs alone with the node's
// cores, and no other video task of the job starts before it has ended. The tasks run the
// real worker in the sandbox through the local executor, which has slots for all of them.
#include <catch2/catch.hpp>
#include <filesystem>
#include <mutex>

#include "corpus.h"
#include "sandboxed_worker.h"
#include "test_pattern.h"
#include "zerofarm/scheduler/task_executor.h"
#include "zerofarm/scheduler/transcode_job.h"
#include "zerofarm/storage/store.h"
#include "zerofarm/transcode/file_source.h"
#include "zerofarm/transcode/object_names.h"

namespace fs = std::filesystem;
using namespace zerofarm;

namespace {

// The local executor, recording in what order the video tasks start and end.
class Recorder final : public scheduler::TaskExecutor {
 public:
  explicit Recorder(std::unique_ptr<scheduler::TaskExecutor> inner) : inner_(std::move(inner)) {}

  struct Event {
    bool start;
    std::string output;  // the task's first output: its segment of the one rung
    int threads;
  };

  Result<scheduler::TaskOutcome> Run(
      const scheduler::TaskSpec& spec, const std::atomic<bool>& cancel,
      const std::function<void(const std::string&)>& placed) override {
    const bool video = !spec.light && !spec.outputs.empty();
    if (video) Note({true, spec.outputs.front().object, spec.threads});
    auto outcome = inner_->Run(spec, cancel, placed);
    if (video) Note({false, spec.outputs.front().object, spec.threads});
    return outcome;
  }
  int slots() const override { return inner_->slots(); }

  std::vector<Event> events() {
    std::lock_guard lock(mu_);
    return events_;
  }

 private:
  void Note(Event e) {
    std::lock_guard lock(mu_);
    events_.push_back(std::move(e));
  }
  std::unique_ptr<scheduler::TaskExecutor> inner_;
  std::mutex mu_;
  std::vector<Event> events_;
};

}  // namespace

TEST_CASE("on a farm the first segment runs alone with the node's cores, before the others",
          "[scheduler][slow]") {
  auto scratch = test::ScratchDir::Create("head-alone");
  REQUIRE(scratch.ok());
  const fs::path& dir = scratch->path();
  auto clip = test::MakeTestPattern(dir, 8);
  REQUIRE(clip.ok());

  storage::Options so;
  so.dir = dir / "store";
  auto store = storage::Store::Open(so);
  REQUIRE(store.ok());
  auto recorder = std::make_shared<Recorder>(
      scheduler::MakeLocalExecutor(**store, test::SandboxedWorker(), "here", 4));

  scheduler::JobOptions opt;
  opt.ladder = {180};
  opt.chunk_seconds = 2;
  opt.task_slots = 4;
  opt.executor = recorder;
  opt.head_alone_threads = 2;
  auto source = transcode::FileSource::Open(clip->string());
  REQUIRE(source.ok());
  auto report = scheduler::RunTranscodeJob(**store, **source, "job", opt, dir / "out", nullptr);
  INFO(report.status().ToString());
  REQUIRE(report.ok());

  const auto events = recorder->events();
  const std::string head = transcode::SegmentObjectName("jobs/job/", "180p", 0);
  REQUIRE(events.size() >= 8);  // four segments or more, each started and ended
  // Segment 0 starts first and ends before any other video task starts, with two threads.
  CHECK(events[0].start);
  CHECK(events[0].output == head);
  CHECK(events[0].threads == 2);
  CHECK_FALSE(events[1].start);
  CHECK(events[1].output == head);
  for (size_t i = 2; i < events.size(); ++i) CHECK(events[i].output != head);
  CHECK(fs::exists(dir / "out" / "master.m3u8"));
}
