// NodeObjects: a storage node's objects on top of its Store, with the records a cluster needs.
// Private to storage/ (used by the node server, its replicator and auditor).
//
// Meta records, beside the Store's own objects (which keep the object bytes under their name):
//   "p/<partition:05>/<name>" -> "<xxh64 hex> <ts> <size>"   the index: the served set, per
//                                                             partition, for LIST and audits
//   "h/<name>"                -> home endpoint                a copy held as a handoff
//   "q/<name>"                -> "<xxh64 hex> <reason>"        quarantined (awaits a good copy)
//   "tn/<name>", "tp/<prefix>" -> ts                          tombstones of deletes
// An object is served only when its index record exists; the index record is written after the
// object's bytes are synced and removed before them, so a crash leaves at worst an unindexed
// object (invisible) and never an index record without bytes.
// Thread safety: safe for concurrent use (writes to one name are serialized by a lock stripe).
#pragma once

#include <array>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "zerofarm/storage/node_protocol.h"
#include "zerofarm/storage/ring.h"
#include "zerofarm/storage/store.h"

namespace zerofarm::storage {

class NodeObjects {
 public:
  NodeObjects(Store* store, const Ring* ring) : store_(store), ring_(ring) {}

  // Verifies XXH64(bytes) == checksum ("checksum_mismatch"), refuses writes older than the
  // stored copy or a tombstone ("superseded"), then stores bytes and index synced.
  Result<ObjectEntry> Put(const std::string& name, std::string_view bytes, uint64_t checksum,
                          int64_t ts, const std::string& handoff_for);
  // The bytes, verified against the index checksum (and the Store's block checksums). A
  // failed check quarantines the object and returns "corrupt".
  Result<std::pair<ObjectEntry, std::string>> Get(const std::string& name);
  Result<ObjectEntry> Head(const std::string& name);
  // Deletes `name`, or every object under `prefix`, leaving a tombstone at `ts`. Returns how
  // many objects were removed.
  Result<size_t> Delete(const std::string& name, const std::string& prefix, int64_t ts);
  // Removes a local copy without a tombstone (a handoff that reached home).
  Status Drop(const std::string& name);
  // Drop, only while the local copy is still `entry` (same ts and checksum): a copy written
  // since `entry` was listed stays. True when it was dropped.
  Result<bool> DropIfUnchanged(const ObjectEntry& entry);

  Result<std::vector<ObjectEntry>> List(uint32_t partition);
  Result<std::vector<ObjectEntry>> ListAll();
  static uint64_t ListHash(const std::vector<ObjectEntry>& entries);

  // Moves an object out of the served set and records why; its expected checksum is kept.
  // "not_found" (nothing quarantined) when the object was deleted since it was read.
  Status Quarantine(const ObjectEntry& entry, const std::string& reason);
  // (name, expected checksum) of quarantined objects.
  Result<std::vector<std::pair<std::string, uint64_t>>> Quarantined();
  Status ClearQuarantine(const std::string& name);
  // (name, home endpoint) of handoff copies held here.
  Result<std::vector<std::pair<std::string, std::string>>> Handoffs();

  // Reads and verifies one object without returning bytes (the auditor): ok, "corrupt" after
  // quarantining it, or "not_found" when it was deleted while being read. Sets *bytes_read.
  Status Verify(const ObjectEntry& entry, uint64_t* bytes_read);

 private:
  std::string IndexKey(const std::string& name) const;
  Result<std::optional<ObjectEntry>> ReadIndex(const std::string& name);
  Result<int64_t> TombstoneFor(const std::string& name);
  Status QuarantineLocked(const ObjectEntry& entry, const std::string& reason);
  std::mutex& Stripe(const std::string& name);

  Store* store_;
  const Ring* ring_;
  std::array<std::mutex, 64> stripes_;
};

}  // namespace zerofarm::storage
