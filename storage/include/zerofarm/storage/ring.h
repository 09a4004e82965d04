// The ring: where every object lives in a cluster, after OpenStack Swift's design. The name
// space is cut into 2^part_power partitions (by the top bits of a hash of the object name);
// each partition has `replicas` copies, each on a different node and, where the zones allow,
// in a different failure zone. Nodes carry weights: a node's share of partition replicas is
// its share of the total weight. The ring is computed once by BuildRing (deterministic: the
// same inputs give the same ring) and stored as a human-readable text file that every process
// loads. Rebuilding from a previous ring moves only what the change requires: a new node
// takes about its share of replicas from the others, and no partition loses more than one
// replica in one rebuild while another choice exists.
// Thread safety: a Ring is an immutable value; share it freely.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "zerofarm/base/status.h"

namespace zerofarm::storage {

struct RingNode {
  uint32_t id = 0;         // index in Ring::nodes()
  std::string endpoint;    // ZeroMQ endpoint, e.g. tcp://10.0.0.1:7001 (unique)
  std::string zone = "1";  // failure zone
  double weight = 1.0;     // > 0
};

struct RingOptions {
  int part_power = 8;  // 2^part_power partitions, 1..20
  int replicas = 3;    // 1..nodes
};

class Ring {
 public:
  // Builds a ring over `nodes` (their ids are reassigned to their positions). With
  // `previous`, nodes keep the partitions they had as far as the new weights allow (nodes are
  // matched by endpoint). Errors: "invalid_argument" (no nodes, duplicate endpoint, weight <= 0,
  // fewer nodes than replicas, part_power or replicas out of range, a previous ring with
  // another part_power).
  static Result<Ring> Build(const RingOptions& options, std::vector<RingNode> nodes,
                            const Ring* previous = nullptr);

  // The text form (see ring.cc for the grammar) and its parser. Parse checks everything Build
  // guarantees (distinct nodes per partition, ids in range, counts); errors: "corrupt_ring".
  std::string ToText() const;
  static Result<Ring> Parse(std::string_view text);
  static Result<Ring> Load(const std::string& path);
  Status Save(const std::string& path) const;  // written to a temporary file, synced, renamed

  int part_power() const { return part_power_; }
  int replicas() const { return replicas_; }
  uint32_t partitions() const { return uint32_t{1} << part_power_; }
  const std::vector<RingNode>& nodes() const { return nodes_; }
  // The nodes of a partition's replicas, primary first.
  const std::vector<uint32_t>& NodesOf(uint32_t partition) const { return table_[partition]; }
  // The partition of an object name: the top part_power bits of XXH64(key, seed 0), where the
  // key is the name up to its first '#' ("A#B" is placed with "A": the parts of a large
  // object, and a task's outputs named after its input, live with that object).
  uint32_t PartitionOf(std::string_view object_name) const;
  // XXH64 of the ring's text form: two processes place every object alike exactly when their
  // hashes agree (the same nodes in another order make another ring, and another hash).
  // Nodes and proxies exchange it in heartbeats.
  uint64_t ContentHash() const;
  // How many partition replicas each node holds (index = node id).
  std::vector<uint32_t> ReplicaCounts() const;
  // Partition replicas (slots) whose node differs between two rings with the same
  // part_power and replicas, nodes compared by endpoint. -1 if they are not comparable.
  static int64_t MovedReplicas(const Ring& before, const Ring& after);

 private:
  int part_power_ = 0;
  int replicas_ = 0;
  std::vector<RingNode> nodes_;
  std::vector<std::vector<uint32_t>> table_;  // [partition][replica] -> node id
};

}  // namespace zerofarm::storage
