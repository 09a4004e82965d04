// The auditor of one node (Swift's object auditor): reads every local object back at a bounded
// rate, checks each block against its checksum, quarantines what is damaged, then repairs every
// quarantined object from a peer holding a verified copy. One pass at a time; thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>

#include "node_background.h"

namespace zerofarm::storage {

struct AuditStats {
  uint64_t scanned = 0;             // objects read back
  uint64_t bytes = 0;               // bytes read back
  uint64_t corrupt = 0;             // found damaged and quarantined in this pass
  uint64_t deleted_while_read = 0;  // deleted by a client during the pass: not damage
  uint64_t repaired = 0;            // quarantined objects fetched again from a peer
  uint64_t unrepaired = 0;          // quarantined objects no peer could give back yet
  // By name, as the AUDIT reply carries them.
  std::map<std::string, uint64_t> ToMap() const;
};

class Auditor {
 public:
  explicit Auditor(NodeBackground node) : node_(std::move(node)) {}
  // One pass; `bytes_per_second` 0 reads as fast as the disk allows.
  AuditStats Pass(uint64_t bytes_per_second);

 private:
  bool Repair(const std::string& name, uint64_t expected);

  NodeBackground node_;
  std::mutex pass_mu_;
};

}  // namespace zerofarm::storage
