// The cluster client (cluster_client.h): DEALER sockets per node, quorum writes with handoffs,
// verified reads with fallback, and a heartbeat thread for liveness. A local node (a node's
// own client) has no socket: its requests run through options.local_handler in process.
#include "zerofarm/storage/cluster_client.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "zmq_frames.h"

namespace zerofarm::storage {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Frames sent and received over sockets, counted as they pass (relaxed: plain counters).
struct TrafficCounters {
  std::atomic<uint64_t> sent{0};
  std::atomic<uint64_t> received{0};
  std::atomic<uint64_t> requests{0};
};

uint64_t FramesBytes(const std::vector<std::string>& frames) {
  uint64_t n = 0;
  for (const auto& f : frames) n += f.size();
  return n;
}

// SendFrames, counting the request's bytes when it was queued.
bool SendCounted(TrafficCounters& traffic, zmq::socket_t& s, const std::vector<std::string>& frames,
                 bool blocking = true, std::optional<std::string_view> payload = std::nullopt) {
  if (!SendFrames(s, frames, /*delimiter=*/true, blocking, payload)) return false;
  traffic.sent.fetch_add(FramesBytes(frames) + (payload ? payload->size() : 0),
                         std::memory_order_relaxed);
  traffic.requests.fetch_add(1, std::memory_order_relaxed);
  return true;
}

// ReceiveReply (zmq_frames.h), counting the bytes of every message taken off the socket,
// readable or not.
std::optional<Reply> ReceiveCounted(TrafficCounters& traffic, zmq::socket_t& s) {
  uint64_t bytes = 0;
  auto reply = ReceiveReply(s, &bytes);
  traffic.received.fetch_add(bytes, std::memory_order_relaxed);
  return reply;
}

int RemainingMs(Clock::time_point deadline) {
  return static_cast<int>(std::max<int64_t>(
      0, std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count()));
}

class ClusterClientImpl final : public ClusterClient {
 public:
  ClusterClientImpl(const Ring& ring, const ClusterOptions& options)
      : ring_(ring), options_(options), context_(1), start_(Clock::now()) {
    health_.resize(ring_.nodes().size());
    for (const auto& node : ring_.nodes()) {
      links_.push_back(IsLocal(node.id) ? Links() : MakeLinks(node.endpoint));
      sockets_.push_back(links_.back().empty() ? nullptr : links_.back().front().get());
    }
    if (options_.heartbeats) heartbeat_ = std::thread([this] { HeartbeatLoop(); });
  }

  ~ClusterClientImpl() override {
    {
      std::lock_guard lock(stop_mu_);
      stop_ = true;
    }
    stop_cv_.notify_all();
    if (heartbeat_.joinable()) heartbeat_.join();
    sockets_.clear();
    links_.clear();  // before the context (linger 0: nothing blocks)
  }

  const Ring& ring() const override { return ring_; }
  const ClusterOptions& options() const override { return options_; }

  ClientTraffic traffic() const override {
    ClientTraffic t;
    t.bytes_sent = traffic_.sent.load(std::memory_order_relaxed);
    t.bytes_received = traffic_.received.load(std::memory_order_relaxed);
    t.requests = traffic_.requests.load(std::memory_order_relaxed);
    return t;
  }

  Result<Reply> Call(uint32_t node, Request request, milliseconds timeout) override {
    if (node >= sockets_.size()) return Status::Error(ErrorCode::kInvalidArgument, "no such node");
    if (timeout.count() <= 0) timeout = options_.request_timeout;
    if (IsLocal(node)) {
      {
        std::lock_guard lock(mu_);
        request.id = ++next_id_;
      }
      request.timeout_ms = static_cast<uint32_t>(timeout.count());
      return CallLocal(request);
    }
    std::lock_guard lock(mu_);
    request.id = ++next_id_;
    request.timeout_ms = static_cast<uint32_t>(timeout.count());
    const auto deadline = Clock::now() + timeout;
    const std::string& endpoint = ring_.nodes()[node].endpoint;
    // A node that just came back may need a moment to reconnect (reconnects back off to 500
    // ms): retry the send for up to two seconds (each attempt waits up to 250 ms).
    const auto send_until = Clock::now() + std::min<milliseconds>(timeout, milliseconds(2000));
    const auto frames = EncodeRequest(request);
    while (!SendTo(node, frames)) {
      if (Clock::now() >= send_until)
        return Status::Error(ErrorCode::kUnavailable, endpoint + " is not connected");
    }
    while (true) {
      const int left = RemainingMs(deadline);
      zmq::pollitem_t item{static_cast<void*>(*sockets_[node]), 0, ZMQ_POLLIN, 0};
      if (zmq::poll(&item, 1, milliseconds(left)) <= 0) {
        if (Clock::now() >= deadline)
          return Status::Error(ErrorCode::kUnavailable,
                               endpoint + " did not answer " + std::string(OpName(request.op)) +
                                   " within " + std::to_string(timeout.count()) + " ms");
        continue;
      }
      auto reply = ReceiveCounted(traffic_, *sockets_[node]);
      if (!reply) continue;                   // unreadable: wait for the real one
      if (reply->id != request.id) continue;  // a late answer to an earlier request
      MarkReply(node, reply->load);
      return std::move(*reply);
    }
  }

  Result<PutReport> Put(std::string_view name, std::string_view bytes) override {
    ZF_RETURN_IF_ERROR(CheckObjectName(name));
    if (bytes.size() > kMaxPayloadBytes)
      return Status::Error(ErrorCode::kTooLarge, "objects sent to nodes are at most 64 MiB");
    const uint32_t partition = ring_.PartitionOf(name);
    const auto& primaries = ring_.NodesOf(partition);
    PutRound put;
    put.bytes = bytes;
    put.spare = HandoffsOf(partition);
    std::reverse(put.spare.begin(), put.spare.end());  // pop_back takes the preferred one
    put.report.quorum = static_cast<uint32_t>(ring_.replicas() / 2 + 1);
    put.base.op = Op::kPut;
    put.base.name = std::string(name);
    // The payload is not copied into each replica's request: every send takes the bytes from
    // the caller's buffer (SendFrames' payload argument).
    put.base.checksum = Checksum(bytes);
    put.base.ts = NowNs();

    std::lock_guard lock(mu_);
    put.deadline = Clock::now() + options_.request_timeout;
    for (uint32_t p : primaries)
      if (!LaunchCopy(put, p, "")) HandOff(put, ring_.nodes()[p].endpoint);
    AwaitQuorum(put);
    // A copy for the local node queued by the last replies is still written (no network).
    while (!put.local.empty()) SettleLocalCopy(put);
    const PutReport& report = put.report;
    if (report.acked >= report.quorum) return std::move(put.report);
    std::string why;
    for (const auto& f : report.failures) why += (why.empty() ? "" : "; ") + f;
    return Status::Error(ErrorCode::kNoQuorum, "'" + std::string(name) +
                                                   "': " + std::to_string(report.acked) + " of " +
                                                   std::to_string(report.quorum) +
                                                   " needed copies acknowledged (" + why + ")");
  }

  Result<std::string> Get(std::string_view name) override {
    ZF_RETURN_IF_ERROR(CheckObjectName(name));
    const uint32_t partition = ring_.PartitionOf(name);
    std::vector<uint32_t> order = ring_.NodesOf(partition);
    // Live replicas first (in replica order), then handoff nodes that may hold a copy.
    std::stable_partition(order.begin(), order.end(), [&](uint32_t n) { return IsAlive(n); });
    std::vector<uint32_t> handoffs = HandoffsOf(partition);
    if (handoffs.size() > static_cast<size_t>(ring_.replicas()))
      handoffs.resize(static_cast<size_t>(ring_.replicas()));
    order.insert(order.end(), handoffs.begin(), handoffs.end());
    std::string why;
    // "not_found" when a majority of the replicas say so (a down node cannot hide a delete),
    // "unavailable" when too few could answer.
    size_t not_found = 0;
    for (uint32_t node : order) {
      if (!IsAlive(node)) {
        why += (why.empty() ? "" : "; ") + ring_.nodes()[node].endpoint + ": down";
        continue;
      }
      Request r;
      r.op = Op::kGet;
      r.name = std::string(name);
      auto reply = Call(node, r, milliseconds(0));
      std::string problem;
      if (!reply.ok()) {
        problem = reply.status().ToString();
      } else if (!reply->ok()) {
        problem = reply->ToStatus().ToString();
      } else if (!reply->object || Checksum(reply->payload) != reply->object->checksum) {
        problem = "corrupt: the bytes received do not match their checksum";
      } else {
        return std::move(reply->payload);
      }
      if (reply.ok() && reply->code == ErrorCode::kNotFound) ++not_found;
      why += (why.empty() ? "" : "; ") + ring_.nodes()[node].endpoint + ": " + problem;
    }
    const size_t quorum = static_cast<size_t>(ring_.replicas() / 2 + 1);
    return Status::Error(not_found >= quorum ? ErrorCode::kNotFound : ErrorCode::kUnavailable,
                         "no good copy of '" + std::string(name) + "' (" + why + ")");
  }

  Result<uint64_t> Delete(std::string_view name_or_prefix, bool prefix) override {
    ZF_RETURN_IF_ERROR(prefix ? CheckDeletePrefix(name_or_prefix)
                              : CheckObjectName(name_or_prefix));
    Request base;
    base.op = Op::kDelete;
    (prefix ? base.prefix : base.name) = std::string(name_or_prefix);
    base.ts = NowNs();
    std::lock_guard lock(mu_);
    std::map<uint64_t, uint32_t> pending;
    std::vector<std::string> failures;
    std::optional<Request> local;  // answered in process once the others are on their way
    for (uint32_t n = 0; n < sockets_.size(); ++n) {
      Request r = base;
      r.id = ++next_id_;
      r.timeout_ms = static_cast<uint32_t>(options_.request_timeout.count());
      if (IsLocal(n))
        local = std::move(r);
      else if (IsAlive(n) && SendTo(n, EncodeRequest(r)))
        pending.emplace(r.id, n);
      else
        failures.push_back(ring_.nodes()[n].endpoint + ": down");
    }
    uint64_t removed = 0;
    size_t acked = 0;
    if (local) {
      const Reply reply = LocalReply(*options_.local_node, *local);
      if (reply.ok()) {
        ++acked;
        removed += reply.stats.count("removed") ? reply.stats.at("removed") : 0;
      } else {
        failures.push_back(ring_.nodes()[*options_.local_node].endpoint + ": " +
                           std::string(reply.code_name()));
      }
    }
    const auto deadline = Clock::now() + options_.request_timeout;
    while (!pending.empty() && Clock::now() < deadline) {
      std::vector<uint32_t> nodes;
      std::vector<zmq::pollitem_t> items;
      for (auto& [id, n] : pending) {
        nodes.push_back(n);
        items.push_back({static_cast<void*>(*sockets_[n]), 0, ZMQ_POLLIN, 0});
      }
      zmq::poll(items.data(), items.size(), milliseconds(RemainingMs(deadline)));
      for (size_t i = 0; i < items.size(); ++i) {
        if (!(items[i].revents & ZMQ_POLLIN)) continue;
        auto reply = ReceiveCounted(traffic_, *sockets_[nodes[i]]);
        if (!reply || !pending.count(reply->id)) continue;
        pending.erase(reply->id);
        MarkReply(nodes[i], reply->load);
        if (reply->ok()) {
          ++acked;
          removed += reply->stats.count("removed") ? reply->stats.at("removed") : 0;
        } else {
          failures.push_back(ring_.nodes()[nodes[i]].endpoint + ": " +
                             std::string(reply->code_name()));
        }
      }
    }
    if (acked >= sockets_.size() / 2 + 1) return removed;
    std::string why;
    for (const auto& f : failures) why += (why.empty() ? "" : "; ") + f;
    return Status::Error(ErrorCode::kNoQuorum, "delete of '" + std::string(name_or_prefix) +
                                                   "' reached " + std::to_string(acked) +
                                                   " nodes (" + why + ")");
  }

  std::vector<uint32_t> HandoffsOf(uint32_t partition) const override {
    const auto& primaries = ring_.NodesOf(partition);
    const uint32_t n = static_cast<uint32_t>(ring_.nodes().size());
    std::set<std::string> used_zones;
    for (uint32_t p : primaries) used_zones.insert(ring_.nodes()[p].zone);
    std::vector<uint32_t> out;
    for (uint32_t step = 1; step <= n; ++step) {
      const uint32_t candidate = (primaries.front() + step) % n;
      if (std::find(primaries.begin(), primaries.end(), candidate) != primaries.end()) continue;
      if (ring_.nodes()[candidate].endpoint == options_.self_endpoint) continue;
      out.push_back(candidate);
    }
    std::stable_partition(out.begin(), out.end(),
                          [&](uint32_t c) { return used_zones.count(ring_.nodes()[c].zone) == 0; });
    return out;
  }

  bool IsAlive(uint32_t node) const override {
    if (IsLocal(node)) return true;
    if (!options_.heartbeats) return options_.liveness ? options_.liveness(node) : true;
    std::lock_guard lock(health_mu_);
    const auto& h = health_[node];
    const auto since = h.replied ? h.last_reply : start_;
    return Clock::now() - since < options_.dead_after;
  }

  bool WritesPossible() const override {
    size_t usable = 0;
    for (uint32_t n = 0; n < ring_.nodes().size(); ++n) {
      if (!IsAlive(n)) continue;
      std::lock_guard lock(health_mu_);
      if (!health_[n].load.disk_full) ++usable;
    }
    return usable >= static_cast<size_t>(ring_.replicas() / 2 + 1);
  }

  std::vector<NodeHealth> Health() const override {
    std::vector<NodeHealth> out;
    for (uint32_t n = 0; n < ring_.nodes().size(); ++n) {
      NodeHealth h;
      h.endpoint = ring_.nodes()[n].endpoint;
      h.alive = IsAlive(n);
      std::lock_guard lock(health_mu_);
      h.since_last_reply = std::chrono::duration_cast<milliseconds>(
          Clock::now() - (health_[n].replied ? health_[n].last_reply : start_));
      h.load = health_[n].load;
      h.ring_hash = health_[n].ring_hash;
      out.push_back(h);
    }
    return out;
  }

 private:
  struct Health_ {
    bool replied = false;
    Clock::time_point last_reply;
    NodeLoad load;
    uint64_t ring_hash = 0;
  };

  using Links = std::vector<std::unique_ptr<zmq::socket_t>>;

  // The sockets to one node: one per farm key the node may serve with (the primary first; one
  // socket without CURVE when there is no key).
  Links MakeLinks(const std::string& endpoint) {
    Links links;
    if (!options_.key) {
      links.push_back(MakeDealer(context_, endpoint));
      return links;
    }
    for (const auto& server : options_.key->keys()) {
      CurveClient curve{options_.key->primary(), server.public_key};
      links.push_back(MakeDealer(context_, endpoint, &curve));
    }
    return links;
  }

  // Sends on the node's current socket, else on its other ones (a node that serves another
  // key of a rotation in progress); the one that takes the message becomes current.
  bool SendTo(uint32_t node, const std::vector<std::string>& frames, bool blocking = true,
              std::optional<std::string_view> payload = std::nullopt) {
    if (SendCounted(traffic_, *sockets_[node], frames, blocking, payload)) return true;
    for (auto& s : links_[node]) {
      if (s.get() == sockets_[node]) continue;
      if (SendCounted(traffic_, *s, frames, blocking, payload)) {
        sockets_[node] = s.get();
        return true;
      }
    }
    return false;
  }

  // --- Put's steps. All of them run with mu_ held. ---

  struct PutAttempt {
    uint32_t node;
    std::string home;  // non-empty for a handoff copy
  };

  // One Put's copies in flight. `bytes` is the caller's buffer: it must outlive the round.
  struct PutRound {
    std::string_view bytes;
    Request base;                            // the request every copy is made from, payload aside
    PutReport report;                        // what the Put returns
    std::vector<uint32_t> spare;             // handoff nodes not tried yet, the preferred one last
    std::map<uint64_t, PutAttempt> pending;  // request id -> attempt
    // Copies for the local node, written in process once the remote ones are on their way.
    std::vector<std::pair<Request, PutAttempt>> local;
    Clock::time_point deadline;
  };

  // Sends one copy to `node` (queues it when the node is local); false, with a failure in the
  // report, when the node is down or the send fails.
  bool LaunchCopy(PutRound& put, uint32_t node, const std::string& home) {
    Request r = put.base;
    r.id = ++next_id_;
    r.timeout_ms = static_cast<uint32_t>(options_.request_timeout.count());
    r.handoff_for = home;
    if (IsLocal(node)) {
      r.payload = std::string(put.bytes);
      put.local.emplace_back(std::move(r), PutAttempt{node, home});
      return true;
    }
    auto frames = EncodeRequest(r);
    frames.pop_back();  // the empty payload frame; the real one follows from `bytes`
    if (!IsAlive(node) || !SendTo(node, frames, true, put.bytes)) {
      put.report.failures.push_back(ring_.nodes()[node].endpoint + ": unavailable: down");
      return false;
    }
    put.pending.emplace(r.id, PutAttempt{node, home});
    return true;
  }

  // Launches a copy for `home` on the next spare node that takes it, if any is left.
  void HandOff(PutRound& put, const std::string& home) {
    while (!put.spare.empty()) {
      const uint32_t h = put.spare.back();
      put.spare.pop_back();
      if (LaunchCopy(put, h, home)) return;
    }
  }

  // Counts an answered copy, or records its failure and hands it off.
  void Settle(PutRound& put, const PutAttempt& a, const Reply& reply) {
    const std::string& endpoint = ring_.nodes()[a.node].endpoint;
    if (reply.ok()) {
      ++put.report.acked;
      put.report.stored_on.push_back(endpoint);
      if (!a.home.empty()) put.report.handoffs.push_back(endpoint + " for " + a.home);
    } else {
      put.report.failures.push_back(endpoint + ": " + reply.ToStatus().ToString());
      HandOff(put, a.home.empty() ? endpoint : a.home);
    }
  }

  // Writes the last queued local copy in process and settles it.
  void SettleLocalCopy(PutRound& put) {
    auto [r, a] = std::move(put.local.back());
    put.local.pop_back();
    Settle(put, a, LocalReply(a.node, r));
  }

  // Settles copies until the quorum is reached or nothing more can answer. Copies that never
  // answer get one more round on handoff nodes, once.
  void AwaitQuorum(PutRound& put) {
    bool extended = false;
    while (put.report.acked < put.report.quorum) {
      if (!put.local.empty()) {
        SettleLocalCopy(put);
        continue;
      }
      if (put.pending.empty()) break;
      if (Clock::now() >= put.deadline) {
        if (extended || put.spare.empty()) break;
        extended = true;
        HandOffUnanswered(put);
        continue;
      }
      ReceivePutReplies(put);
    }
  }

  // Gives up on every pending copy and hands each one off, with a fresh deadline.
  void HandOffUnanswered(PutRound& put) {
    std::vector<PutAttempt> late;
    for (auto& [id, a] : put.pending) late.push_back(a);
    put.pending.clear();
    put.deadline = Clock::now() + options_.request_timeout;
    for (const PutAttempt& a : late) {
      put.report.failures.push_back(ring_.nodes()[a.node].endpoint + ": unavailable: no answer");
      HandOff(put, a.home.empty() ? ring_.nodes()[a.node].endpoint : a.home);
    }
  }

  // Waits until the deadline for replies from the nodes with pending copies, and settles the
  // copies they answer.
  void ReceivePutReplies(PutRound& put) {
    std::vector<uint32_t> nodes;
    std::vector<zmq::pollitem_t> items;
    for (auto& [id, a] : put.pending) {
      if (std::find(nodes.begin(), nodes.end(), a.node) != nodes.end()) continue;
      nodes.push_back(a.node);
      items.push_back({static_cast<void*>(*sockets_[a.node]), 0, ZMQ_POLLIN, 0});
    }
    zmq::poll(items.data(), items.size(), milliseconds(RemainingMs(put.deadline)));
    for (size_t i = 0; i < items.size(); ++i) {
      if (!(items[i].revents & ZMQ_POLLIN)) continue;
      auto reply = ReceiveCounted(traffic_, *sockets_[nodes[i]]);
      if (!reply) continue;
      auto it = put.pending.find(reply->id);
      if (it == put.pending.end()) continue;
      const PutAttempt a = it->second;
      put.pending.erase(it);
      MarkReply(a.node, reply->load);
      Settle(put, a, *reply);
    }
  }

  bool IsLocal(uint32_t node) const {
    return options_.local_node && *options_.local_node == node && options_.local_handler;
  }

  // A request to the local node, answered in process (its id and budget already set).
  Reply LocalReply(uint32_t node, const Request& request) {
    Reply reply = options_.local_handler(request);
    reply.id = request.id;
    MarkReply(node, reply.load);
    return reply;
  }
  Result<Reply> CallLocal(const Request& request) {
    return LocalReply(*options_.local_node, request);
  }

  // Records a node's ring hash from a heartbeat; says once per change when it is not ours.
  void NoteRing(uint32_t node, uint64_t hash) {
    if (hash == 0) return;
    {
      std::lock_guard lock(health_mu_);
      if (health_[node].ring_hash == hash) return;
      health_[node].ring_hash = hash;
    }
    if (hash != ring_hash_)
      std::fprintf(stderr,
                   "zerofarm: storage node %s holds ring %s, this process ring %s: the rings "
                   "differ (the node moves no data until they agree)\n",
                   ring_.nodes()[node].endpoint.c_str(), ChecksumHex(hash).c_str(),
                   ChecksumHex(ring_hash_).c_str());
  }

  void MarkReply(uint32_t node, const std::optional<NodeLoad>& load) {
    std::lock_guard lock(health_mu_);
    health_[node].replied = true;
    health_[node].last_reply = Clock::now();
    if (load) health_[node].load = *load;
  }

  // PINGs every node each interval on its own sockets (sockets are not shared across threads).
  void HeartbeatLoop() {
    // The local node has no socket (nullptr): its PING runs through the handler.
    std::vector<std::unique_ptr<zmq::socket_t>> sockets;
    std::vector<uint32_t> remote;  // node ids behind `sockets`
    for (const auto& node : ring_.nodes()) {
      if (IsLocal(node.id)) continue;
      for (auto& s : MakeLinks(node.endpoint)) {
        sockets.push_back(std::move(s));
        remote.push_back(node.id);
      }
    }
    uint64_t seq = 0;
    while (true) {
      const auto round_end = Clock::now() + options_.heartbeat_interval;
      Request ping;
      ping.op = Op::kPing;
      ping.ring_hash = ring_hash_;
      ping.timeout_ms = static_cast<uint32_t>(options_.heartbeat_interval.count());
      for (auto& s : sockets) {
        ping.id = ++seq;
        SendCounted(traffic_, *s, EncodeRequest(ping), /*blocking=*/false);
      }
      if (options_.local_node && IsLocal(*options_.local_node)) {
        ping.id = ++seq;
        LocalReply(*options_.local_node, ping);
      }
      // Collect answers until the round ends.
      while (Clock::now() < round_end) {
        {
          std::unique_lock lock(stop_mu_);
          if (stop_) return;
        }
        std::vector<zmq::pollitem_t> items;
        for (auto& s : sockets) items.push_back({static_cast<void*>(*s), 0, ZMQ_POLLIN, 0});
        zmq::poll(items.data(), items.size(), milliseconds(std::min(RemainingMs(round_end), 50)));
        for (size_t i = 0; i < items.size(); ++i) {
          if (!(items[i].revents & ZMQ_POLLIN)) continue;
          while (auto reply = ReceiveCounted(traffic_, *sockets[i])) {
            MarkReply(remote[i], reply->load);
            NoteRing(remote[i], reply->ring_hash);
          }
        }
      }
      std::unique_lock lock(stop_mu_);
      if (stop_) return;
    }
  }

  const Ring ring_;
  const uint64_t ring_hash_ = ring_.ContentHash();
  const ClusterOptions options_;
  zmq::context_t context_;
  const Clock::time_point start_;

  std::mutex mu_;                        // guards sockets_ and links_ use, and next_id_
  std::vector<Links> links_;             // per node (empty for the local node)
  std::vector<zmq::socket_t*> sockets_;  // per node: the link in use (null: local)
  uint64_t next_id_ = 0;

  mutable std::mutex health_mu_;
  std::vector<Health_> health_;

  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  bool stop_ = false;
  std::thread heartbeat_;

  TrafficCounters traffic_;
};

}  // namespace

Result<std::unique_ptr<ClusterClient>> ClusterClient::Create(const Ring& ring,
                                                             const ClusterOptions& options) {
  if (ring.nodes().empty())
    return Status::Error(ErrorCode::kInvalidArgument, "the ring has no nodes");
  if (options.local_node && *options.local_node >= ring.nodes().size())
    return Status::Error(ErrorCode::kInvalidArgument, "local_node is not a node of the ring");
  if (options.local_node && !options.local_handler)
    return Status::Error(ErrorCode::kInvalidArgument, "local_node needs a local_handler");
  try {
    return std::unique_ptr<ClusterClient>(new ClusterClientImpl(ring, options));
  } catch (const zmq::error_t& e) {
    return Status::Error(ErrorCode::kIoError,
                         std::string("cannot set up ZeroMQ sockets: ") + e.what());
  }
}

}  // namespace zerofarm::storage
