// Auditor (auditor.h).
#include "auditor.h"

#include <vector>

#include "zerofarm/storage/node_protocol.h"

namespace zerofarm::storage {

std::map<std::string, uint64_t> AuditStats::ToMap() const {
  return {{"scanned", scanned},       {"bytes", bytes},
          {"corrupt", corrupt},       {"repaired", repaired},
          {"unrepaired", unrepaired}, {"deleted_while_read", deleted_while_read}};
}

// Fetches a verified copy of a quarantined object from a peer holding it.
bool Auditor::Repair(const std::string& name, uint64_t expected) {
  // The current ring's replicas, its handoff candidates and the previous ring's holders.
  for (const std::string& from : node_.peers.ReadOrder(name)) {
    if (from == node_.self) continue;
    Request get;
    get.op = Op::kGet;
    get.name = name;
    auto reply = node_.peers.CallAt(from, get);
    if (!reply.ok() || !reply->ok() || !reply->object) continue;
    if (Checksum(reply->payload) != reply->object->checksum) continue;
    if (reply->object->checksum != expected)
      node_.log("repair of '" + name + "' takes a newer copy from " + from);
    auto stored =
        node_.objects.Put(name, reply->payload, reply->object->checksum, reply->object->ts, "");
    if (stored.ok() || stored.status().code() == ErrorCode::kSuperseded) {
      (void)node_.objects.ClearQuarantine(name);
      node_.log("repaired '" + name + "' from " + from);
      return true;
    }
  }
  return false;
}

AuditStats Auditor::Pass(uint64_t bytes_per_second) {
  std::lock_guard pass(pass_mu_);
  AuditStats stats;
  auto all = node_.objects.ListAll();
  if (!all.ok()) {
    node_.log("auditor: " + all.status().ToString());
    return stats;
  }
  const auto start = std::chrono::steady_clock::now();
  for (const auto& e : *all) {
    if (node_.stopping()) return stats;
    uint64_t read = 0;
    Status s = node_.objects.Verify(e, &read);
    ++stats.scanned;
    stats.bytes += read;
    if (s.code() == ErrorCode::kNotFound) {
      ++stats.deleted_while_read;
    } else if (s.code() == ErrorCode::kCorrupt) {
      ++stats.corrupt;
      node_.log("auditor quarantined '" + e.name + "': " + s.message());
    }
    if (bytes_per_second > 0) {
      // Bounded rate: wait until the bytes read so far fit the budget.
      const auto due = start + std::chrono::milliseconds(stats.bytes * 1000 / bytes_per_second);
      if (node_.wait_until(due)) return stats;
    }
  }
  auto quarantined = node_.objects.Quarantined();
  if (quarantined.ok())
    for (const auto& [name, expected] : *quarantined)
      ++(Repair(name, expected) ? stats.repaired : stats.unrepaired);
  return stats;
}

}  // namespace zerofarm::storage
