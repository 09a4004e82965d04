// Tasks on a storage node: RUN_TASK, TASK_STATUS and CANCEL_TASK against a NodeServer run in
// this process, whose task handler (its extension point) is a lambda of each test.
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>

#include "cluster_support.h"
#include "zerofarm/storage/cluster_client.h"
#include "zerofarm/storage/node_protocol.h"
#include "zerofarm/storage/node_server.h"
#include "zerofarm/storage/ring.h"

namespace zerofarm::test {
namespace {

using namespace std::chrono_literals;
using storage::Op;
using storage::Reply;
using storage::Request;
using storage::TaskState;

// One NodeServer (a one-node ring) served on a thread of the test; stopped and joined on
// destruction.
class InProcessNode {
 public:
  InProcessNode(const std::string& label, uint32_t task_slots, storage::TaskHandler handler,
                std::chrono::milliseconds retention = 30min)
      : scratch_(Scratch(label)), endpoint_("tcp://127.0.0.1:" + std::to_string(FreePort())) {
    storage::RingOptions ring_options;
    ring_options.part_power = 4;
    ring_options.replicas = 1;
    auto ring = storage::Ring::Build(ring_options, {storage::RingNode{0, endpoint_, "z0", 1.0}});
    REQUIRE(ring.ok());
    ring_ = std::move(*ring);
    storage::NodeOptions options;
    options.data_dir = (scratch_.path() / "node").string();
    options.bind = endpoint_;
    options.request_threads = 2;
    options.replicate_interval = 0ms;
    options.audit_bytes_per_second = 0;
    options.peer_timeout = 5s;
    options.task_slots = task_slots;
    options.task_handler = std::move(handler);
    options.task_retention = retention;
    auto key = storage::FarmKey::Generate();
    REQUIRE(key.ok());
    options.key = *key;
    auto server = storage::NodeServer::Create(options, *ring_);
    INFO(server.status().ToString());
    REQUIRE(server.ok());
    server_ = std::move(*server);
    thread_ = std::thread([this] { run_status_ = server_->Run(); });
    storage::ClusterOptions client_options;
    client_options.heartbeats = false;
    client_options.request_timeout = 10s;
    client_options.key = *key;
    auto client = storage::ClusterClient::Create(*ring_, client_options);
    REQUIRE(client.ok());
    client_ = std::move(*client);
  }
  ~InProcessNode() { (void)Stop(); }
  InProcessNode(const InProcessNode&) = delete;
  InProcessNode& operator=(const InProcessNode&) = delete;

  // Stops the node and waits for Run() to return (it joins the task threads); its status.
  Status Stop() {
    if (thread_.joinable()) {
      server_->Stop();
      thread_.join();
    }
    return run_status_;
  }

  Reply Call(const Request& request) {
    auto reply = client_->Call(0, request);
    INFO(reply.status().ToString());
    REQUIRE(reply.ok());
    return std::move(*reply);
  }

  Reply Run(const std::string& task_id, const std::string& spec, bool rerun = false,
            bool light = false) {
    Request r;
    r.op = Op::kRunTask;
    r.task_id = task_id;
    r.task = spec;
    r.rerun = rerun;
    r.light = light;
    return Call(r);
  }

  Reply Ask(Op op, const std::string& task_id) {
    Request r;
    r.op = op;
    r.task_id = task_id;
    return Call(r);
  }

  // Waits until the task is no longer running; its last TASK_STATUS reply.
  Reply AwaitFinished(const std::string& task_id) {
    Reply last;
    const bool finished = WaitFor(
                              [&] {
                                last = Ask(Op::kTaskStatus, task_id);
                                return last.ok() && last.task_state != TaskState::kRunning;
                              },
                              20s)
                              .has_value();
    INFO("task " << task_id << ": " << last.code_name() << " "
                 << (last.task_state ? storage::TaskStateName(*last.task_state) : "none"));
    REQUIRE(finished);
    return last;
  }

  storage::NodeLoad Load() {
    Request ping;
    ping.op = Op::kPing;
    Reply reply = Call(ping);
    REQUIRE(reply.ok());
    REQUIRE(reply.load);
    return *reply.load;
  }

 private:
  static ScratchDir Scratch(const std::string& label) {
    auto dir = ScratchDir::Create(label);
    REQUIRE(dir.ok());
    return std::move(*dir);
  }

  ScratchDir scratch_;
  std::string endpoint_;
  std::optional<storage::Ring> ring_;
  std::unique_ptr<storage::NodeServer> server_;
  std::thread thread_;
  zerofarm::Status run_status_;
  std::unique_ptr<storage::ClusterClient> client_;
};

// A gate a handler waits at until the test opens it (or the task is cancelled).
struct Gate {
  std::atomic<bool> open{false};
  std::atomic<int> entered{0};
  // Waits in a handler; false when cancelled first.
  bool Pass(const std::atomic<bool>& cancel) {
    ++entered;
    while (!open && !cancel) std::this_thread::sleep_for(5ms);
    return open;
  }
};

nlohmann::json Parse(const std::string& text) {
  auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  INFO(text);
  REQUIRE(!j.is_discarded());
  return j;
}

TEST_CASE("a task runs and its result is returned by TASK_STATUS", "[cluster][tasks]") {
  InProcessNode node(
      "task-result", 2,
      [](std::string_view spec, storage::Store&, const std::atomic<bool>&, storage::TaskStream&) {
        return Result<std::string>(nlohmann::json{{"echo", std::string(spec)}}.dump());
      });
  Reply started = node.Run("t1", R"({"kind":"echo"})");
  REQUIRE(started.ok());
  CHECK(started.task_state == TaskState::kRunning);
  Reply finished = node.AwaitFinished("t1");
  CHECK(finished.ok());
  CHECK(finished.task_state == TaskState::kDone);
  CHECK(Parse(finished.task_result)["echo"] == R"({"kind":"echo"})");
}

TEST_CASE("RUN_TASK of a running task_id attaches instead of starting a second run",
          "[cluster][tasks]") {
  Gate gate;
  std::atomic<int> runs{0};
  InProcessNode node(
      "task-attach", 2,
      [&](std::string_view, storage::Store&, const std::atomic<bool>& cancel,
          storage::TaskStream&) {
        ++runs;
        if (!gate.Pass(cancel))
          return Result<std::string>(Status::Error(ErrorCode::kCancelled, "cancelled"));
        return Result<std::string>(R"({"ok":true})");
      });
  REQUIRE(node.Run("t", "{}").task_state == TaskState::kRunning);
  REQUIRE(WaitFor([&] { return gate.entered == 1; }, 10s));
  Reply again = node.Run("t", "{}");
  CHECK(again.ok());
  CHECK(again.task_state == TaskState::kRunning);
  Reply rerun = node.Run("t", "{}", /*rerun=*/true);  // rerun does not restart a running task
  CHECK(rerun.ok());
  CHECK(rerun.task_state == TaskState::kRunning);
  CHECK(node.Load().tasks_running == 1);
  gate.open = true;
  CHECK(node.AwaitFinished("t").task_state == TaskState::kDone);
  // A second run would have started when it was asked for, and would hold the gate too.
  CHECK(runs == 1);
  CHECK(runs == 1);
}

TEST_CASE("a finished successful task is returned again without rerun and runs again with rerun",
          "[cluster][tasks]") {
  std::atomic<int> runs{0};
  InProcessNode node(
      "task-rerun", 1,
      [&](std::string_view, storage::Store&, const std::atomic<bool>&, storage::TaskStream&) {
        const int run = ++runs;
        return Result<std::string>(nlohmann::json{{"run", run}}.dump());
      });
  REQUIRE(node.Run("t", "{}").ok());
  REQUIRE(node.AwaitFinished("t").task_state == TaskState::kDone);
  Reply again = node.Run("t", "{}");
  CHECK(again.ok());
  CHECK(again.task_state == TaskState::kDone);
  CHECK(Parse(again.task_result)["run"] == 1);
  CHECK(runs == 1);

  Reply rerun = node.Run("t", "{}", /*rerun=*/true);
  CHECK(rerun.ok());
  CHECK(rerun.task_state == TaskState::kRunning);
  Reply finished = node.AwaitFinished("t");
  CHECK(finished.task_state == TaskState::kDone);
  CHECK(Parse(finished.task_result)["run"] == 2);
  CHECK(runs == 2);
}

TEST_CASE("a node with all task slots busy answers busy", "[cluster][tasks]") {
  Gate gate;
  InProcessNode node(
      "task-busy", 2,
      [&](std::string_view, storage::Store&, const std::atomic<bool>& cancel,
          storage::TaskStream&) {
        if (!gate.Pass(cancel))
          return Result<std::string>(Status::Error(ErrorCode::kCancelled, "cancelled"));
        return Result<std::string>("{}");
      });
  REQUIRE(node.Run("a", "{}").task_state == TaskState::kRunning);
  REQUIRE(node.Run("b", "{}").task_state == TaskState::kRunning);
  Reply busy = node.Run("c", "{}");
  CHECK(busy.code == ErrorCode::kBusy);
  REQUIRE(busy.load);
  CHECK(busy.load->task_slots == 2);
  CHECK(busy.load->tasks_running == 2);
  CHECK(node.Ask(Op::kTaskStatus, "c").code == ErrorCode::kNotFound);  // nothing was started
  CHECK(node.Run("a", "{}").task_state == TaskState::kRunning);  // attaching needs no free slot

  gate.open = true;
  CHECK(node.AwaitFinished("a").task_state == TaskState::kDone);
  CHECK(node.AwaitFinished("b").task_state == TaskState::kDone);
  Reply accepted = node.Run("c", "{}");
  CHECK(accepted.ok());
  CHECK(accepted.task_state == TaskState::kRunning);
  CHECK(node.AwaitFinished("c").task_state == TaskState::kDone);
}

TEST_CASE("a light task runs beside full task slots, one at a time", "[cluster][tasks]") {
  Gate gate;
  InProcessNode node(
      "task-light", 1,
      [&](std::string_view, storage::Store&, const std::atomic<bool>& cancel,
          storage::TaskStream&) {
        if (!gate.Pass(cancel))
          return Result<std::string>(Status::Error(ErrorCode::kCancelled, "cancelled"));
        return Result<std::string>("{}");
      });
  REQUIRE(node.Run("video", "{}").task_state == TaskState::kRunning);
  CHECK(node.Run("video-2", "{}").code == ErrorCode::kBusy);  // the one task slot is taken
  Reply audio = node.Run("audio", "{}", /*rerun=*/false, /*light=*/true);
  CHECK(audio.ok());
  CHECK(audio.task_state == TaskState::kRunning);
  Reply second = node.Run("audio-2", "{}", false, true);  // the light slot is taken too
  CHECK(second.code == ErrorCode::kBusy);
  CHECK(node.Ask(Op::kTaskStatus, "audio-2").code == ErrorCode::kNotFound);
  CHECK(node.Load().tasks_running == 1);  // the load counts task slots only

  gate.open = true;
  CHECK(node.AwaitFinished("audio").task_state == TaskState::kDone);
  CHECK(node.AwaitFinished("video").task_state == TaskState::kDone);
  // Both slots are free again: the light task that was refused runs now.
  CHECK(node.Run("audio-2", "{}", false, true).task_state == TaskState::kRunning);
  CHECK(node.AwaitFinished("audio-2").task_state == TaskState::kDone);
}

TEST_CASE("CANCEL_TASK makes the handler see the flag", "[cluster][tasks]") {
  std::atomic<bool> saw_cancel{false};
  InProcessNode node(
      "task-cancel", 1,
      [&](std::string_view, storage::Store&, const std::atomic<bool>& cancel,
          storage::TaskStream&) {
        while (!cancel) std::this_thread::sleep_for(5ms);
        saw_cancel = true;
        return Result<std::string>(Status::Error(ErrorCode::kCancelled, "stopped early"));
      });
  REQUIRE(node.Run("t", "{}").task_state == TaskState::kRunning);
  std::this_thread::sleep_for(50ms);
  CHECK(node.Ask(Op::kTaskStatus, "t").task_state == TaskState::kRunning);
  Reply cancelled = node.Ask(Op::kCancelTask, "t");
  CHECK(cancelled.ok());
  CHECK(
      (cancelled.task_state == TaskState::kRunning || cancelled.task_state == TaskState::kFailed));
  Reply finished = node.AwaitFinished("t");
  CHECK(saw_cancel);
  CHECK(finished.task_state == TaskState::kFailed);
  CHECK(Parse(finished.task_result)["error"]["code"] == "cancelled");
  CHECK(node.Ask(Op::kCancelTask, "t").task_state ==
        TaskState::kFailed);  // cancelling again: no-op
  CHECK(node.Ask(Op::kCancelTask, "nobody").code == ErrorCode::kNotFound);
}

TEST_CASE("a throwing or failing handler gives state failed with the error JSON",
          "[cluster][tasks]") {
  std::atomic<int> runs{0};
  InProcessNode node(
      "task-failed", 2,
      [&](std::string_view spec, storage::Store&, const std::atomic<bool>&, storage::TaskStream&) {
        ++runs;
        if (spec == "throw") throw std::runtime_error("handler blew up");
        return Result<std::string>(Status::Error(ErrorCode::kBadInput, "no such rung"));
      });
  REQUIRE(node.Run("fails", "fail").ok());
  REQUIRE(node.Run("throws", "throw").ok());
  Reply failed = node.AwaitFinished("fails");
  CHECK(failed.ok());
  CHECK(failed.task_state == TaskState::kFailed);
  auto error = Parse(failed.task_result)["error"];
  CHECK(error["code"] == "bad_input");
  CHECK(error["message"] == "no such rung");

  Reply threw = node.AwaitFinished("throws");
  CHECK(threw.task_state == TaskState::kFailed);
  auto thrown = Parse(threw.task_result)["error"];
  CHECK(thrown["code"] == "task_exception");
  CHECK(thrown["message"].get<std::string>().find("handler blew up") != std::string::npos);

  // The node lives on, and a failed task runs again on the next RUN_TASK (no rerun needed).
  CHECK(node.Load().tasks_running == 0);
  CHECK(node.Run("fails", "fail").task_state == TaskState::kRunning);
  CHECK(node.AwaitFinished("fails").task_state == TaskState::kFailed);
  CHECK(runs == 3);
}

TEST_CASE("TASK_STATUS of an unknown id is not_found", "[cluster][tasks]") {
  InProcessNode node("task-unknown", 1,
                     [](std::string_view, storage::Store&, const std::atomic<bool>&,
                        storage::TaskStream&) { return Result<std::string>("{}"); });
  Reply reply = node.Ask(Op::kTaskStatus, "never-started");
  CHECK(reply.code == ErrorCode::kNotFound);
  CHECK_FALSE(reply.task_state.has_value());
}

TEST_CASE("finished tasks are forgotten after task_retention", "[cluster][tasks]") {
  InProcessNode node(
      "task-retention", 1,
      [](std::string_view, storage::Store&, const std::atomic<bool>&, storage::TaskStream&) {
        return Result<std::string>("{}");
      },
      /*retention=*/300ms);
  REQUIRE(node.Run("t", "{}").ok());
  CHECK(node.AwaitFinished("t").task_state == TaskState::kDone);
  CHECK(WaitFor([&] { return node.Ask(Op::kTaskStatus, "t").code == ErrorCode::kNotFound; }, 10s));
}

TEST_CASE("PING load reports task slots and running tasks", "[cluster][tasks]") {
  Gate gate;
  InProcessNode node(
      "task-load", 3,
      [&](std::string_view, storage::Store&, const std::atomic<bool>& cancel,
          storage::TaskStream&) {
        if (!gate.Pass(cancel))
          return Result<std::string>(Status::Error(ErrorCode::kCancelled, "cancelled"));
        return Result<std::string>("{}");
      });
  auto idle = node.Load();
  CHECK(idle.task_slots == 3);
  CHECK(idle.tasks_running == 0);
  REQUIRE(node.Run("a", "{}").ok());
  REQUIRE(node.Run("b", "{}").ok());
  auto busy = node.Load();
  CHECK(busy.task_slots == 3);
  CHECK(busy.tasks_running == 2);
  gate.open = true;
  node.AwaitFinished("a");
  node.AwaitFinished("b");
  CHECK(node.Load().tasks_running == 0);
}

TEST_CASE("a node without task slots or handler answers RUN_TASK unsupported", "[cluster][tasks]") {
  InProcessNode no_slots("task-no-slots", 0,
                         [](std::string_view, storage::Store&, const std::atomic<bool>&,
                            storage::TaskStream&) { return Result<std::string>("{}"); });
  CHECK(no_slots.Run("t", "{}").code == ErrorCode::kUnsupported);
  CHECK(no_slots.Ask(Op::kTaskStatus, "t").code == ErrorCode::kUnsupported);
  CHECK(no_slots.Load().task_slots == 0);
  InProcessNode no_handler("task-no-handler", 2, nullptr);
  CHECK(no_handler.Run("t", "{}").code == ErrorCode::kUnsupported);
  CHECK(no_handler.Load().task_slots == 0);
}

TEST_CASE("stopping the node cancels its running tasks and waits for them", "[cluster][tasks]") {
  std::atomic<bool> started{false};
  std::atomic<bool> returned{false};
  InProcessNode node(
      "task-stop", 1,
      [&](std::string_view, storage::Store&, const std::atomic<bool>& cancel,
          storage::TaskStream&) {
        started = true;
        while (!cancel) std::this_thread::sleep_for(5ms);
        std::this_thread::sleep_for(100ms);  // Stop() must wait for this
        returned = true;
        return Result<std::string>(Status::Error(ErrorCode::kCancelled, "node stopping"));
      });
  REQUIRE(node.Run("t", "{}").ok());
  REQUIRE(WaitFor([&] { return started.load(); }, 10s));
  CHECK(node.Stop().ok());
  CHECK(returned);
}

TEST_CASE("a task reads and writes objects through its Store", "[cluster][tasks]") {
  const std::string input = TestBytes(100 << 10, 7);
  InProcessNode node(
      "task-objects", 1,
      [&](std::string_view spec, storage::Store& objects, const std::atomic<bool>&,
          storage::TaskStream&) -> Result<std::string> {
        const auto j = nlohmann::json::parse(spec);
        if (j.at("kind") == "write") {
          ZF_RETURN_IF_ERROR(objects.PutObject(j.at("name").get<std::string>(), input));
          return std::string("{}");
        }
        auto got = objects.GetObject(j.at("input").get<std::string>());
        if (!got.ok()) return got.status();
        ZF_RETURN_IF_ERROR(
            objects.PutObject(j.at("output").get<std::string>(), "processed:" + *got));
        return nlohmann::json{{"read", got->size()}, {"same", *got == input}}.dump();
      });
  REQUIRE(node.Run("write", R"({"kind":"write","name":"jobs/9/in"})").ok());
  Reply written = node.AwaitFinished("write");
  INFO(written.task_result);
  REQUIRE(written.task_state == TaskState::kDone);

  // Over the wire: the object is the node's (a manifest under its name, its bytes in part 0).
  Request head;
  head.op = Op::kHead;
  head.name = "jobs/9/in";
  CHECK(node.Call(head).ok());
  Request get;
  get.op = Op::kGet;
  get.name = "jobs/9/in";
  Reply manifest = node.Call(get);
  REQUIRE(manifest.ok());
  get.name = "jobs/9/in#" + Parse(manifest.payload)["gen"].get<std::string>() + ".00000";
  Reply part = node.Call(get);
  REQUIRE(part.ok());
  CHECK(part.payload == input);

  REQUIRE(node.Run("transform", R"({"kind":"transform","input":"jobs/9/in","output":"jobs/9/out"})")
              .ok());
  Reply transformed = node.AwaitFinished("transform");
  INFO(transformed.task_result);
  REQUIRE(transformed.task_state == TaskState::kDone);
  CHECK(Parse(transformed.task_result)["read"] == input.size());
  CHECK(Parse(transformed.task_result)["same"] == true);
  get.name = "jobs/9/out";
  manifest = node.Call(get);
  REQUIRE(manifest.ok());
  get.name = "jobs/9/out#" + Parse(manifest.payload)["gen"].get<std::string>() + ".00000";
  part = node.Call(get);
  REQUIRE(part.ok());
  CHECK(part.payload == "processed:" + input);

  // A missing input fails the task with the Store's error.
  REQUIRE(node.Run("missing", R"({"kind":"transform","input":"jobs/9/none","output":"x"})").ok());
  Reply missing = node.AwaitFinished("missing");
  CHECK(missing.task_state == TaskState::kFailed);
  CHECK(Parse(missing.task_result)["error"]["code"] == "not_found");
}

TEST_CASE(
    "a streamed task reads TASK_INPUT's bytes in order while it runs and its output is read "
    "while it is written",
    "[cluster][tasks]") {
  InProcessNode node("task-stream", 1,
                     [](std::string_view, storage::Store&, const std::atomic<bool>& cancel,
                        storage::TaskStream& stream) -> Result<std::string> {
                       std::string all;
                       for (;;) {
                         auto piece = stream.ReadInput(cancel);
                         if (!piece.ok()) return piece.status();
                         if (piece->empty()) break;
                         all += *piece;
                         stream.WriteOutput("<" + *piece + ">");
                       }
                       return nlohmann::json{{"input", all}}.dump();
                     });
  REQUIRE(node.Run("s", "{}", false, /*light=*/true).ok());
  auto send = [&](uint64_t offset, const std::string& bytes, bool end = false) {
    Request r;
    r.op = Op::kTaskInput;
    r.task_id = "s";
    r.input_offset = offset;
    r.payload = bytes;
    r.input_end = end;
    return node.Call(r);
  };
  auto output_from = [&](uint64_t from) {
    Request r;
    r.op = Op::kTaskStatus;
    r.task_id = "s";
    r.output_from = from;
    return node.Call(r);
  };
  Reply first = send(0, "abc");
  REQUIRE(first.ok());
  CHECK(first.stats.at("input_bytes") == 3);
  // The task has written its first output while it still waits for more input.
  Reply out;
  REQUIRE(WaitFor(
      [&] {
        out = output_from(0);
        return out.payload == "<abc>";
      },
      10s));
  CHECK(out.task_state == TaskState::kRunning);
  // A resend of bytes the node has is skipped; a gap is refused.
  CHECK(send(1, "bcde").stats.at("input_bytes") == 5);
  Reply gap = send(9, "x");
  CHECK(gap.code == ErrorCode::kInvalidArgument);
  REQUIRE(send(5, "f", /*end=*/true).ok());
  Reply finished = node.AwaitFinished("s");
  REQUIRE(finished.task_state == TaskState::kDone);
  CHECK(Parse(finished.task_result)["input"] == "abcdef");
  // What the caller has (its output_from) is dropped; the rest is handed out.
  std::string rest;
  REQUIRE(WaitFor(
      [&] {
        rest = output_from(5).payload;
        return rest.size() >= 3;
      },
      10s));
  CHECK(rest.substr(0, 3) == "<de");
}

TEST_CASE("a streamed task whose caller says its input failed fails instead of waiting",
          "[cluster][tasks]") {
  InProcessNode node("task-stream-failed", 1,
                     [](std::string_view, storage::Store&, const std::atomic<bool>& cancel,
                        storage::TaskStream& stream) -> Result<std::string> {
                       for (;;) {
                         auto piece = stream.ReadInput(cancel);
                         if (!piece.ok()) return piece.status();
                         if (piece->empty()) return std::string("{}");
                       }
                     });
  REQUIRE(node.Run("f", "{}").ok());
  Request r;
  r.op = Op::kTaskInput;
  r.task_id = "f";
  r.payload = "some";
  REQUIRE(node.Call(r).ok());
  r.input_offset = 4;
  r.payload.clear();
  r.input_failed = true;
  REQUIRE(node.Call(r).ok());
  Reply finished = node.AwaitFinished("f");
  CHECK(finished.task_state == TaskState::kFailed);
  CHECK(Parse(finished.task_result)["error"]["code"] == "cancelled");
}

}  // namespace
}  // namespace zerofarm::test
