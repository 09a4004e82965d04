// Replicator (replicator.h).
#include "replicator.h"

#include <algorithm>
#include <unordered_map>

#include "zerofarm/storage/node_protocol.h"

namespace zerofarm::storage {

std::map<std::string, uint64_t> ReplicationStats::ToMap() const {
  return {{"partitions", partitions},
          {"pushed", pushed},
          {"handed_home", handed_home},
          {"moved_out", moved_out},
          {"in_sync", in_sync},
          {"peers_unreachable", peers_unreachable},
          {"peers_other_ring", peers_other_ring},
          {"ring_mismatch", ring_mismatch},
          {"dropped_deleted", dropped_deleted},
          {"quarantined", quarantined},
          {"errors", errors},
          {"handoffs_held", handoffs_held}};
}

// Pushes one local object to a peer; true when the peer holds it afterwards. Sets *deleted when
// the peer answers that a tombstone covers it.
bool Replicator::Push(const ObjectEntry& e, uint32_t peer, ReplicationStats& stats, bool* deleted) {
  auto got = node_.objects.Get(e.name);
  if (!got.ok()) {
    if (got.status().code() == ErrorCode::kNotFound)
      return true;  // deleted meanwhile: nothing owed
    ++(got.status().code() == ErrorCode::kCorrupt ? stats.quarantined : stats.errors);
    return false;
  }
  Request put;
  put.op = Op::kPut;
  put.name = e.name;
  put.checksum = got->first.checksum;
  put.ts = got->first.ts;
  put.payload = std::move(got->second);
  auto reply = node_.peers.CallAt(pass_.Endpoint(peer), std::move(put));
  if (!reply.ok()) {
    ++stats.errors;
    return false;
  }
  if (reply->code == ErrorCode::kDeleted) {
    *deleted = true;
    return true;
  }
  if (reply->ok() || reply->code == ErrorCode::kSuperseded) {
    if (reply->ok()) ++stats.pushed;
    return true;
  }
  ++stats.errors;
  return false;
}

// Brings one peer's copy of a partition up to date with the local entries. True when the peer
// holds everything listed (or newer).
bool Replicator::SyncPartition(uint32_t partition, const std::vector<ObjectEntry>& entries,
                               uint32_t peer, ReplicationStats& stats,
                               std::set<std::string>* deleted, std::set<uint32_t>* unreachable) {
  if (unreachable->count(peer)) {
    ++stats.peers_unreachable;
    return false;
  }
  Request list;
  list.op = Op::kList;
  list.partition = partition;
  list.hash_only = true;
  auto hash = node_.peers.CallAt(pass_.Endpoint(peer), list);
  if (!hash.ok() || !hash->ok()) {
    if (!hash.ok()) unreachable->insert(peer);  // skip it for the rest of this pass
    ++stats.peers_unreachable;
    return false;
  }
  if (hash->list_hash == NodeObjects::ListHash(entries)) {
    ++stats.in_sync;
    return true;
  }
  list.hash_only = false;
  auto full = node_.peers.CallAt(pass_.Endpoint(peer), list);
  if (!full.ok() || !full->ok()) {
    ++stats.peers_unreachable;
    return false;
  }
  std::unordered_map<std::string, const ObjectEntry*> theirs;
  for (const auto& t : full->entries) theirs[t.name] = &t;
  bool complete = true;
  for (const auto& e : entries) {
    auto it = theirs.find(e.name);
    if (it != theirs.end() &&
        (it->second->ts > e.ts || (it->second->ts == e.ts && it->second->checksum >= e.checksum)))
      continue;
    bool gone = false;
    if (!Push(e, peer, stats, &gone)) complete = false;
    if (gone) deleted->insert(e.name);
  }
  return complete;
}

// One ring for the farm: asks every peer for its ring's hash. False when this node's ring is not
// the one a strict majority of the answering nodes (itself included) holds: then it moves no
// data at all. Peers whose ring differs from this (majority) one go in *other_ring: no data
// moves to them either. Each disagreement is logged by name.
bool Replicator::RingAgreed(std::set<uint32_t>* other_ring, ReplicationStats& stats) {
  std::map<uint64_t, std::vector<std::string>> holders{{pass_.hash, {node_.self + " (this node)"}}};
  std::map<uint32_t, uint64_t> peer_hash;
  for (const auto& n : pass_.ring->nodes()) {
    if (n.id == pass_.self) continue;
    Request ping;
    ping.op = Op::kPing;
    ping.ring_hash = pass_.hash;
    auto reply = node_.peers.CallAt(n.endpoint, ping);
    if (!reply.ok() || !reply->ok() || reply->ring_hash == 0) continue;
    peer_hash[n.id] = reply->ring_hash;
    holders[reply->ring_hash].push_back(n.endpoint);
  }
  size_t answered = 0;
  for (const auto& [hash, who] : holders) answered += who.size();
  const size_t mine = holders[pass_.hash].size();
  auto describe = [&] {
    std::string text;
    for (const auto& [hash, who] : holders) {
      text += (text.empty() ? "" : "; ") + ChecksumHex(hash) + ":";
      for (const auto& w : who) text += " " + w;
    }
    return text;
  };
  if (2 * mine <= answered) {
    ++stats.ring_mismatch;
    node_.log("ring " + ChecksumHex(pass_.hash) +
              " of this node is not the farm's majority ring (rings held: " + describe() +
              "): replication paused, no data moves until the rings agree");
    return false;
  }
  for (const auto& [id, hash] : peer_hash)
    if (hash != pass_.hash) {
      other_ring->insert(id);
      ++stats.peers_other_ring;
    }
  if (!other_ring->empty())
    node_.log("peers hold another ring than this node and the majority (" + describe() +
              "): no data moves to them until the rings agree");
  return true;
}

// True when the ring before the last swap placed `partition` on this node.
bool Replicator::HeldBefore(uint32_t partition) const {
  const auto previous = node_.ring.Previous();
  if (!previous || previous->part_power() != pass_.ring->part_power()) return false;
  for (uint32_t n : previous->NodesOf(partition))
    if (previous->nodes()[n].endpoint == node_.self) return true;
  return false;
}

ReplicationStats Replicator::Pass() {
  std::lock_guard pass(pass_mu_);
  ReplicationStats stats;
  pass_.ring = node_.ring.Get();
  const auto self = NodeIdIn(*pass_.ring, node_.self);
  if (!self) {  // LiveRing refuses such rings; a node outside its ring moves nothing
    ++stats.errors;
    return stats;
  }
  pass_.self = *self;
  pass_.hash = pass_.ring->ContentHash();
  std::set<uint32_t> unreachable;
  if (!RingAgreed(&unreachable, stats)) return stats;
  auto all = node_.objects.ListAll();
  if (!all.ok()) {
    node_.log("replicator: " + all.status().ToString());
    stats.errors = 1;
    return stats;
  }
  std::map<uint32_t, std::vector<ObjectEntry>> by_partition;
  const Ring& ring = *pass_.ring;
  for (auto& e : *all) by_partition[ring.PartitionOf(e.name)].push_back(std::move(e));
  for (const auto& [partition, entries] : by_partition) {
    if (node_.stopping()) break;
    ++stats.partitions;
    const auto& replicas = ring.NodesOf(partition);
    const bool mine = std::find(replicas.begin(), replicas.end(), pass_.self) != replicas.end();
    bool home_has_all = true;
    std::set<std::string> deleted;
    for (uint32_t peer : replicas) {
      if (peer == pass_.self) continue;
      if (!SyncPartition(partition, entries, peer, stats, &deleted, &unreachable))
        home_has_all = false;
    }
    for (const auto& name : deleted)
      if (node_.objects.Drop(name).ok()) ++stats.dropped_deleted;
    if (!mine && home_has_all) {
      // A handoff, or a copy left behind by a ring change: every replica has it now.
      const bool moved = HeldBefore(partition);
      for (const auto& e : entries) {
        // A copy rewritten here since the listing (a client still on the old ring) stays for
        // the next pass.
        if (auto dropped = node_.objects.DropIfUnchanged(e); dropped.ok() && *dropped) {
          ++stats.handed_home;
          stats.moved_out += moved ? 1 : 0;
          node_.log(std::string(moved ? "moved" : "handoff") + " '" + e.name +
                    "' is home on every replica; local copy removed");
        }
      }
    }
  }
  if (auto held = node_.objects.Handoffs(); held.ok()) stats.handoffs_held = held->size();
  return stats;
}

}  // namespace zerofarm::storage
