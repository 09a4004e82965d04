// A storage node's objects and their cluster records (node_objects.h).
#include "node_objects.h"

#include <xxhash.h>

#include <cinttypes>
#include <cstdio>
#include <functional>

namespace zerofarm::storage {
namespace {

constexpr std::string_view kIndexPrefix = "p/";
constexpr std::string_view kHandoffPrefix = "h/";
constexpr std::string_view kQuarantinePrefix = "q/";
constexpr std::string_view kNameTombstonePrefix = "tn/";
constexpr std::string_view kPrefixTombstonePrefix = "tp/";

std::string PartitionPrefix(uint32_t partition) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "p/%05u/", partition);
  return buf;
}

std::string IndexValue(const ObjectEntry& e) {
  return ChecksumHex(e.checksum) + " " + std::to_string(e.ts) + " " + std::to_string(e.size);
}

std::optional<ObjectEntry> ParseIndex(std::string name, const std::string& value) {
  ObjectEntry e;
  e.name = std::move(name);
  long long ts = 0;
  unsigned long long size = 0;
  uint64_t sum = 0;
  if (std::sscanf(value.c_str(), "%16" SCNx64 " %lld %llu", &sum, &ts, &size) != 3)
    return std::nullopt;
  e.checksum = sum;
  e.ts = ts;
  e.size = size;
  return e;
}

}  // namespace

std::mutex& NodeObjects::Stripe(const std::string& name) {
  return stripes_[std::hash<std::string>{}(name) % stripes_.size()];
}

std::string NodeObjects::IndexKey(const std::string& name) const {
  return PartitionPrefix(ring_->PartitionOf(name)) + name;
}

Result<std::optional<ObjectEntry>> NodeObjects::ReadIndex(const std::string& name) {
  auto value = store_->GetMeta(IndexKey(name));
  if (!value.ok()) return value.status();
  if (!value->has_value()) return std::optional<ObjectEntry>();
  auto entry = ParseIndex(name, **value);
  if (!entry)
    return Status::Error(ErrorCode::kCorrupt, "unreadable index record of '" + name + "'");
  return entry;
}

Result<int64_t> NodeObjects::TombstoneFor(const std::string& name) {
  int64_t newest = 0;
  auto exact = store_->GetMeta(std::string(kNameTombstonePrefix) + name);
  if (!exact.ok()) return exact.status();
  if (exact->has_value()) newest = std::stoll(**exact);
  // Prefix tombstones are few (one per deleted video); a scan is cheap.
  auto prefixes = store_->ListMeta(kPrefixTombstonePrefix);
  if (!prefixes.ok()) return prefixes.status();
  for (const auto& [key, value] : *prefixes) {
    const std::string_view prefix = std::string_view(key).substr(kPrefixTombstonePrefix.size());
    if (std::string_view(name).substr(0, prefix.size()) == prefix)
      newest = std::max<int64_t>(newest, std::stoll(value));
  }
  return newest;
}

Result<ObjectEntry> NodeObjects::Put(const std::string& name, std::string_view bytes,
                                     uint64_t checksum, int64_t ts,
                                     const std::string& handoff_for) {
  if (Checksum(bytes) != checksum)
    return Status::Error(
        ErrorCode::kChecksumMismatch,
        "the bytes of '" + name + "' do not match their checksum " + ChecksumHex(checksum));
  std::lock_guard lock(Stripe(name));
  auto tomb = TombstoneFor(name);
  if (!tomb.ok()) return tomb.status();
  if (ts <= *tomb)
    return Status::Error(ErrorCode::kDeleted, "'" + name + "' was deleted after this write");
  auto current = ReadIndex(name);
  if (!current.ok()) return current.status();
  // Last writer wins; equal timestamps (two writers in the same nanosecond) are ordered by
  // checksum so every replica settles on the same copy.
  if (current->has_value() &&
      ((*current)->ts > ts || ((*current)->ts == ts && (*current)->checksum > checksum)))
    return Status::Error(ErrorCode::kSuperseded, "a newer copy of '" + name + "' is stored");
  if (current->has_value() && (*current)->ts == ts && (*current)->checksum == checksum)
    return **current;  // the same write again (a retry or a replicator push): nothing to do
  ObjectEntry entry{name, checksum, bytes.size(), ts};
  ZF_RETURN_IF_ERROR(store_->PutObject(name, bytes));
  ZF_RETURN_IF_ERROR(store_->PutMeta(IndexKey(name), IndexValue(entry)));
  if (!handoff_for.empty())
    ZF_RETURN_IF_ERROR(store_->PutMeta(std::string(kHandoffPrefix) + name, handoff_for));
  ZF_RETURN_IF_ERROR(store_->DeleteMeta(std::string(kQuarantinePrefix) + name));
  return entry;
}

Result<std::pair<ObjectEntry, std::string>> NodeObjects::Get(const std::string& name) {
  auto entry = ReadIndex(name);
  if (!entry.ok()) return entry.status();
  if (!entry->has_value()) return Status::Error(ErrorCode::kNotFound, "no object '" + name + "'");
  auto bytes = store_->GetObject(name);
  std::string reason;
  if (!bytes.ok()) {
    if (bytes.status().code() != ErrorCode::kCorrupt &&
        bytes.status().code() != ErrorCode::kNotFound)
      return bytes.status();
    reason = bytes.status().message();
  } else if (Checksum(*bytes) != (*entry)->checksum) {
    reason = "object checksum " + ChecksumHex(Checksum(*bytes)) + " != indexed " +
             ChecksumHex((*entry)->checksum);
  } else {
    return std::make_pair(**entry, std::move(*bytes));
  }
  ZF_RETURN_IF_ERROR(Quarantine(**entry, reason));  // "not_found": deleted while it was read
  return Status::Error(ErrorCode::kCorrupt,
                       "'" + name + "' failed verification and was quarantined: " + reason);
}

Status NodeObjects::Verify(const ObjectEntry& entry, uint64_t* bytes_read) {
  *bytes_read = 0;
  auto bytes = store_->GetObject(entry.name);
  std::string reason;
  if (!bytes.ok()) {
    if (bytes.status().code() != ErrorCode::kCorrupt &&
        bytes.status().code() != ErrorCode::kNotFound)
      return bytes.status();
    reason = bytes.status().message();
  } else {
    *bytes_read = bytes->size();
    if (Checksum(*bytes) == entry.checksum) return Status::Ok();
    reason = "object checksum " + ChecksumHex(Checksum(*bytes)) + " != indexed " +
             ChecksumHex(entry.checksum);
  }
  ZF_RETURN_IF_ERROR(Quarantine(entry, reason));  // "not_found": deleted while it was read
  return Status::Error(ErrorCode::kCorrupt, reason);
}

Result<ObjectEntry> NodeObjects::Head(const std::string& name) {
  auto entry = ReadIndex(name);
  if (!entry.ok()) return entry.status();
  if (!entry->has_value()) return Status::Error(ErrorCode::kNotFound, "no object '" + name + "'");
  return **entry;
}

Result<size_t> NodeObjects::Delete(const std::string& name, const std::string& prefix, int64_t ts) {
  std::vector<std::string> names;
  if (!name.empty()) {
    ZF_RETURN_IF_ERROR(
        store_->PutMeta(std::string(kNameTombstonePrefix) + name, std::to_string(ts)));
    names.push_back(name);
  } else {
    ZF_RETURN_IF_ERROR(
        store_->PutMeta(std::string(kPrefixTombstonePrefix) + prefix, std::to_string(ts)));
    auto listed = store_->ListObjects(prefix);
    if (!listed.ok()) return listed.status();
    names = std::move(*listed);
    // Quarantined objects have no bytes left to list: their records go too, or the auditor
    // would keep looking for a copy of what was deleted.
    auto quarantined = store_->ListMeta(std::string(kQuarantinePrefix) + prefix);
    if (!quarantined.ok()) return quarantined.status();
    for (const auto& [key, value] : *quarantined) ZF_RETURN_IF_ERROR(store_->DeleteMeta(key));
  }
  size_t removed = 0;
  for (const std::string& n : names) {
    std::lock_guard lock(Stripe(n));
    auto entry = ReadIndex(n);
    if (!entry.ok()) return entry.status();
    if (entry->has_value() && (*entry)->ts > ts) continue;  // written after the delete
    if (entry->has_value()) ++removed;
    ZF_RETURN_IF_ERROR(store_->DeleteMeta(IndexKey(n)));
    ZF_RETURN_IF_ERROR(store_->DeleteMeta(std::string(kHandoffPrefix) + n));
    ZF_RETURN_IF_ERROR(store_->DeleteMeta(std::string(kQuarantinePrefix) + n));
    ZF_RETURN_IF_ERROR(store_->DeleteObject(n));
  }
  return removed;
}

Status NodeObjects::Drop(const std::string& name) {
  std::lock_guard lock(Stripe(name));
  ZF_RETURN_IF_ERROR(store_->DeleteMeta(IndexKey(name)));
  ZF_RETURN_IF_ERROR(store_->DeleteMeta(std::string(kHandoffPrefix) + name));
  return store_->DeleteObject(name);
}

Result<bool> NodeObjects::DropIfUnchanged(const ObjectEntry& entry) {
  std::lock_guard lock(Stripe(entry.name));
  auto value = store_->GetMeta(IndexKey(entry.name));
  if (!value.ok()) return value.status();
  if (!*value) return false;
  const auto now = ParseIndex(entry.name, **value);
  if (!now || now->ts != entry.ts || now->checksum != entry.checksum) return false;
  ZF_RETURN_IF_ERROR(store_->DeleteMeta(IndexKey(entry.name)));
  ZF_RETURN_IF_ERROR(store_->DeleteMeta(std::string(kHandoffPrefix) + entry.name));
  ZF_RETURN_IF_ERROR(store_->DeleteObject(entry.name));
  return true;
}

Result<std::vector<ObjectEntry>> NodeObjects::List(uint32_t partition) {
  const std::string prefix = PartitionPrefix(partition);
  auto records = store_->ListMeta(prefix);
  if (!records.ok()) return records.status();
  std::vector<ObjectEntry> out;
  for (auto& [key, value] : *records)
    if (auto e = ParseIndex(key.substr(prefix.size()), value)) out.push_back(std::move(*e));
  return out;
}

Result<std::vector<ObjectEntry>> NodeObjects::ListAll() {
  auto records = store_->ListMeta(kIndexPrefix);
  if (!records.ok()) return records.status();
  std::vector<ObjectEntry> out;
  for (auto& [key, value] : *records)
    if (key.size() > 8)
      if (auto e = ParseIndex(key.substr(8), value)) out.push_back(std::move(*e));
  return out;
}

uint64_t NodeObjects::ListHash(const std::vector<ObjectEntry>& entries) {
  XXH64_state_t* state = XXH64_createState();
  XXH64_reset(state, 0);
  for (const auto& e : entries) {
    const std::string line = e.name + '\0' + ChecksumHex(e.checksum) + ' ' + std::to_string(e.ts);
    XXH64_update(state, line.data(), line.size() + 1);
  }
  const uint64_t hash = XXH64_digest(state);
  XXH64_freeState(state);
  return hash;
}

Status NodeObjects::Quarantine(const ObjectEntry& entry, const std::string& reason) {
  std::lock_guard lock(Stripe(entry.name));
  return QuarantineLocked(entry, reason);
}

Status NodeObjects::QuarantineLocked(const ObjectEntry& entry, const std::string& reason) {
  // A write that replaced the object since it was read is not what failed the check.
  auto current = ReadIndex(entry.name);
  if (!current.ok()) return current.status();
  // Deleted (or handed home) since it was read: nothing is wrong with it, and no copy is owed.
  if (!current->has_value())
    return Status::Error(ErrorCode::kNotFound,
                         "'" + entry.name + "' was removed while it was read");
  if (((*current)->ts != entry.ts || (*current)->checksum != entry.checksum)) return Status::Ok();
  // Record first, then take it out of the served set: a crash in between leaves it quarantined
  // and served, and the next audit finds it again.
  ZF_RETURN_IF_ERROR(store_->PutMeta(std::string(kQuarantinePrefix) + entry.name,
                                     ChecksumHex(entry.checksum) + " " + reason));
  ZF_RETURN_IF_ERROR(store_->DeleteMeta(IndexKey(entry.name)));
  return store_->DeleteObject(entry.name);
}

Result<std::vector<std::pair<std::string, uint64_t>>> NodeObjects::Quarantined() {
  auto records = store_->ListMeta(kQuarantinePrefix);
  if (!records.ok()) return records.status();
  std::vector<std::pair<std::string, uint64_t>> out;
  for (auto& [key, value] : *records) {
    uint64_t sum = 0;
    if (std::sscanf(value.c_str(), "%16" SCNx64, &sum) != 1) continue;
    out.emplace_back(key.substr(kQuarantinePrefix.size()), sum);
  }
  return out;
}

Status NodeObjects::ClearQuarantine(const std::string& name) {
  return store_->DeleteMeta(std::string(kQuarantinePrefix) + name);
}

Result<std::vector<std::pair<std::string, std::string>>> NodeObjects::Handoffs() {
  auto records = store_->ListMeta(kHandoffPrefix);
  if (!records.ok()) return records.status();
  std::vector<std::pair<std::string, std::string>> out;
  for (auto& [key, value] : *records)
    out.emplace_back(key.substr(kHandoffPrefix.size()), std::move(value));
  return out;
}

}  // namespace zerofarm::storage
