// The replicator of one node (Swift's object replicator): for every partition it holds objects
// of, brings every other replica up to date (a LIST hash first, then the missing or older
// objects), drops what a peer's tombstone covers, and removes handoffs once every replica holds
// them. It moves nothing while its ring is not the farm's majority ring. One pass at a time;
// thread-safe.
// Ring changes: each pass works with one snapshot of the node's live ring. Objects of a
// partition the new ring no longer places on this node are treated like handoffs: pushed to
// the partition's new holders and dropped here only once every one of them holds them (LIST
// hash or entries match, synced writes acknowledged); partitions that stay are only brought up
// to date on the holders the new ring added. Nothing else moves.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "node_background.h"

namespace zerofarm::storage {

struct ReplicationStats {
  uint64_t partitions = 0;         // partitions this node holds objects of, visited
  uint64_t pushed = 0;             // objects written to a peer
  uint64_t handed_home = 0;        // handoffs removed here: every replica holds them now
  uint64_t moved_out = 0;          // of those, copies of partitions this node no longer holds
  uint64_t in_sync = 0;            // partition replicas whose LIST hash matched
  uint64_t peers_unreachable = 0;  // partition replicas that did not answer
  uint64_t peers_other_ring = 0;   // peers skipped: they hold another ring
  uint64_t ring_mismatch = 0;      // 1 when this node's ring is not the majority's: no pass
  uint64_t dropped_deleted = 0;    // local copies a peer's tombstone covers, dropped
  uint64_t quarantined = 0;        // objects found corrupt while pushing
  uint64_t errors = 0;
  uint64_t handoffs_held = 0;  // handoffs still here after the pass
  // By name, as the REPLICATE reply carries them.
  std::map<std::string, uint64_t> ToMap() const;
};

class Replicator {
 public:
  explicit Replicator(NodeBackground node) : node_(std::move(node)) {}
  // One pass over every local object.
  ReplicationStats Pass();

 private:
  bool Push(const ObjectEntry& e, uint32_t peer, ReplicationStats& stats, bool* deleted);
  // The ring of the pass in progress (set by Pass under pass_mu_).
  struct PassRing {
    std::shared_ptr<const Ring> ring;
    uint32_t self = 0;  // this node's id in it
    uint64_t hash = 0;
    const std::string& Endpoint(uint32_t node) const { return ring->nodes()[node].endpoint; }
  };

  bool SyncPartition(uint32_t partition, const std::vector<ObjectEntry>& entries, uint32_t peer,
                     ReplicationStats& stats, std::set<std::string>* deleted,
                     std::set<uint32_t>* unreachable);
  bool HeldBefore(uint32_t partition) const;
  bool RingAgreed(std::set<uint32_t>* other_ring, ReplicationStats& stats);

  NodeBackground node_;
  std::mutex pass_mu_;
  PassRing pass_;
};

}  // namespace zerofarm::storage
