// What a node's background passes (the replicator and the auditor) use of their node: its live
// ring (each pass takes one snapshot and finds the node in it by `self`), its objects, its client
// to the peers, and how to log, wait and learn that the node stops. Plain references; the node
// outlives its passes.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "node_objects.h"
#include "zerofarm/storage/cluster_client.h"
#include "zerofarm/storage/live_ring.h"

namespace zerofarm::storage {

struct NodeBackground {
  LiveRing& ring;
  std::string self;  // this node's endpoint: its place in every ring it accepts
  NodeObjects& objects;
  ClusterClient& peers;
  std::function<void(const std::string&)> log;
  std::function<bool()> stopping;
  // Waits until `until` or until the node stops; true when it stops.
  std::function<bool(std::chrono::steady_clock::time_point until)> wait_until;
};

}  // namespace zerofarm::storage
