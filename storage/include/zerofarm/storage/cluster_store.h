// ClusterStore: the Store interface (store.h) over a storage cluster, so the job engine, the
// stitcher and ingest run unchanged on a proxy (objects on the nodes) or inside a node's task
// (its own objects served in-process, its peers' over the network).
//
// Objects are kept as Swift-style large objects: the object "name" is a small manifest (JSON:
// the writer's generation, size, and each part's size and XXH64) and its bytes are parts
// "name#<generation>.00000", "name#<generation>.00001", ... of at most part_bytes each. Each
// writer draws a new random generation, so concurrent or repeated writers of one name never
// touch each other's parts (a task and its straggler backup may both write their outputs). The ring
// places "A#B" with "A" (ring.h), so every part of an object lives on the replicas of the object's
// own partition: a node holding a chunk holds all of it. A writer streams: each part is written
// (quorum, ring.h placement) when it fills, the manifest last on Commit, so an object is visible
// only once all of its parts are durable. Readers fetch part by part and verify each part against
// the manifest (the nodes verify their copies as well). Metadata records (PutMeta & co.) live in a
// local Store given by the caller (the proxy's own RocksDB): the cluster holds bytes, the proxy
// holds its job state. Thread safety: safe for concurrent use; requests run on a pool of
// ClusterClients (one per concurrent caller up to `clients`, more callers wait for a free one).
#pragma once

#include <cstdint>
#include <memory>

#include "zerofarm/base/status.h"
#include "zerofarm/storage/cluster_client.h"
#include "zerofarm/storage/ring.h"
#include "zerofarm/storage/store.h"

namespace zerofarm::storage {

struct ClusterStoreOptions {
  // Where metadata records live; not owned, must outlive the ClusterStore. Null: the meta calls
  // answer "unsupported" (a node's task view needs none).
  Store* meta = nullptr;
  size_t part_bytes = size_t{8} << 20;  // bytes per part (<= kMaxPayloadBytes)
  int clients = 4;                      // pooled clients = concurrent cluster requests
  // Options of every pooled client. Only the first client runs heartbeats (when enabled); its
  // liveness view is the one health() and client() report.
  ClusterOptions cluster;
};

class ClusterStore : public Store {
 public:
  static Result<std::unique_ptr<ClusterStore>> Create(const Ring& ring,
                                                      const ClusterStoreOptions& options);
  // A store that follows `ring` as it is swapped (live_ring.h): each read or write places its
  // object with one snapshot, and reads fall back to the previous ring's holders.
  static Result<std::unique_ptr<ClusterStore>> Create(std::shared_ptr<LiveRing> ring,
                                                      const ClusterStoreOptions& options);
  ~ClusterStore() override = default;

  // The pool's first client (liveness view, Call for task ops, ring()).
  virtual ClusterClient& client() = 0;
  // Network bytes summed over the pool (calls served in-process are not counted).
  virtual ClientTraffic traffic() const = 0;
  // The replica holders of an object's partition, primary first (ring ids).
  virtual std::vector<uint32_t> HoldersOf(std::string_view name) const = 0;

  // Store semantics over the cluster. Error codes as in store.h plus "unavailable" (too few
  // nodes answered) and "no_quorum"; an object whose manifest does not parse, or a part with
  // no copy matching the manifest on any replica, is "corrupt". ListObjects asks every live
  // node (of the current ring and of the one it replaced) for every partition (costly: for tools
  // and tests, not the job path) and leaves out part names (ending in "#<16 hex>.<5 digits>"), so
  // "A#out" is listed as an object. DeleteObject removes the manifest, then every name under
  // "name#" (its parts, and any object named "name#..."). DeleteObjects(prefix) leaves tombstones
  // on every node (ClusterClient::Delete) and returns how many objects (manifests) a ListObjects
  // just before the delete found. Overwriting an object leaves the parts of the version it replaces
  // (a reader that opened it still reads it whole) until the object or its prefix is deleted.
};

}  // namespace zerofarm::storage
