// ClusterStore (cluster_store.h): Swift-style large objects over a pool of ClusterClients.
// Layout: the object "name" holds a JSON manifest
//   {"zf_large_object":1,"gen":"<16 hex>","size":N,"parts":[{"size":n,"checksum":"<16 hex>"},...]}
// and part i is the object "name#<gen>.<five-digit i>" ("name#9f0c...e1.00000", ...), placed
// with "name" by the ring's '#' rule. Every writer draws a new random generation, so two
// writers of one name (a retried or backed-up task) never touch each other's parts: a reader
// that opened either manifest reads whole, consistent bytes, and an abandoned writer removes
// only its own parts. Superseded generations stay until the object (or its prefix) is deleted. Part
// reads go replica by replica (live ones first, then the handoff candidates) and take the first
// copy whose bytes match both the node's checksum and the manifest's, so a stale or damaged replica
// is skipped rather than reported.
#include "zerofarm/storage/cluster_store.h"

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <utility>

#include "read_range.h"
#include "zerofarm/base/hex.h"

namespace zerofarm::storage {
namespace {

constexpr size_t kPartDigits = 5;
constexpr size_t kGenDigits = 16;
// "#<16 hex>." before the part number.
constexpr size_t kPartSuffix = 1 + kGenDigits + 1 + kPartDigits;

std::string Quoted(std::string_view s) { return "'" + std::string(s) + "'"; }

std::string PartName(std::string_view name, uint64_t gen, size_t index) {
  char suffix[48];
  std::snprintf(suffix, sizeof suffix, "#%016llx.%0*zu", static_cast<unsigned long long>(gen),
                static_cast<int>(kPartDigits), index);
  return std::string(name) + suffix;
}

// A random, non-zero generation (base's RandomHex: it never hands out a guessable value).
uint64_t NewGeneration() {
  uint64_t gen = 0;
  while (gen == 0) gen = std::stoull(RandomHex(8), nullptr, 16);
  return gen;
}

// True for the name of a part: it ends in "#<16 hex digits>.<5 digits>". ("a#out", a task's
// output named after its input, is an object; "a#out#<gen>.00000" its first part.)
bool IsPartName(std::string_view name) {
  if (name.size() < kPartSuffix) return false;
  const std::string_view tail = name.substr(name.size() - kPartSuffix);
  if (tail[0] != '#' || tail[1 + kGenDigits] != '.') return false;
  for (size_t i = 1; i < tail.size(); ++i) {
    if (i == 1 + kGenDigits) continue;
    const char c = tail[i];
    const bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
    if (!hex || (i > 1 + kGenDigits && c > '9')) return false;
  }
  return true;
}

struct Part {
  uint64_t size = 0;
  uint64_t checksum = 0;
};

// What is stored under a large object's name: its parts, which live under other names (not to
// be confused with storage/manifest.h, a local store's record of one object's blocks).
struct LargeObjectManifest {
  uint64_t gen = 0;  // names the parts
  uint64_t size = 0;
  std::vector<Part> parts;
  std::vector<uint64_t> offsets;  // offsets[i]: where part i starts; offsets.back() == size
};

std::string EncodeManifest(const LargeObjectManifest& m) {
  nlohmann::json parts = nlohmann::json::array();
  for (const Part& p : m.parts)
    parts.push_back({{"size", p.size}, {"checksum", ChecksumHex(p.checksum)}});
  return nlohmann::json{
      {"zf_large_object", 1}, {"gen", ChecksumHex(m.gen)}, {"size", m.size}, {"parts", parts}}
      .dump();
}

Result<LargeObjectManifest> DecodeManifest(std::string_view name, std::string_view bytes) {
  auto bad = [&](const std::string& why) {
    return Status::Error(ErrorCode::kCorrupt, "object " + Quoted(name) + ": " + why);
  };
  const auto json =
      nlohmann::json::parse(bytes.begin(), bytes.end(), nullptr, /*allow_exceptions=*/false);
  auto has = [](const nlohmann::json& o, const char* key) { return o.find(key) != o.end(); };
  if (!json.is_object() || !has(json, "zf_large_object") || json["zf_large_object"] != 1 ||
      !has(json, "size") || !json["size"].is_number_unsigned() || !has(json, "parts") ||
      !json["parts"].is_array())
    return bad("not a large-object manifest");
  LargeObjectManifest m;
  if (!has(json, "gen") || !json["gen"].is_string() || json["gen"].get<std::string>().size() != 16)
    return bad("the manifest names no part generation");
  {
    const std::string gen = json["gen"].get<std::string>();
    char* end = nullptr;
    m.gen = std::strtoull(gen.c_str(), &end, 16);
    if (*end) return bad("the manifest's part generation is not 16 hex digits");
  }
  m.size = json["size"].get<uint64_t>();
  m.offsets.push_back(0);
  for (const auto& p : json["parts"]) {
    if (!p.is_object() || !has(p, "size") || !p["size"].is_number_unsigned() ||
        !has(p, "checksum") || !p["checksum"].is_string())
      return bad("a manifest part lacks its size or checksum");
    const std::string hex = p["checksum"].get<std::string>();
    char* end = nullptr;
    Part part;
    part.size = p["size"].get<uint64_t>();
    part.checksum = std::strtoull(hex.c_str(), &end, 16);
    if (hex.size() != 16 || *end) return bad("a manifest part checksum is not 16 hex digits");
    m.parts.push_back(part);
    m.offsets.push_back(m.offsets.back() + part.size);
  }
  if (m.offsets.back() != m.size) return bad("the manifest's parts do not add up to its size");
  return m;
}

class ClusterStoreImpl;

// Streams parts out through the store; holds one part in memory.
class ClusterReader final : public ObjectReader {
 public:
  ClusterReader(ClusterStoreImpl* store, std::string name, LargeObjectManifest manifest)
      : store_(store), name_(std::move(name)), manifest_(std::move(manifest)) {}

  Result<size_t> Read(std::span<std::byte> out) override;
  Status Seek(uint64_t offset) override {
    if (offset > manifest_.size)
      return Status::Error(ErrorCode::kInvalidArgument,
                           "seek to " + std::to_string(offset) + " past the end of object " +
                               Quoted(name_) + " (" + std::to_string(manifest_.size) + " bytes)");
    position_ = offset;
    return Status::Ok();
  }
  uint64_t size() const override { return manifest_.size; }

 private:
  ClusterStoreImpl* const store_;
  const std::string name_;
  const LargeObjectManifest manifest_;
  uint64_t position_ = 0;
  size_t loaded_ = std::numeric_limits<size_t>::max();  // index of the part in `bytes_`
  std::string bytes_;
};

// Buffers one part; each full part is written (quorum) at once, the manifest on Commit.
class ClusterWriter final : public ObjectWriter {
 public:
  ClusterWriter(ClusterStoreImpl* store, std::string name, size_t part_bytes)
      : store_(store), name_(std::move(name)), part_bytes_(part_bytes) {
    manifest_.gen = NewGeneration();
  }
  ~ClusterWriter() override;
  ClusterWriter(const ClusterWriter&) = delete;
  ClusterWriter& operator=(const ClusterWriter&) = delete;

  using ObjectWriter::Append;
  Status Append(std::span<const std::byte> data) override;
  Status Commit() override;
  uint64_t size() const override { return size_; }

 private:
  Status FlushPart();
  Status Fail(Status status) {
    error_ = status;
    return status;
  }

  ClusterStoreImpl* const store_;
  const std::string name_;
  const size_t part_bytes_;
  std::string buffer_;
  LargeObjectManifest manifest_;
  uint64_t size_ = 0;
  size_t attempted_ = 0;  // parts whose write was attempted (to clean up when abandoned)
  bool committed_ = false;
  Status error_;  // sticky
};

class ClusterStoreImpl final : public ClusterStore {
 public:
  ClusterStoreImpl(std::shared_ptr<LiveRing> live, const ClusterStoreOptions& options,
                   std::vector<std::unique_ptr<ClusterClient>> clients)
      : live_(std::move(live)),
        options_(options),
        local_endpoint_(options.cluster.local_node
                            ? live_->Get()->nodes()[*options.cluster.local_node].endpoint
                            : std::string()),
        clients_(std::move(clients)) {
    for (auto& c : clients_) free_.push_back(c.get());
  }

  ~ClusterStoreImpl() override {
    // The others ask the first client for liveness: it goes last.
    while (clients_.size() > 1) clients_.pop_back();
  }

  ClusterClient& client() override { return *clients_.front(); }

  ClientTraffic traffic() const override {
    ClientTraffic sum;
    for (const auto& c : clients_) {
      const ClientTraffic t = c->traffic();
      sum.bytes_sent += t.bytes_sent;
      sum.bytes_received += t.bytes_received;
      sum.requests += t.requests;
    }
    return sum;
  }

  std::vector<uint32_t> HoldersOf(std::string_view name) const override {
    const auto ring = live_->Get();
    return ring->NodesOf(ring->PartitionOf(name));
  }

  Result<std::unique_ptr<ObjectWriter>> CreateObject(std::string_view name) override {
    ZF_RETURN_IF_ERROR(CheckName(name));
    return std::unique_ptr<ObjectWriter>(
        new ClusterWriter(this, std::string(name), options_.part_bytes));
  }

  Result<std::unique_ptr<ObjectReader>> OpenObject(std::string_view name) override {
    auto manifest = ReadManifest(name);
    if (!manifest.ok()) return manifest.status();
    return std::unique_ptr<ObjectReader>(
        new ClusterReader(this, std::string(name), std::move(*manifest)));
  }

  Result<ObjectInfo> Stat(std::string_view name) override {
    auto manifest = ReadManifest(name);
    if (!manifest.ok()) return manifest.status();
    return ObjectInfo{manifest->size, manifest->parts.size()};
  }

  Status PutObject(std::string_view name, std::string_view bytes) override {
    auto writer = CreateObject(name);
    if (!writer.ok()) return writer.status();
    ZF_RETURN_IF_ERROR((*writer)->Append(bytes));
    return (*writer)->Commit();
  }

  Result<std::string> GetObject(std::string_view name) override {
    return ReadRange(name, 0, std::numeric_limits<uint64_t>::max());
  }

  Result<std::string> ReadRange(std::string_view name, uint64_t offset, uint64_t length) override {
    auto reader = OpenObject(name);
    if (!reader.ok()) return reader.status();
    return ReadRangeFrom(**reader, name, offset, length);
  }

  Status DeleteObject(std::string_view name) override {
    ZF_RETURN_IF_ERROR(CheckName(name));
    Lease c(this);
    // The manifest first: the object disappears at once, then its parts.
    auto manifest = c->Delete(name, /*prefix=*/false);
    if (!manifest.ok()) return manifest.status();
    auto parts = c->Delete(std::string(name) + "#", /*prefix=*/true);
    return parts.ok() ? Status::Ok() : parts.status();
  }

  Result<std::vector<std::string>> ListObjects(std::string_view prefix) override {
    Lease c(this);
    const auto ring = live_->Get();
    // Every node of the current ring, then those only the previous ring has (after a ring
    // change they may hold objects not moved yet).
    std::vector<std::string> nodes;
    for (const auto& n : ring->nodes()) nodes.push_back(n.endpoint);
    if (const auto previous = live_->Previous())
      for (const auto& n : previous->nodes())
        if (std::find(nodes.begin(), nodes.end(), n.endpoint) == nodes.end())
          nodes.push_back(n.endpoint);
    std::set<std::string> names;
    std::set<std::string> unreachable;  // transport failures: skipped for the rest of the listing
    for (uint32_t p = 0; p < ring->partitions(); ++p) {
      bool answered = false;  // by a node holding a replica of p
      std::string why;
      std::set<std::string> holders;
      for (uint32_t h : ring->NodesOf(p)) holders.insert(ring->nodes()[h].endpoint);
      for (const std::string& endpoint : nodes) {
        if (!Alive(endpoint) || unreachable.count(endpoint)) continue;
        Request list;
        list.op = Op::kList;
        list.partition = p;
        auto reply = c->CallAt(endpoint, list);
        if (!reply.ok()) unreachable.insert(endpoint);
        if (!reply.ok() || !reply->ok()) {
          why += (why.empty() ? "" : "; ") + endpoint + ": " +
                 (reply.ok() ? std::string(reply->code_name()) : reply.status().ToString());
          continue;
        }
        answered |= holders.count(endpoint) > 0;
        for (const ObjectEntry& e : reply->entries)
          if (e.name.starts_with(prefix) && !IsPartName(e.name)) names.insert(e.name);
      }
      if (!answered)
        return Status::Error(
            ErrorCode::kUnavailable,
            "no replica of partition " + std::to_string(p) + " answered LIST (" + why + ")");
    }
    return std::vector<std::string>(names.begin(), names.end());
  }

  // Returns the number of objects (manifests) a listing found under `prefix` just before the
  // delete; the delete itself removes every name under the prefix (parts included).
  Result<size_t> DeleteObjects(std::string_view prefix) override {
    ZF_RETURN_IF_ERROR(CheckObjectName(prefix));
    auto listed = ListObjects(prefix);
    if (!listed.ok()) return listed.status();
    Lease c(this);
    auto removed = c->Delete(prefix, /*prefix=*/true);
    if (!removed.ok()) return removed.status();
    return listed->size();
  }

  StoreMemory Memory() override {
    return options_.meta != nullptr ? options_.meta->Memory() : StoreMemory{};
  }
  Status PutMeta(std::string_view key, std::string_view value) override {
    if (!options_.meta) return NoMeta();
    return options_.meta->PutMeta(key, value);
  }
  Result<std::optional<std::string>> GetMeta(std::string_view key) override {
    if (!options_.meta) return NoMeta();
    return options_.meta->GetMeta(key);
  }
  Status DeleteMeta(std::string_view key) override {
    if (!options_.meta) return NoMeta();
    return options_.meta->DeleteMeta(key);
  }
  Result<std::vector<std::pair<std::string, std::string>>> ListMeta(
      std::string_view prefix) override {
    if (!options_.meta) return NoMeta();
    return options_.meta->ListMeta(prefix);
  }

  // --- for the reader and writer ---

  // A pooled client for one request (or a few in a row); waits while all are taken.
  class Lease {
   public:
    explicit Lease(ClusterStoreImpl* store) : store_(store) {
      std::unique_lock lock(store_->pool_mu_);
      store_->pool_cv_.wait(lock, [&] { return !store_->free_.empty(); });
      client_ = store_->free_.back();
      store_->free_.pop_back();
    }
    ~Lease() {
      {
        std::lock_guard lock(store_->pool_mu_);
        store_->free_.push_back(client_);
      }
      store_->pool_cv_.notify_one();
    }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ClusterClient* operator->() const { return client_; }

   private:
    ClusterStoreImpl* const store_;
    ClusterClient* client_ = nullptr;
  };

  Status PutPart(const std::string& name, std::string_view bytes) {
    Lease c(this);
    auto put = c->Put(name, bytes);
    return put.ok() ? Status::Ok() : put.status();
  }

  Status PutManifest(std::string_view name, const LargeObjectManifest& manifest) {
    Lease c(this);
    auto put = c->Put(name, EncodeManifest(manifest));
    return put.ok() ? Status::Ok() : put.status();
  }

  // Best effort: removes parts [0, count) of an abandoned write of generation `gen`.
  void DeleteParts(std::string_view name, uint64_t gen, size_t count) {
    Lease c(this);
    for (size_t i = 0; i < count; ++i) (void)c->Delete(PartName(name, gen, i), /*prefix=*/false);
  }

  Result<std::string> ReadPart(std::string_view name, uint64_t gen, size_t index,
                               uint64_t expected) {
    return Fetch(PartName(name, gen, index), expected);
  }

 private:
  static Status CheckName(std::string_view name) {
    if (name.empty()) return Status::Error(ErrorCode::kInvalidArgument, "object name is empty");
    // Room for the longest part suffix, so that every part of the object has a valid name.
    return CheckObjectName(std::string(name) + std::string(kPartSuffix, '0'));
  }
  static Status NoMeta() {
    return Status::Error(ErrorCode::kUnsupported, "this cluster store keeps no metadata records");
  }

  // The liveness view of the first client (the one with heartbeats).
  bool Alive(const std::string& endpoint) const { return clients_.front()->IsAliveAt(endpoint); }

  Result<LargeObjectManifest> ReadManifest(std::string_view name) {
    ZF_RETURN_IF_ERROR(CheckName(name));
    auto bytes = Fetch(std::string(name), std::nullopt);
    if (!bytes.ok()) return bytes.status();
    return DecodeManifest(name, *bytes);
  }

  // The bytes of one cluster object from the first live replica (then handoff candidate)
  // whose copy matches its checksum and, when given, `expected`. Errors: "corrupt" (copies
  // were found but none matched `expected`), "not_found" (a majority of the replica count
  // answered that they have none), "unavailable".
  Result<std::string> Fetch(const std::string& name, std::optional<uint64_t> expected) {
    const auto ring = live_->Get();
    // The replicas (live first), the handoff candidates, then the previous ring's holders.
    std::vector<std::string> order = clients_.front()->ReadOrder(name);
    // A node's own copy first: it costs no network.
    if (!local_endpoint_.empty())
      std::stable_partition(order.begin(), order.end(),
                            [&](const std::string& e) { return e == local_endpoint_; });
    Lease c(this);
    std::string why;
    size_t not_found = 0, mismatched = 0;
    for (const std::string& endpoint : order) {
      if (!Alive(endpoint)) {
        why += (why.empty() ? "" : "; ") + endpoint + ": down";
        continue;
      }
      Request get;
      get.op = Op::kGet;
      get.name = name;
      auto reply = c->CallAt(endpoint, get);
      std::string problem;
      if (!reply.ok()) {
        problem = reply.status().ToString();
      } else if (!reply->ok()) {
        problem = reply->ToStatus().ToString();
        if (reply->code == ErrorCode::kNotFound) ++not_found;
      } else if (!reply->object || Checksum(reply->payload) != reply->object->checksum) {
        problem = "corrupt: the bytes received do not match their checksum";
      } else if (expected && reply->object->checksum != *expected) {
        ++mismatched;
        problem = "corrupt: checksum " + ChecksumHex(reply->object->checksum) +
                  " where the manifest says " + ChecksumHex(*expected);
      } else {
        return std::move(reply->payload);
      }
      why += (why.empty() ? "" : "; ") + endpoint + ": " + problem;
    }
    const size_t quorum = static_cast<size_t>(ring->replicas() / 2 + 1);
    const ErrorCode code = mismatched > 0        ? ErrorCode::kCorrupt
                           : not_found >= quorum ? ErrorCode::kNotFound
                                                 : ErrorCode::kUnavailable;
    return Status::Error(code, "no good copy of " + Quoted(name) + " (" + why + ")");
  }

  const std::shared_ptr<LiveRing> live_;
  const ClusterStoreOptions options_;
  const std::string local_endpoint_;  // options.cluster.local_node's (empty: none)
  std::vector<std::unique_ptr<ClusterClient>> clients_;

  std::mutex pool_mu_;
  std::condition_variable pool_cv_;
  std::vector<ClusterClient*> free_;
};

Result<size_t> ClusterReader::Read(std::span<std::byte> out) {
  if (position_ >= manifest_.size || out.empty()) return size_t{0};
  // The part holding position_: the last one starting at or before it (parts may be empty
  // only in a hand-made manifest; upper_bound skips them).
  const auto it = std::upper_bound(manifest_.offsets.begin(), manifest_.offsets.end(), position_);
  const size_t index = static_cast<size_t>(it - manifest_.offsets.begin()) - 1;
  if (loaded_ != index) {
    loaded_ = std::numeric_limits<size_t>::max();
    auto bytes = store_->ReadPart(name_, manifest_.gen, index, manifest_.parts[index].checksum);
    if (!bytes.ok()) return bytes.status();
    if (bytes->size() != manifest_.parts[index].size)
      return Status::Error(ErrorCode::kCorrupt,
                           "part " + std::to_string(index) + " of " + Quoted(name_) + " has " +
                               std::to_string(bytes->size()) + " bytes, the manifest says " +
                               std::to_string(manifest_.parts[index].size));
    bytes_ = std::move(*bytes);
    loaded_ = index;
  }
  const uint64_t within = position_ - manifest_.offsets[index];
  const size_t n = static_cast<size_t>(std::min<uint64_t>(out.size(), bytes_.size() - within));
  std::memcpy(out.data(), bytes_.data() + within, n);
  position_ += n;
  return n;
}

ClusterWriter::~ClusterWriter() {
  if (!committed_ && attempted_ > 0) store_->DeleteParts(name_, manifest_.gen, attempted_);
}

Status ClusterWriter::FlushPart() {
  const std::string part = PartName(name_, manifest_.gen, manifest_.parts.size());
  ++attempted_;
  ZF_RETURN_IF_ERROR(store_->PutPart(part, buffer_));
  manifest_.parts.push_back({buffer_.size(), Checksum(buffer_)});
  buffer_.clear();
  return Status::Ok();
}

Status ClusterWriter::Append(std::span<const std::byte> data) {
  if (!error_.ok()) return error_;
  if (committed_)
    return Status::Error(ErrorCode::kInvalidArgument,
                         "object " + Quoted(name_) + " is already committed");
  const char* bytes = reinterpret_cast<const char*>(data.data());
  size_t left = data.size();
  while (left > 0) {
    const size_t n = std::min(left, part_bytes_ - buffer_.size());
    buffer_.append(bytes, n);
    bytes += n;
    left -= n;
    size_ += n;
    if (buffer_.size() == part_bytes_) {
      Status s = FlushPart();
      if (!s.ok()) return Fail(s);
    }
  }
  return Status::Ok();
}

Status ClusterWriter::Commit() {
  if (!error_.ok()) return error_;
  if (committed_)
    return Status::Error(ErrorCode::kInvalidArgument,
                         "object " + Quoted(name_) + " is already committed");
  if (!buffer_.empty()) {
    Status s = FlushPart();
    if (!s.ok()) return Fail(s);
  }
  manifest_.size = size_;
  Status s = store_->PutManifest(name_, manifest_);
  if (!s.ok()) return Fail(s);
  committed_ = true;
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<ClusterStore>> ClusterStore::Create(const Ring& ring,
                                                           const ClusterStoreOptions& options) {
  return Create(std::make_shared<LiveRing>(ring), options);
}

Result<std::unique_ptr<ClusterStore>> ClusterStore::Create(std::shared_ptr<LiveRing> ring,
                                                           const ClusterStoreOptions& options) {
  if (options.part_bytes == 0 || options.part_bytes > kMaxPayloadBytes)
    return Status::Error(ErrorCode::kInvalidArgument,
                         "part_bytes must be within 1 byte and 64 MiB");
  if (options.clients < 1)
    return Status::Error(ErrorCode::kInvalidArgument, "clients must be >= 1");
  std::vector<std::unique_ptr<ClusterClient>> clients;
  for (int i = 0; i < options.clients; ++i) {
    ClusterOptions o = options.cluster;
    if (i > 0) {
      // The first client's liveness view serves them all (it outlives them: see the
      // destructor), so a down node is skipped by every pooled request alike.
      o.heartbeats = false;
      if (options.cluster.heartbeats) {
        const ClusterClient* first = clients.front().get();
        o.liveness = [first](const std::string& endpoint) { return first->IsAliveAt(endpoint); };
      }
    }
    auto client = ClusterClient::Create(ring, o);
    if (!client.ok()) return client.status();
    clients.push_back(std::move(*client));
  }
  return std::unique_ptr<ClusterStore>(
      new ClusterStoreImpl(std::move(ring), options, std::move(clients)));
}

}  // namespace zerofarm::storage
