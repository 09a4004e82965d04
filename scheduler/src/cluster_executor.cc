// Data-local task placement over the cluster, dead-node moves and straggler backups
// (cluster_executor.h).
#include "zerofarm/scheduler/cluster_executor.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

namespace zerofarm::scheduler {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;
using std::chrono::milliseconds;

constexpr milliseconds kCallTimeout{3000};
constexpr milliseconds kWaitForSlot{100};
constexpr milliseconds kStreamPollInterval{50};
constexpr size_t kMaxTimesPerJob = 4096;
constexpr size_t kMaxJobsRemembered = 256;

// One copy of a task on one node.
// Nodes are named by endpoint: ids change when the ring is swapped under a running task.
struct Copy {
  std::string node;  // endpoint
  std::string task_id;
  Clock::time_point started;
  bool backup = false;
  bool light = false;        // in the node's light slot: not counted in inflight_
  uint64_t output_seen = 0;  // a streamed output's bytes handed to TaskSpec::watch_output
};

// Sends a streamed task's input (TaskSpec::read_input) to the node that runs its copy, piece
// by piece, on its own thread; stops at the input's end, when the copy ends or is lost, or when
// told to. Its destructor waits for the thread, which may be inside read_input: that returns
// with the next input, its end, or the job's failure or cancel.
class InputPusher {
 public:
  InputPusher(storage::ClusterClient& client, const TaskSpec& spec, Copy copy)
      : client_(client), spec_(spec), copy_(std::move(copy)), thread_([this] { Push(); }) {}
  ~InputPusher() {
    stop_ = true;
    thread_.join();
  }
  InputPusher(const InputPusher&) = delete;
  InputPusher& operator=(const InputPusher&) = delete;

 private:
  void Push() {
    uint64_t offset = 0;
    while (!stop_.load()) {
      storage::Request r;
      r.op = storage::Op::kTaskInput;
      r.task_id = copy_.task_id;
      r.input_offset = offset;
      auto piece = spec_.read_input();
      if (!piece.ok()) {
        r.input_failed = true;
      } else if (piece->empty()) {
        r.input_end = true;
      } else {
        r.payload = std::move(*piece);
      }
      if (!Send(r)) return;
      offset += r.payload.size();
      if (r.input_end || r.input_failed) return;
    }
  }

  // Sends `r` until the node has it; false when the copy is gone or ended (Poll tells why).
  bool Send(const storage::Request& r) {
    while (!stop_.load()) {
      auto reply = client_.CallAt(copy_.node, r, kCallTimeout);
      if (reply.ok()) {
        if (reply->task_state && *reply->task_state != storage::TaskState::kRunning) return false;
        if (reply->ok()) return true;
        // Unknown to the node (it restarted), or a gap in the input: the task cannot go on.
        if (reply->code == ErrorCode::kNotFound || reply->code == ErrorCode::kInvalidArgument)
          return false;
      }
      // Busy (the task has not read what it holds) or unanswered: again in a moment.
      std::this_thread::sleep_for(kWaitForSlot);
    }
    return false;
  }

  storage::ClusterClient& client_;
  const TaskSpec& spec_;
  const Copy copy_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

class ClusterExecutorImpl final : public ClusterExecutor {
 public:
  ClusterExecutorImpl(std::unique_ptr<storage::ClusterClient> client,
                      const ClusterExecutorOptions& options)
      : client_(std::move(client)), options_(options) {}

  int slots() const override {
    int total = 0;
    for (const auto& h : client_->Health()) total += static_cast<int>(h.load.task_slots);
    return std::max(total, static_cast<int>(client_->ring()->nodes().size()));
  }

  ClusterExecutorStats stats() const override {
    std::lock_guard lock(mu_);
    return stats_;
  }

  bool streams() const override { return true; }

  Result<TaskOutcome> Run(const TaskSpec& spec, const std::atomic<bool>& cancel,
                          const std::function<void(const std::string&)>& placed) override {
    std::vector<Copy> copies;
    int lost = 0;
    // A streamed task runs one copy, fed by a pusher; its output is asked for more often, since
    // what it has written is published.
    const bool streamed = spec.read_input || spec.watch_output;
    std::optional<InputPusher> pusher;
    const auto poll_interval =
        streamed ? std::min(options_.poll_interval, kStreamPollInterval) : options_.poll_interval;
    for (;;) {
      if (cancel.load()) {
        CancelAll(copies);
        return Status::Error(ErrorCode::kCancelled, "the job was cancelled");
      }
      if (copies.empty()) {
        if (streamed && lost > 0)
          return Status::Error(ErrorCode::kUnavailable,
                               "the node running the task was lost with the input it had been "
                               "sent: the task runs again from its stored input");
        // A task moved off a dead node goes before the queue of tasks not yet started.
        auto copy = Start(spec, /*backup=*/false, std::nullopt, cancel, /*urgent=*/lost > 0);
        if (!copy.ok()) return copy.status();
        if (placed) placed(copy->node);
        copies.push_back(*copy);
        if (spec.read_input) pusher.emplace(*client_, spec, *copy);
      }
      std::this_thread::sleep_for(poll_interval);
      for (size_t i = 0; i < copies.size();) {
        auto result = Poll(spec, copies[i]);
        if (result.state == PollState::kRunning) {
          ++i;
          continue;
        }
        Copy ended = copies[i];
        copies.erase(copies.begin() + static_cast<long>(i));
        Finished(ended);
        if (result.state == PollState::kLost) {
          ++lost;
          std::lock_guard lock(mu_);
          ++stats_.tasks_lost;
          continue;
        }
        // The first copy to end decides: the others are cancelled.
        CancelAll(copies);
        if (result.state == PollState::kFailed) return result.error;
        result.outcome.backup = ended.backup;
        {
          std::lock_guard lock(mu_);
          if (ended.backup) ++stats_.backups_won;
          auto& times = finished_[spec.job];
          if (times.size() < kMaxTimesPerJob) times.push_back(result.outcome.wall_seconds);
          if (finished_.size() > kMaxJobsRemembered) finished_.erase(finished_.begin());
        }
        return result.outcome;
      }
      if (!streamed) MaybeBackup(spec, copies, placed, cancel);
    }
  }

 private:
  enum class PollState { kRunning, kDone, kFailed, kLost };
  struct PollResult {
    PollState state = PollState::kRunning;
    TaskOutcome outcome;
    Status error;
  };

  using HealthMap = std::map<std::string, storage::NodeHealth>;

  // The replica holders of an object in the current ring (a snapshot), and all its nodes.
  std::vector<std::string> Holders(const std::string& object) const {
    const auto ring = client_->ring();
    std::vector<std::string> out;
    for (uint32_t n : ring->NodesOf(ring->PartitionOf(object)))
      out.push_back(ring->nodes()[n].endpoint);
    return out;
  }
  std::vector<std::string> Everyone() const {
    std::vector<std::string> out;
    for (const auto& n : client_->ring()->nodes()) out.push_back(n.endpoint);
    return out;
  }
  HealthMap HealthByNode() const {
    HealthMap out;
    for (auto& h : client_->Health()) out[h.endpoint] = h;
    return out;
  }

  uint32_t SlotsOf(const std::string& node, const HealthMap& health) const {
    auto it = health.find(node);
    return it != health.end() ? it->second.load.task_slots : 0;
  }

  // Tasks occupying a node's slots: ours, or what the node itself last said, whichever is
  // more. A copy this proxy cancelled keeps its slot until the node has killed its worker; a
  // node that answered "busy" says so in its load, so it is not asked again at once while
  // another holder is free (asking it first every time would starve the task).
  uint32_t OccupiedOf(const std::string& node, const HealthMap& health) const {
    auto it = health.find(node);
    const uint32_t reported = it != health.end() ? it->second.load.tasks_running : 0;
    auto mine = inflight_.find(node);
    return std::max(mine != inflight_.end() ? mine->second : 0, reported);
  }

  // The least-loaded live node with a free slot among `candidates` (caller holds mu_). A slot
  // an urgent task waits for is not given to others.
  std::optional<std::string> Pick(const std::vector<std::string>& candidates,
                                  const HealthMap& health, const std::optional<std::string>& avoid,
                                  bool urgent) const {
    std::optional<std::string> best;
    double best_load = 0;
    for (const std::string& n : candidates) {
      if (avoid && n == *avoid) continue;
      if (!client_->IsAliveAt(n)) continue;
      if (auto w = urgent_waiting_.find(n); !urgent && w != urgent_waiting_.end() && w->second > 0)
        continue;
      const uint32_t slots = SlotsOf(n, health);
      const uint32_t occupied = OccupiedOf(n, health);
      if (slots == 0 || occupied >= slots) continue;
      const double load = static_cast<double>(occupied) / slots;
      if (!best || load < best_load) {
        best = n;
        best_load = load;
      }
    }
    return best;
  }

  // Places and starts one copy; waits while every suitable node is full.
  Result<Copy> Start(const TaskSpec& spec, bool backup, std::optional<std::string> avoid,
                     const std::atomic<bool>& cancel, bool urgent = false) {
    const auto holders = Holders(spec.placement);
    const auto give_up = Clock::now() + std::chrono::minutes(10);
    std::optional<std::string> light_refused;  // a holder whose light slot was busy
    // While an urgent task waits, the holders' next free slots are its.
    struct UrgentMark {
      ClusterExecutorImpl* self;
      const std::vector<std::string>* nodes;
      bool on;
      UrgentMark(ClusterExecutorImpl* s, const std::vector<std::string>* n, bool u)
          : self(s), nodes(n), on(u) {
        if (!on) return;
        std::lock_guard lock(self->mu_);
        for (const auto& x : *nodes) ++self->urgent_waiting_[x];
      }
      ~UrgentMark() {
        if (!on) return;
        std::lock_guard lock(self->mu_);
        for (const auto& x : *nodes)
          if (--self->urgent_waiting_[x] == 0) self->urgent_waiting_.erase(x);
      }
    } mark(this, &holders, urgent);
    for (;;) {
      if (cancel.load()) return Status::Error(ErrorCode::kCancelled, "the job was cancelled");
      const auto health = HealthByNode();
      std::optional<std::string> node;
      bool remote = false;
      if (spec.light && !backup) {
        std::lock_guard lock(mu_);
        node = PickLight(holders, health, light_refused);
      }
      const bool light = node.has_value();
      if (!node) {
        std::lock_guard lock(mu_);
        node = Pick(holders, health, avoid, urgent);
        const bool holder_alive = std::any_of(
            holders.begin(), holders.end(),
            [&](const std::string& n) { return client_->IsAliveAt(n) && SlotsOf(n, health) > 0; });
        if (!node && !holder_alive && !backup) {
          node = Pick(Everyone(), health, avoid, urgent);
          remote = node.has_value();
        }
        if (node) ++inflight_[*node];
      }
      if (!node) {
        if (backup)
          return Status::Error(ErrorCode::kUnavailable, "no free holder for a backup copy");
        if (Clock::now() > give_up)
          return Status::Error(ErrorCode::kUnavailable,
                               "no storage node could take the task for 10 min");
        std::this_thread::sleep_for(kWaitForSlot);
        continue;
      }
      storage::Request r;
      r.op = storage::Op::kRunTask;
      r.task_id = spec.id + (backup ? "~backup" : "");
      r.task = ToJson(spec);
      r.rerun = spec.rerun || backup;
      r.light = light;
      auto reply = client_->CallAt(*node, r, kCallTimeout);
      if (reply.ok() && reply->ok()) {
        std::lock_guard lock(mu_);
        ++stats_.tasks_started;
        if (backup) ++stats_.backups_started;
        if (remote) ++stats_.remote_placements;
        return Copy{*node, r.task_id, Clock::now(), backup, light};
      }
      if (light) light_refused = *node;
      Finished(Copy{*node, r.task_id, {}, backup, light});
      if (backup) return Status::Error(ErrorCode::kUnavailable, "the backup copy was refused");
      // Busy (its slots filled by another proxy or job), unreachable or unable: try again,
      // preferring others for a moment.
      std::this_thread::sleep_for(kWaitForSlot);
    }
  }

  void Finished(const Copy& copy) {
    if (copy.light) return;
    std::lock_guard lock(mu_);
    auto it = inflight_.find(copy.node);
    if (it != inflight_.end() && --it->second == 0) inflight_.erase(it);
  }

  // A light task (TaskSpec::light) goes to the least busy live holder that runs tasks, in its
  // light slot beside the task slots: it does not wait for a video task to end. A holder whose
  // light slot answered busy (`refused`) is asked again only when no other holder is left.
  std::optional<std::string> PickLight(const std::vector<std::string>& holders,
                                       const HealthMap& health,
                                       const std::optional<std::string>& refused) const {
    std::optional<std::string> best;
    for (const std::string& n : holders) {
      if (!client_->IsAliveAt(n) || SlotsOf(n, health) == 0) continue;
      const auto key = std::make_pair(refused && n == *refused, OccupiedOf(n, health));
      if (!best || key < std::make_pair(refused && *best == *refused, OccupiedOf(*best, health)))
        best = n;
    }
    return best;
  }

  // The copy's state; a streamed output's new bytes go to spec.watch_output on the way.
  PollResult Poll(const TaskSpec& spec, Copy& copy) {
    PollResult result;
    if (!client_->IsAliveAt(copy.node)) {
      result.state = PollState::kLost;
      return result;
    }
    storage::Request r;
    r.op = storage::Op::kTaskStatus;
    r.task_id = copy.task_id;
    if (spec.watch_output) r.output_from = copy.output_seen;
    auto reply = client_->CallAt(copy.node, r, kCallTimeout);
    if (!reply.ok()) return result;  // unanswered: the heartbeat decides
    if (reply->code == ErrorCode::kNotFound) {
      result.state = PollState::kLost;  // the node restarted
      return result;
    }
    if (spec.watch_output && !reply->payload.empty()) {
      copy.output_seen += reply->payload.size();
      spec.watch_output(0, reply->payload);
    }
    if (!reply->ok() || reply->task_state == storage::TaskState::kRunning) return result;
    if (reply->task_state == storage::TaskState::kDone) {
      auto outcome = TaskOutcomeFromJson(reply->task_result);
      if (outcome.ok()) {
        result.state = PollState::kDone;
        result.outcome = std::move(*outcome);
        return result;
      }
      result.state = PollState::kFailed;
      result.error = outcome.status();
      return result;
    }
    result.state = PollState::kFailed;
    json j = json::parse(reply->task_result, nullptr, false);
    // A code this build does not know (a node of another version) counts as worker_failed.
    ErrorCode code = ErrorCode::kWorkerFailed;
    std::string message = "the task failed on " + copy.node;
    if (j.is_object() && j.contains("error")) {
      code = ErrorCodeFromName(j["error"].value("code", "")).value_or(code);
      message = j["error"].value("message", message);
    }
    result.error = Status::Error(code, message);
    return result;
  }

  void CancelAll(std::vector<Copy>& copies) {
    for (const Copy& c : copies) {
      storage::Request r;
      r.op = storage::Op::kCancelTask;
      r.task_id = c.task_id;
      (void)client_->CallAt(c.node, r, kCallTimeout);
      Finished(c);
    }
    copies.clear();
  }

  void MaybeBackup(const TaskSpec& spec, std::vector<Copy>& copies,
                   const std::function<void(const std::string&)>& placed,
                   const std::atomic<bool>& cancel) {
    // A light task is not compared with the job's video tasks (the audio of a long video runs
    // longer than any segment by design).
    if (spec.light || copies.size() != 1 || copies.front().backup) return;
    double median = 0;
    {
      std::lock_guard lock(mu_);
      auto it = finished_.find(spec.job);
      if (it == finished_.end() || it->second.size() < options_.straggler_min_peers) return;
      std::vector<double> v = it->second;
      std::nth_element(v.begin(), v.begin() + static_cast<long>(v.size() / 2), v.end());
      median = v[v.size() / 2];
    }
    const double running =
        std::chrono::duration<double>(Clock::now() - copies.front().started).count();
    const double threshold =
        std::max(options_.straggler_factor * median,
                 std::chrono::duration<double>(options_.straggler_min).count());
    if (running < threshold) return;
    auto backup = Start(spec, /*backup=*/true, copies.front().node, cancel);
    if (!backup.ok()) return;  // no free holder now: look again at the next poll
    std::fprintf(stderr,
                 "zerofarm proxy: task %s has run %.1f s (peers' median %.1f s): backup copy on "
                 "%s\n",
                 spec.id.c_str(), running, median, backup->node.c_str());
    if (placed) placed(backup->node);
    copies.push_back(*backup);
  }

  std::unique_ptr<storage::ClusterClient> client_;
  const ClusterExecutorOptions options_;
  mutable std::mutex mu_;
  std::map<std::string, uint32_t> inflight_;   // copies this executor runs, per node endpoint
  std::map<std::string, int> urgent_waiting_;  // urgent tasks waiting for a slot, per node
  std::map<std::string, std::vector<double>> finished_;  // job -> finished tasks' wall seconds
  ClusterExecutorStats stats_;
};

}  // namespace

Result<std::unique_ptr<ClusterExecutor>> MakeClusterExecutor(
    storage::ClusterStore& cluster, const ClusterExecutorOptions& options) {
  storage::ClusterOptions co;
  co.request_timeout = kCallTimeout;
  co.key = cluster.client().options().key;
  auto client = storage::ClusterClient::Create(cluster.client().live_ring(), co);
  if (!client.ok()) return client.status();
  // Let the first heartbeats tell the nodes' task slots.
  const auto until = Clock::now() + std::chrono::seconds(3);
  while (Clock::now() < until) {
    // A node counts as alive before its first answer (a grace period): wait for the answers
    // themselves, which carry the task slots.
    const auto health = (*client)->Health();
    if (std::all_of(health.begin(), health.end(),
                    [](const storage::NodeHealth& h) { return h.load.task_slots > 0; }))
      break;
    std::this_thread::sleep_for(milliseconds(50));
  }
  return std::unique_ptr<ClusterExecutor>(
      std::make_unique<ClusterExecutorImpl>(std::move(*client), options));
}

}  // namespace zerofarm::scheduler
