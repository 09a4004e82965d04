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
  ClusterClientImpl(std::shared_ptr<LiveRing> live, const ClusterOptions& options,
                    std::string local_endpoint)
      : live_(std::move(live)),
        options_(options),
        local_endpoint_(std::move(local_endpoint)),
        context_(1),
        start_(Clock::now()) {
    if (options_.heartbeats) heartbeat_ = std::thread([this] { HeartbeatLoop(); });
  }

  ~ClusterClientImpl() override {
    {
      std::lock_guard lock(stop_mu_);
      stop_ = true;
    }
    stop_cv_.notify_all();
    if (heartbeat_.joinable()) heartbeat_.join();
    links_.clear();  // before the context (linger 0: nothing blocks)
  }

  std::shared_ptr<const Ring> ring() const override { return live_->Get(); }
  const std::shared_ptr<LiveRing>& live_ring() const override { return live_; }
  const ClusterOptions& options() const override { return options_; }

  ClientTraffic traffic() const override {
    ClientTraffic t;
    t.bytes_sent = traffic_.sent.load(std::memory_order_relaxed);
    t.bytes_received = traffic_.received.load(std::memory_order_relaxed);
    t.requests = traffic_.requests.load(std::memory_order_relaxed);
    return t;
  }

  Result<Reply> Call(uint32_t node, Request request, milliseconds timeout) override {
    const auto ring = live_->Get();
    if (node >= ring->nodes().size())
      return Status::Error(ErrorCode::kInvalidArgument, "no such node");
    return CallAt(ring->nodes()[node].endpoint, std::move(request), timeout);
  }

  Result<Reply> CallAt(const std::string& endpoint, Request request,
                       milliseconds timeout) override {
    if (timeout.count() <= 0) timeout = options_.request_timeout;
    if (IsLocal(endpoint)) {
      {
        std::lock_guard lock(mu_);
        request.id = ++next_id_;
      }
      request.timeout_ms = static_cast<uint32_t>(timeout.count());
      return LocalReply(endpoint, request);
    }
    std::lock_guard lock(mu_);
    zmq::socket_t** current = LinkTo(endpoint);
    if (!current)
      return Status::Error(ErrorCode::kInvalidArgument,
                           endpoint + " is a node of neither the current nor the previous ring");
    request.id = ++next_id_;
    request.timeout_ms = static_cast<uint32_t>(timeout.count());
    const auto deadline = Clock::now() + timeout;
    // A node that just came back may need a moment to reconnect (reconnects back off to 500
    // ms): retry the send for up to two seconds (each attempt waits up to 250 ms).
    const auto send_until = Clock::now() + std::min<milliseconds>(timeout, milliseconds(2000));
    const auto frames = EncodeRequest(request);
    while (!SendTo(endpoint, frames)) {
      if (Clock::now() >= send_until)
        return Status::Error(ErrorCode::kUnavailable, endpoint + " is not connected");
    }
    while (true) {
      const int left = RemainingMs(deadline);
      zmq::pollitem_t item{static_cast<void*>(**current), 0, ZMQ_POLLIN, 0};
      if (zmq::poll(&item, 1, milliseconds(left)) <= 0) {
        if (Clock::now() >= deadline)
          return Status::Error(ErrorCode::kUnavailable,
                               endpoint + " did not answer " + std::string(OpName(request.op)) +
                                   " within " + std::to_string(timeout.count()) + " ms");
        continue;
      }
      auto reply = ReceiveCounted(traffic_, **current);
      if (!reply) continue;                   // unreadable: wait for the real one
      if (reply->id != request.id) continue;  // a late answer to an earlier request
      MarkReply(endpoint, reply->load);
      return std::move(*reply);
    }
  }

  Result<PutReport> Put(std::string_view name, std::string_view bytes) override {
    ZF_RETURN_IF_ERROR(CheckObjectName(name));
    if (bytes.size() > kMaxPayloadBytes)
      return Status::Error(ErrorCode::kTooLarge, "objects sent to nodes are at most 64 MiB");
    const auto ring = live_->Get();
    const uint32_t partition = ring->PartitionOf(name);
    const auto& primaries = ring->NodesOf(partition);
    PutRound put;
    put.bytes = bytes;
    for (uint32_t h : HandoffCandidates(*ring, partition, options_.self_endpoint))
      put.spare.push_back(ring->nodes()[h].endpoint);
    std::reverse(put.spare.begin(), put.spare.end());  // pop_back takes the preferred one
    put.report.quorum = static_cast<uint32_t>(ring->replicas() / 2 + 1);
    put.base.op = Op::kPut;
    put.base.name = std::string(name);
    // The payload is not copied into each replica's request: every send takes the bytes from
    // the caller's buffer (SendFrames' payload argument).
    put.base.checksum = Checksum(bytes);
    put.base.ts = NowNs();

    std::lock_guard lock(mu_);
    put.deadline = Clock::now() + options_.request_timeout;
    for (uint32_t p : primaries) {
      const std::string& endpoint = ring->nodes()[p].endpoint;
      if (!LaunchCopy(put, endpoint, "")) HandOff(put, endpoint);
    }
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

  std::vector<std::string> ReadOrder(std::string_view name) const override {
    const auto ring = live_->Get();
    const auto previous = live_->Previous();
    const uint32_t partition = ring->PartitionOf(name);
    std::vector<std::string> order;
    for (uint32_t n : ring->NodesOf(partition)) order.push_back(ring->nodes()[n].endpoint);
    // Live replicas first (in replica order), then handoff nodes that may hold a copy.
    std::stable_partition(order.begin(), order.end(),
                          [&](const std::string& e) { return IsAliveAt(e); });
    std::vector<uint32_t> handoffs = HandoffCandidates(*ring, partition, options_.self_endpoint);
    if (handoffs.size() > static_cast<size_t>(ring->replicas()))
      handoffs.resize(static_cast<size_t>(ring->replicas()));
    for (uint32_t h : handoffs) order.push_back(ring->nodes()[h].endpoint);
    // The previous ring's holders last: a partition that moved may be there only, for now.
    if (previous && previous->part_power() == ring->part_power()) {
      for (uint32_t n : previous->NodesOf(partition)) {
        const std::string& e = previous->nodes()[n].endpoint;
        if (std::find(order.begin(), order.end(), e) == order.end()) order.push_back(e);
      }
    }
    return order;
  }

  Result<std::string> Get(std::string_view name) override {
    ZF_RETURN_IF_ERROR(CheckObjectName(name));
    const auto ring = live_->Get();
    std::string why;
    // "not_found" when a majority of the replicas say so (a down node cannot hide a delete),
    // "unavailable" when too few could answer.
    size_t not_found = 0;
    for (const std::string& endpoint : ReadOrder(name)) {
      if (!IsAliveAt(endpoint)) {
        why += (why.empty() ? "" : "; ") + endpoint + ": down";
        continue;
      }
      Request r;
      r.op = Op::kGet;
      r.name = std::string(name);
      auto reply = CallAt(endpoint, r, milliseconds(0));
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
      why += (why.empty() ? "" : "; ") + endpoint + ": " + problem;
    }
    const size_t quorum = static_cast<size_t>(ring->replicas() / 2 + 1);
    return Status::Error(not_found >= quorum ? ErrorCode::kNotFound : ErrorCode::kUnavailable,
                         "no good copy of '" + std::string(name) + "' (" + why + ")");
  }

  Result<uint64_t> Delete(std::string_view name_or_prefix, bool prefix) override {
    ZF_RETURN_IF_ERROR(prefix ? CheckDeletePrefix(name_or_prefix)
                              : CheckObjectName(name_or_prefix));
    const auto ring = live_->Get();
    // Every node of the current ring, and those of the previous ring that left it (they may
    // still hold copies not moved yet); the quorum is the current ring's majority.
    std::vector<std::string> targets;
    for (const auto& n : ring->nodes()) targets.push_back(n.endpoint);
    if (const auto previous = live_->Previous())
      for (const auto& n : previous->nodes())
        if (!NodeIdIn(*ring, n.endpoint)) targets.push_back(n.endpoint);
    Request base;
    base.op = Op::kDelete;
    (prefix ? base.prefix : base.name) = std::string(name_or_prefix);
    base.ts = NowNs();
    std::lock_guard lock(mu_);
    std::map<uint64_t, std::string> pending;
    std::vector<std::string> failures;
    std::optional<Request> local;  // answered in process once the others are on their way
    for (const std::string& endpoint : targets) {
      Request r = base;
      r.id = ++next_id_;
      r.timeout_ms = static_cast<uint32_t>(options_.request_timeout.count());
      if (IsLocal(endpoint))
        local = std::move(r);
      else if (IsAliveAt(endpoint) && LinkTo(endpoint) && SendTo(endpoint, EncodeRequest(r)))
        pending.emplace(r.id, endpoint);
      else
        failures.push_back(endpoint + ": down");
    }
    uint64_t removed = 0;
    size_t acked = 0;
    if (local) {
      const Reply reply = LocalReply(local_endpoint_, *local);
      if (reply.ok()) {
        ++acked;
        removed += reply.stats.count("removed") ? reply.stats.at("removed") : 0;
      } else {
        failures.push_back(local_endpoint_ + ": " + std::string(reply.code_name()));
      }
    }
    const auto deadline = Clock::now() + options_.request_timeout;
    while (!pending.empty() && Clock::now() < deadline) {
      std::vector<std::string> nodes;
      std::vector<zmq::pollitem_t> items;
      for (auto& [id, e] : pending) {
        nodes.push_back(e);
        items.push_back({static_cast<void*>(*current_[e]), 0, ZMQ_POLLIN, 0});
      }
      zmq::poll(items.data(), items.size(), milliseconds(RemainingMs(deadline)));
      for (size_t i = 0; i < items.size(); ++i) {
        if (!(items[i].revents & ZMQ_POLLIN)) continue;
        auto reply = ReceiveCounted(traffic_, *current_[nodes[i]]);
        if (!reply || !pending.count(reply->id)) continue;
        pending.erase(reply->id);
        MarkReply(nodes[i], reply->load);
        if (reply->ok()) {
          ++acked;
          removed += reply->stats.count("removed") ? reply->stats.at("removed") : 0;
        } else {
          failures.push_back(nodes[i] + ": " + std::string(reply->code_name()));
        }
      }
    }
    if (acked >= ring->nodes().size() / 2 + 1) return removed;
    std::string why;
    for (const auto& f : failures) why += (why.empty() ? "" : "; ") + f;
    return Status::Error(ErrorCode::kNoQuorum, "delete of '" + std::string(name_or_prefix) +
                                                   "' reached " + std::to_string(acked) +
                                                   " nodes (" + why + ")");
  }

  std::vector<uint32_t> HandoffsOf(uint32_t partition) const override {
    return HandoffCandidates(*live_->Get(), partition, options_.self_endpoint);
  }

  bool IsAlive(uint32_t node) const override {
    const auto ring = live_->Get();
    return node < ring->nodes().size() && IsAliveAt(ring->nodes()[node].endpoint);
  }

  bool IsAliveAt(const std::string& endpoint) const override {
    if (IsLocal(endpoint)) return true;
    if (!options_.heartbeats) return options_.liveness ? options_.liveness(endpoint) : true;
    std::lock_guard lock(health_mu_);
    auto it = health_.find(endpoint);
    // A node the heartbeat thread has not reached yet counts from the client's start.
    const auto since = it == health_.end()  ? start_
                       : it->second.replied ? it->second.last_reply
                                            : it->second.first_seen;
    return Clock::now() - since < options_.dead_after;
  }

  bool WritesPossible() const override {
    const auto ring = live_->Get();
    size_t usable = 0;
    for (const auto& n : ring->nodes()) {
      if (!IsAliveAt(n.endpoint)) continue;
      std::lock_guard lock(health_mu_);
      auto it = health_.find(n.endpoint);
      if (it == health_.end() || !it->second.load.disk_full) ++usable;
    }
    return usable >= static_cast<size_t>(ring->replicas() / 2 + 1);
  }

  std::vector<NodeHealth> Health() const override {
    const auto ring = live_->Get();
    std::vector<NodeHealth> out;
    for (const auto& n : ring->nodes()) {
      NodeHealth h;
      h.endpoint = n.endpoint;
      h.alive = IsAliveAt(n.endpoint);
      std::lock_guard lock(health_mu_);
      auto it = health_.find(n.endpoint);
      const Health_ known =
          it == health_.end() ? Health_{false, start_, start_, {}, 0} : it->second;
      h.since_last_reply = std::chrono::duration_cast<milliseconds>(
          Clock::now() - (known.replied ? known.last_reply : known.first_seen));
      h.load = known.load;
      h.ring_hash = known.ring_hash;
      out.push_back(h);
    }
    return out;
  }

 private:
  struct Health_ {
    bool replied = false;
    Clock::time_point first_seen;  // when the heartbeat thread first pinged it
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

  // The endpoints of the current and previous rings (the nodes this client may talk to).
  std::set<std::string> KnownEndpoints() const {
    std::set<std::string> known;
    for (const auto& n : live_->Get()->nodes()) known.insert(n.endpoint);
    if (const auto previous = live_->Previous())
      for (const auto& n : previous->nodes()) known.insert(n.endpoint);
    return known;
  }

  // The socket in use for `endpoint` (connected on first use); null for an endpoint of
  // neither ring. After a ring swap, first closes the links to nodes of neither ring. With mu_.
  zmq::socket_t** LinkTo(const std::string& endpoint) {
    const uint64_t generation = live_->generation();
    std::set<std::string> known;
    if (generation != links_generation_) {
      known = KnownEndpoints();
      for (auto it = links_.begin(); it != links_.end();)
        it = known.count(it->first) ? std::next(it) : (current_.erase(it->first), links_.erase(it));
      links_generation_ = generation;
    }
    auto it = current_.find(endpoint);
    if (it != current_.end()) return &it->second;
    if (known.empty()) known = KnownEndpoints();
    if (!known.count(endpoint)) return nullptr;
    Links& links = links_[endpoint] = MakeLinks(endpoint);
    return &(current_[endpoint] = links.front().get());
  }

  // Sends on the node's current socket, else on its other ones (a node that serves another
  // key of a rotation in progress); the one that takes the message becomes current. The
  // node's links exist (LinkTo). With mu_.
  bool SendTo(const std::string& endpoint, const std::vector<std::string>& frames,
              bool blocking = true, std::optional<std::string_view> payload = std::nullopt) {
    zmq::socket_t*& current = current_[endpoint];
    if (SendCounted(traffic_, *current, frames, blocking, payload)) return true;
    for (auto& s : links_[endpoint]) {
      if (s.get() == current) continue;
      if (SendCounted(traffic_, *s, frames, blocking, payload)) {
        current = s.get();
        return true;
      }
    }
    return false;
  }

  // --- Put's steps. All of them run with mu_ held. ---

  struct PutAttempt {
    std::string node;  // endpoint
    std::string home;  // non-empty for a handoff copy
  };

  // One Put's copies in flight. `bytes` is the caller's buffer: it must outlive the round.
  struct PutRound {
    std::string_view bytes;
    Request base;                            // the request every copy is made from, payload aside
    PutReport report;                        // what the Put returns
    std::vector<std::string> spare;          // handoff nodes not tried yet, the preferred one last
    std::map<uint64_t, PutAttempt> pending;  // request id -> attempt
    // Copies for the local node, written in process once the remote ones are on their way.
    std::vector<std::pair<Request, PutAttempt>> local;
    Clock::time_point deadline;
  };

  // Sends one copy to `node` (queues it when the node is local); false, with a failure in the
  // report, when the node is down or the send fails.
  bool LaunchCopy(PutRound& put, const std::string& node, const std::string& home) {
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
    if (!IsAliveAt(node) || !LinkTo(node) || !SendTo(node, frames, true, put.bytes)) {
      put.report.failures.push_back(node + ": unavailable: down");
      return false;
    }
    put.pending.emplace(r.id, PutAttempt{node, home});
    return true;
  }

  // Launches a copy for `home` on the next spare node that takes it, if any is left.
  void HandOff(PutRound& put, const std::string& home) {
    while (!put.spare.empty()) {
      const std::string h = put.spare.back();
      put.spare.pop_back();
      if (LaunchCopy(put, h, home)) return;
    }
  }

  // Counts an answered copy, or records its failure and hands it off.
  void Settle(PutRound& put, const PutAttempt& a, const Reply& reply) {
    if (reply.ok()) {
      ++put.report.acked;
      put.report.stored_on.push_back(a.node);
      if (!a.home.empty()) put.report.handoffs.push_back(a.node + " for " + a.home);
    } else {
      put.report.failures.push_back(a.node + ": " + reply.ToStatus().ToString());
      HandOff(put, a.home.empty() ? a.node : a.home);
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
      put.report.failures.push_back(a.node + ": unavailable: no answer");
      HandOff(put, a.home.empty() ? a.node : a.home);
    }
  }

  // Waits until the deadline for replies from the nodes with pending copies, and settles the
  // copies they answer.
  void ReceivePutReplies(PutRound& put) {
    std::vector<std::string> nodes;
    std::vector<zmq::pollitem_t> items;
    for (auto& [id, a] : put.pending) {
      if (std::find(nodes.begin(), nodes.end(), a.node) != nodes.end()) continue;
      nodes.push_back(a.node);
      items.push_back({static_cast<void*>(*current_[a.node]), 0, ZMQ_POLLIN, 0});
    }
    zmq::poll(items.data(), items.size(), milliseconds(RemainingMs(put.deadline)));
    for (size_t i = 0; i < items.size(); ++i) {
      if (!(items[i].revents & ZMQ_POLLIN)) continue;
      auto reply = ReceiveCounted(traffic_, *current_[nodes[i]]);
      if (!reply) continue;
      auto it = put.pending.find(reply->id);
      if (it == put.pending.end()) continue;
      const PutAttempt a = it->second;
      put.pending.erase(it);
      MarkReply(a.node, reply->load);
      Settle(put, a, *reply);
    }
  }

  bool IsLocal(const std::string& endpoint) const {
    return !local_endpoint_.empty() && endpoint == local_endpoint_ && options_.local_handler;
  }

  // A request to the local node, answered in process (its id and budget already set).
  Reply LocalReply(const std::string& endpoint, const Request& request) {
    Reply reply = options_.local_handler(request);
    reply.id = request.id;
    MarkReply(endpoint, reply.load);
    return reply;
  }

  // Records a node's ring hash from a heartbeat; says once per change when it is not ours.
  void NoteRing(const std::string& endpoint, uint64_t hash) {
    if (hash == 0) return;
    {
      std::lock_guard lock(health_mu_);
      auto& h = health_[endpoint];
      if (h.ring_hash == hash) return;
      h.ring_hash = hash;
    }
    const uint64_t mine = live_->hash();
    if (hash != mine)
      std::fprintf(stderr,
                   "zerofarm: storage node %s holds ring %s, this process ring %s: the rings "
                   "differ (the node moves no data until they agree)\n",
                   endpoint.c_str(), ChecksumHex(hash).c_str(), ChecksumHex(mine).c_str());
  }

  void MarkReply(const std::string& endpoint, const std::optional<NodeLoad>& load) {
    std::lock_guard lock(health_mu_);
    auto& h = health_[endpoint];
    if (!h.replied && h.first_seen == Clock::time_point()) h.first_seen = Clock::now();
    h.replied = true;
    h.last_reply = Clock::now();
    if (load) h.load = *load;
  }

  // The heartbeat thread's own sockets (sockets are not shared across threads), one set per
  // remote node of the current and previous rings, kept across swaps by endpoint.
  struct Beat {
    std::map<std::string, Links> links;
    std::vector<std::pair<zmq::socket_t*, std::string>> sockets;  // flat, for polling
    uint64_t generation = 0;
  };

  // Connects to the nodes a swap added and closes the links to those it removed.
  void UpdateBeat(Beat& beat) {
    const uint64_t generation = live_->generation();
    if (generation == beat.generation) return;
    beat.generation = generation;
    const std::set<std::string> known = KnownEndpoints();
    for (auto it = beat.links.begin(); it != beat.links.end();)
      it = known.count(it->first) ? std::next(it) : beat.links.erase(it);
    for (const std::string& e : known) {
      if (IsLocal(e) || beat.links.count(e)) continue;
      beat.links[e] = MakeLinks(e);
      std::lock_guard lock(health_mu_);
      auto& h = health_[e];
      if (h.first_seen == Clock::time_point()) h.first_seen = Clock::now();
    }
    beat.sockets.clear();
    for (auto& [e, links] : beat.links)
      for (auto& s : links) beat.sockets.emplace_back(s.get(), e);
  }

  // PINGs every node each interval on the thread's own sockets.
  void HeartbeatLoop() {
    Beat beat;
    uint64_t seq = 0;
    while (true) {
      UpdateBeat(beat);
      const auto round_end = Clock::now() + options_.heartbeat_interval;
      Request ping;
      ping.op = Op::kPing;
      ping.ring_hash = live_->hash();
      ping.timeout_ms = static_cast<uint32_t>(options_.heartbeat_interval.count());
      for (auto& [s, e] : beat.sockets) {
        ping.id = ++seq;
        SendCounted(traffic_, *s, EncodeRequest(ping), /*blocking=*/false);
      }
      // The local node has no socket: its PING runs through the handler.
      if (!local_endpoint_.empty() && IsLocal(local_endpoint_)) {
        ping.id = ++seq;
        LocalReply(local_endpoint_, ping);
      }
      // Collect answers until the round ends.
      while (Clock::now() < round_end) {
        {
          std::unique_lock lock(stop_mu_);
          if (stop_) return;
        }
        std::vector<zmq::pollitem_t> items;
        for (auto& [s, e] : beat.sockets)
          items.push_back({static_cast<void*>(*s), 0, ZMQ_POLLIN, 0});
        zmq::poll(items.data(), items.size(), milliseconds(std::min(RemainingMs(round_end), 50)));
        for (size_t i = 0; i < items.size(); ++i) {
          if (!(items[i].revents & ZMQ_POLLIN)) continue;
          while (auto reply = ReceiveCounted(traffic_, *beat.sockets[i].first)) {
            MarkReply(beat.sockets[i].second, reply->load);
            NoteRing(beat.sockets[i].second, reply->ring_hash);
          }
        }
      }
      std::unique_lock lock(stop_mu_);
      if (stop_) return;
    }
  }

  const std::shared_ptr<LiveRing> live_;
  const ClusterOptions options_;
  const std::string local_endpoint_;  // the local node's endpoint (empty: none)
  zmq::context_t context_;
  const Clock::time_point start_;

  std::mutex mu_;                       // guards links_, current_, links_generation_ and next_id_
  std::map<std::string, Links> links_;  // per remote node endpoint
  std::map<std::string, zmq::socket_t*> current_;  // per remote node: the link in use
  uint64_t links_generation_ = 0;                  // the ring generation links_ was pruned for
  uint64_t next_id_ = 0;

  mutable std::mutex health_mu_;
  std::map<std::string, Health_> health_;  // by endpoint (ids change between rings)

  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  bool stop_ = false;
  std::thread heartbeat_;

  TrafficCounters traffic_;
};

}  // namespace

std::vector<uint32_t> HandoffCandidates(const Ring& ring, uint32_t partition,
                                        const std::string& self_endpoint) {
  const auto& primaries = ring.NodesOf(partition);
  const uint32_t n = static_cast<uint32_t>(ring.nodes().size());
  std::set<std::string> used_zones;
  for (uint32_t p : primaries) used_zones.insert(ring.nodes()[p].zone);
  std::vector<uint32_t> out;
  for (uint32_t step = 1; step <= n; ++step) {
    const uint32_t candidate = (primaries.front() + step) % n;
    if (std::find(primaries.begin(), primaries.end(), candidate) != primaries.end()) continue;
    if (ring.nodes()[candidate].endpoint == self_endpoint) continue;
    out.push_back(candidate);
  }
  std::stable_partition(out.begin(), out.end(),
                        [&](uint32_t c) { return used_zones.count(ring.nodes()[c].zone) == 0; });
  return out;
}

Result<std::unique_ptr<ClusterClient>> ClusterClient::Create(const Ring& ring,
                                                             const ClusterOptions& options) {
  return Create(std::make_shared<LiveRing>(ring), options);
}

Result<std::unique_ptr<ClusterClient>> ClusterClient::Create(std::shared_ptr<LiveRing> live,
                                                             const ClusterOptions& options) {
  const auto ring = live->Get();
  if (ring->nodes().empty())
    return Status::Error(ErrorCode::kInvalidArgument, "the ring has no nodes");
  if (options.local_node && *options.local_node >= ring->nodes().size())
    return Status::Error(ErrorCode::kInvalidArgument, "local_node is not a node of the ring");
  if (options.local_node && !options.local_handler)
    return Status::Error(ErrorCode::kInvalidArgument, "local_node needs a local_handler");
  const std::string local =
      options.local_node ? ring->nodes()[*options.local_node].endpoint : std::string();
  try {
    return std::unique_ptr<ClusterClient>(new ClusterClientImpl(std::move(live), options, local));
  } catch (const zmq::error_t& e) {
    return Status::Error(ErrorCode::kIoError,
                         std::string("cannot set up ZeroMQ sockets: ") + e.what());
  }
}

}  // namespace zerofarm::storage
