// Exec jobs (scheduler/exec_job.h) on this machine's sandbox: text parts end at line ends
// whatever the part size, instances lost by their executor run again while a program that
// fails by itself does not, and tenants take turns at shared task slots.
#include "zerofarm/scheduler/exec_job.h"

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "sandboxed_worker.h"
#include "scratch_dir.h"
#include "wait_for.h"
#include "zerofarm/base/sha256.h"
#include "zerofarm/scheduler/task_slots.h"
#include "zerofarm/storage/store.h"

namespace fs = std::filesystem;
using namespace zerofarm;
using namespace zerofarm::scheduler;
using namespace std::chrono_literals;

namespace {

const fs::path kBusybox = "/bin/busybox";

std::string ReadWhole(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// A store holding busybox as a program and `text` as "input"; a stage running busybox `args`.
struct ExecFixture {
  explicit ExecFixture(const std::string& text) {
    auto made = test::ScratchDir::Create("exec-job");
    REQUIRE(made.ok());
    dir.emplace(std::move(*made));
    storage::Options o;
    o.dir = dir->path() / "store";
    o.block_size = 64 << 10;  // parts cross blocks too
    auto opened = storage::Store::Open(o);
    REQUIRE(opened.ok());
    store = std::move(*opened);
    const std::string program = ReadWhole(kBusybox);
    REQUIRE(store->PutObject("programs/busybox", program).ok());
    sha256 = Sha256Hex(program);
    REQUIRE(store->PutObject("data/input", text).ok());
    executor = MakeLocalExecutor(*store, test::SandboxedWorker(), "here", 2);
  }

  ExecStage Stage(std::vector<std::string> args) const {
    ExecStage s;
    s.program = "programs/busybox";
    s.program_sha256 = sha256;
    s.program_name = "busybox";
    s.args = std::move(args);
    return s;
  }

  ExecJobSpec Job(const std::string& id, std::vector<std::string> map_args, uint64_t part_bytes,
                  uint64_t text_bytes) const {
    ExecJobSpec spec;
    spec.id = id;
    spec.tenant = "t";
    spec.map = Stage(std::move(map_args));
    spec.inputs.push_back({"box/input", "data/input", text_bytes});
    spec.part_bytes = part_bytes;
    spec.output_object = [id](const std::string& instance) { return "out/" + id + "/" + instance; };
    return spec;
  }

  std::optional<test::ScratchDir> dir;
  std::unique_ptr<storage::Store> store;
  std::string sha256;
  std::unique_ptr<TaskExecutor> executor;
};

// Lines of every length from empty to far past a part, the last one without its newline.
std::string Text() {
  std::string text;
  uint64_t x = 99;
  for (int i = 0; i < 3000; ++i) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    const size_t len = (x >> 60) == 0 ? (x >> 40) % 200000 : (x >> 40) % 120;
    text +=
        "#" + std::to_string(i) + " " + std::string(len, static_cast<char>('a' + i % 26)) + "\n";
  }
  return text + "the last line has no newline";
}

}  // namespace

TEST_CASE("every line of a text goes whole to exactly one map instance, whatever the part size",
          "[scheduler][exec]") {
  if (!fs::exists(kBusybox)) {
    WARN("busybox-static is not installed (scripts/setup.sh installs it); skipping");
    return;
  }
  const std::string text = Text();
  ExecFixture f(text);
  for (uint64_t part : {uint64_t{65536}, uint64_t{100003}, uint64_t{1} << 20, uint64_t{8} << 20}) {
    INFO("part bytes " << part);
    const std::string id = "j" + std::to_string(part);
    ExecJobSpec spec = f.Job(id, {"cat"}, part, text.size());
    ExecProgress progress;
    std::atomic<bool> cancel{false};
    const Status s = RunExecJob(spec, *f.executor, cancel, &progress);
    INFO(s.ToString());
    REQUIRE(s.ok());
    const auto instances = progress.Snapshot();
    CHECK(instances.size() == (text.size() + part - 1) / part);
    std::string joined;
    for (const auto& i : instances) {
      CHECK(i.state == InstanceState::kDone);
      CHECK(i.verdict == "accepted");
      CHECK(i.exit_code == 0);
      auto out = f.store->GetObject(i.output);
      REQUIRE(out.ok());
      CHECK(out->size() == i.bytes_out);
      // Each output is whole lines: it starts where a line starts.
      if (!out->empty()) CHECK((joined.empty() || joined.back() == '\n'));
      joined += *out;
    }
    CHECK(joined.size() == text.size());
    CHECK(joined == text);
  }
}

namespace {

// Runs tasks on `inner`, but the first run of `flaky` fails as a lost node would.
class FlakyExecutor final : public TaskExecutor {
 public:
  FlakyExecutor(TaskExecutor& inner, std::string flaky) : inner_(inner), flaky_(std::move(flaky)) {}
  Result<TaskOutcome> Run(const TaskSpec& spec, const std::atomic<bool>& cancel,
                          const std::function<void(const std::string&)>& placed) override {
    runs_.fetch_add(1);
    if (spec.id.ends_with(flaky_) && !failed_.exchange(true))
      return Status::Error(ErrorCode::kUnavailable, "the node stopped answering");
    return inner_.Run(spec, cancel, placed);
  }
  int slots() const override { return inner_.slots(); }
  int runs() const { return runs_.load(); }

 private:
  TaskExecutor& inner_;
  const std::string flaky_;
  std::atomic<bool> failed_{false};
  std::atomic<int> runs_{0};
};

}  // namespace

TEST_CASE("an instance its executor lost runs again; a program that fails by itself does not",
          "[scheduler][exec]") {
  if (!fs::exists(kBusybox)) {
    WARN("busybox-static is not installed (scripts/setup.sh installs it); skipping");
    return;
  }
  std::string text;
  for (int i = 0; i < 20000; ++i) text += "line " + std::to_string(i) + (i % 3 ? "\n" : " ERROR\n");
  ExecFixture f(text);

  FlakyExecutor flaky(*f.executor, "/map-00001");
  ExecJobSpec spec = f.Job("lost", {"grep", "-c", "ERROR"}, 65536, text.size());
  spec.map.ok_exit_codes = {0, 1};
  spec.reduce = f.Stage({"awk", "{s += $1} END {print s}"});
  ExecProgress progress;
  std::atomic<bool> cancel{false};
  REQUIRE(RunExecJob(spec, flaky, cancel, &progress).ok());
  const auto instances = progress.Snapshot();
  CHECK(instances.at(1).attempts == 2);
  CHECK(instances.at(0).attempts == 1);
  CHECK(flaky.runs() == static_cast<int>(instances.size()) + 1);
  auto result = f.store->GetObject(instances.back().output);
  REQUIRE(result.ok());
  CHECK(*result == std::to_string(20000 / 3 + 1) + "\n");

  // grep -c exits 1 on a part without a match: unless the stage accepts it, the job fails at
  // once, naming the instance, and nothing runs again.
  ExecJobSpec strict = f.Job("strict", {"grep", "-c", "no such text"}, 65536, text.size());
  ExecProgress strict_progress;
  const Status failed = RunExecJob(strict, *f.executor, cancel, &strict_progress);
  CHECK(failed.code() == ErrorCode::kProgramFailed);
  CHECK(failed.message().find("map-0000") != std::string::npos);
  CHECK(failed.message().find("exited with code 1") != std::string::npos);
  for (const auto& i : strict_progress.Snapshot()) CHECK(i.attempts <= 1);
}

TEST_CASE("tenants take turns at shared task slots, after the heads of videos",
          "[scheduler][exec]") {
  TaskSlots slots(1);
  slots.Acquire(1, "busy");  // the one slot is taken while the waiters queue up
  std::mutex mu;
  std::vector<std::string> order;
  std::vector<std::jthread> waiters;
  auto enqueue = [&](int rank, const std::string& who, const std::string& tenant) {
    const int before = slots.waiting();
    waiters.emplace_back([&, rank, who, tenant] {
      slots.Acquire(rank, tenant);
      {
        std::lock_guard lock(mu);
        order.push_back(who);
      }
      slots.Release();
    });
    REQUIRE(test::WaitFor([&] { return slots.waiting() == before + 1; }, 10s));
  };
  for (int i = 0; i < 4; ++i) enqueue(1, "a" + std::to_string(i), "alice");
  enqueue(1, "b0", "bob");
  enqueue(0, "head", "carol");  // the head of a video passes everything
  slots.Release();
  waiters.clear();  // joins
  CHECK(order == std::vector<std::string>{"head", "a0", "b0", "a1", "a2", "a3"});
}
