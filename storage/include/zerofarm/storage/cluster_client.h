// ClusterClient: the client side of a storage cluster (used by the proxy, and by each node's
// replicator and auditor to reach its peers). It keeps one ZeroMQ DEALER per node, places
// objects with the Ring, writes every replica in parallel and acknowledges once a majority of
// them has synced the bytes; a replica whose node is down goes to a handoff node (the next
// nodes in ring order that hold no replica of the partition, other zones first) that records
// where the copy belongs so its replicator moves it home. Reads verify XXH64 and fall back to
// the next replica on a mismatch, an error or a timeout.
// Liveness: with heartbeats on, a background thread PINGs every node each heartbeat_interval;
// a node that has not answered for dead_after is down (and up again at its next answer).
// Ring changes: a client follows a LiveRing (live_ring.h). Each operation places its object
// with one snapshot of the ring; sockets and liveness are kept per node endpoint, so a swap
// connects to the nodes the new ring adds and keeps the ones of the previous ring (reads fall
// back to them while the replicators move their objects); a swap waits for the requests in
// flight on the client's sockets and drops none. Node ids given to Call/IsAlive/HandoffsOf
// are ids in the client's current ring (ring()); callers holding an older snapshot use the
// endpoint forms.
// Thread safety: safe for concurrent use; requests are serialized on the client's sockets (use
// one client per thread for parallelism). A Ring given to Create is copied.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "zerofarm/base/status.h"
#include "zerofarm/storage/farm_key.h"
#include "zerofarm/storage/live_ring.h"
#include "zerofarm/storage/node_protocol.h"
#include "zerofarm/storage/ring.h"

namespace zerofarm::storage {

struct ClusterOptions {
  std::chrono::milliseconds request_timeout{5000};  // per request to one node
  bool heartbeats = true;                           // run the liveness thread
  std::chrono::milliseconds heartbeat_interval{500};
  std::chrono::milliseconds dead_after{2000};  // no answer for this long: down
  std::string self_endpoint;  // a node's own endpoint: never a target of this client's writes
  // A node's own client: requests for ring node `local_node` (its id in the ring given to
  // Create; the node is followed by endpoint across ring changes) are answered by local_handler in
  // process instead of going over the network (always alive, never counted as traffic; PUT and
  // DELETE copies for it are written after the remote ones are sent). The handler runs on the
  // calling thread (heartbeat PINGs on the heartbeat thread), possibly on several threads at
  // once: it must be thread-safe. Create refuses a local_node without a handler.
  std::optional<uint32_t> local_node;
  std::function<Reply(const Request&)> local_handler;
  // Without heartbeats of its own, a client may share another's liveness view: IsAlive asks
  // this, by node endpoint (a pool of clients behind one heartbeat thread; ClusterStore does so).
  std::function<bool(const std::string& endpoint)> liveness;
  // The farm key (farm_key.h): every connection to a node is CURVE-authenticated and encrypted
  // with it. Without one the client speaks plaintext to nodes started --insecure.
  std::optional<FarmKey> key;
};

// Bytes this client sent and received over the network: the frames of every request it sent
// (heartbeat PINGs included) and of every message it received; `requests` counts the sends.
struct ClientTraffic {
  uint64_t bytes_sent = 0;
  uint64_t bytes_received = 0;
  uint64_t requests = 0;
};

struct PutReport {
  uint32_t acked = 0;                  // synced copies confirmed before returning
  uint32_t quorum = 0;                 // majority of the ring's replicas
  std::vector<std::string> stored_on;  // endpoints that acknowledged
  std::vector<std::string> handoffs;   // "handoff_endpoint for home_endpoint"
  std::vector<std::string> failures;   // "endpoint: code: message" of failed attempts
};

struct NodeHealth {
  std::string endpoint;
  bool alive = false;
  std::chrono::milliseconds since_last_reply{0};  // since the last answer (or since start)
  NodeLoad load;                                  // as of the last PING reply
  uint64_t ring_hash = 0;  // the node's Ring::ContentHash as its last PING reply said (0: unknown)
};

class ClusterClient {
 public:
  static Result<std::unique_ptr<ClusterClient>> Create(const Ring& ring,
                                                       const ClusterOptions& options = {});
  // A client that follows `ring` as it is swapped (shared with the process's other users).
  static Result<std::unique_ptr<ClusterClient>> Create(std::shared_ptr<LiveRing> ring,
                                                       const ClusterOptions& options = {});
  virtual ~ClusterClient() = default;

  // Stores `bytes` under `name` (at most kMaxPayloadBytes) on every replica of its partition;
  // ok once a majority acknowledged a synced write (handoff copies count). Errors: "no_quorum"
  // (the message lists each failure), "too_large", "invalid_argument".
  virtual Result<PutReport> Put(std::string_view name, std::string_view bytes) = 0;
  // The bytes, verified against their checksum, from the first replica (or handoff) that has
  // a good copy. Errors: "not_found" (no node that answered has it, and at least a majority of
  // the replica count answered), "unavailable" (too few nodes could answer).
  virtual Result<std::string> Get(std::string_view name) = 0;
  // Deletes one object (`prefix` false) or every object under a prefix on every node, leaving
  // tombstones so copies on nodes that were down are not brought back. Ok when a majority of
  // nodes acknowledged; returns how many objects were removed in total.
  virtual Result<uint64_t> Delete(std::string_view name_or_prefix, bool prefix) = 0;

  // One request to one node (by ring id), waiting at most timeout (request_timeout when 0).
  // Transport failures are "unavailable"; the node's own error replies come back as a Reply.
  virtual Result<Reply> Call(uint32_t node, Request request,
                             std::chrono::milliseconds timeout = std::chrono::milliseconds(0)) = 0;
  // The same by endpoint: any node of the current or previous ring (others: "invalid_argument").
  virtual Result<Reply> CallAt(
      const std::string& endpoint, Request request,
      std::chrono::milliseconds timeout = std::chrono::milliseconds(0)) = 0;

  virtual bool IsAlive(uint32_t node) const = 0;
  virtual bool IsAliveAt(const std::string& endpoint) const = 0;
  // Whether a write can reach its quorum now: at least a majority of the replica count of
  // nodes is alive and not full (any live node can hold a handoff copy). /healthz says so.
  virtual bool WritesPossible() const = 0;
  virtual std::vector<NodeHealth> Health() const = 0;
  // The handoff candidates of a partition in preference order (see above).
  virtual std::vector<uint32_t> HandoffsOf(uint32_t partition) const = 0;
  // Where to read an object from, in order (endpoints): the replicas of its partition in the
  // current ring (live ones first), up to `replicas` handoff candidates, then the replicas of
  // the previous ring that the current one placed elsewhere (their copies may not have moved
  // yet).
  virtual std::vector<std::string> ReadOrder(std::string_view name) const = 0;
  // A snapshot of the current ring, and the live ring it comes from.
  virtual std::shared_ptr<const Ring> ring() const = 0;
  virtual const std::shared_ptr<LiveRing>& live_ring() const = 0;
  virtual const ClusterOptions& options() const = 0;
  virtual ClientTraffic traffic() const = 0;
};

// The handoff candidates of a partition in `ring`, in preference order (see above), leaving
// out the node at `self_endpoint`.
std::vector<uint32_t> HandoffCandidates(const Ring& ring, uint32_t partition,
                                        const std::string& self_endpoint);

}  // namespace zerofarm::storage
