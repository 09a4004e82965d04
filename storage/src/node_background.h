// What a node's background passes (the replicator and the auditor) use of their node: its ring
// and place in it, its objects, its client to the peers, and how to log, wait and learn that
// the node stops. Plain references; the node outlives its passes.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "node_objects.h"
#include "zerofarm/storage/cluster_client.h"
#include "zerofarm/storage/ring.h"

namespace zerofarm::storage {

struct NodeBackground {
  const Ring& ring;
  uint32_t node_id;
  std::string self;    // this node's endpoint, for messages
  uint64_t ring_hash;  // Ring::ContentHash of `ring`
  NodeObjects& objects;
  ClusterClient& peers;
  std::function<void(const std::string&)> log;
  std::function<bool()> stopping;
  // Waits until `until` or until the node stops; true when it stops.
  std::function<bool(std::chrono::steady_clock::time_point until)> wait_until;
};

}  // namespace zerofarm::storage
