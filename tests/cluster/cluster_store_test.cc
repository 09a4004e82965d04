// ClusterStore end to end: large objects cut into parts over real `zerofarm node` processes,
// placed with their manifest by the ring's '#' rule; and a ClusterClient whose local node is
// served in process.
#include "zerofarm/storage/cluster_store.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "cluster_support.h"
#include "zerofarm/storage/cluster_client.h"
#include "zerofarm/storage/node_protocol.h"
#include "zerofarm/storage/ring.h"

namespace zerofarm::test {
namespace {

using namespace std::chrono_literals;
using storage::ClusterStore;
using storage::Op;
using storage::Reply;
using storage::Request;

constexpr size_t kMiB = size_t{1} << 20;

std::unique_ptr<ClusterStore> MakeStore(TestCluster& cluster, size_t part_bytes, int clients = 2) {
  storage::ClusterStoreOptions options;
  options.part_bytes = part_bytes;
  options.clients = clients;
  options.cluster.request_timeout = 10s;
  options.cluster.key = cluster.key();
  auto store = ClusterStore::Create(cluster.ring(), options);
  INFO(store.status().ToString());
  REQUIRE(store.ok());
  return std::move(*store);
}

Request Named(Op op, const std::string& name) {
  Request r;
  r.op = op;
  r.name = name;
  return r;
}

std::set<std::string> Listed(TestCluster& cluster, uint32_t node, uint32_t partition) {
  Request list;
  list.op = Op::kList;
  list.partition = partition;
  Reply reply = cluster.Call(node, list);
  REQUIRE(reply.ok());
  std::set<std::string> names;
  for (const auto& e : reply.entries) names.insert(e.name);
  return names;
}

// The generation a committed object's parts are named by, read from its manifest.
std::string GenOf(TestCluster& cluster, const std::string& name) {
  auto client = cluster.Client(/*heartbeats=*/false);
  auto manifest = client->Get(name);
  REQUIRE(manifest.ok());
  return nlohmann::json::parse(*manifest).at("gen").get<std::string>();
}

std::string Part(const std::string& name, const std::string& gen, int index) {
  char digits[8];
  std::snprintf(digits, sizeof digits, "%05d", index);
  return name + "#" + gen + "." + digits;
}

TEST_CASE(
    "a 20 MiB object in 1 MiB parts round-trips through a three-node cluster with every part "
    "on the replicas of its manifest's partition",
    "[cluster][cluster_store][slow]") {
  TestCluster cluster("store-roundtrip", 3, 2);
  auto store = MakeStore(cluster, kMiB);
  const std::string name = "jobs/7/chunks/00003";
  const std::string bytes = TestBytes(20 * kMiB + 4321, 5);  // 20 full parts and a short one
  const auto before = store->traffic();

  {
    auto writer = store->CreateObject(name);
    REQUIRE(writer.ok());
    for (size_t at = 0; at < bytes.size(); at += 300 << 10) {  // not aligned with the parts
      INFO("appending at " << at);
      REQUIRE((*writer)->Append(std::string_view(bytes).substr(at, 300 << 10)).ok());
    }
    CHECK((*writer)->size() == bytes.size());
    CHECK(store->Stat(name).status().code() ==
          ErrorCode::kNotFound);  // nothing visible before Commit
    auto committed = (*writer)->Commit();
    INFO(committed.ToString());
    REQUIRE(committed.ok());
  }

  // About the payload once per replica went out (plus headers, the manifest, heartbeats).
  const auto after = store->traffic();
  const double payload_out = static_cast<double>(bytes.size()) * 2;
  const double sent = static_cast<double>(after.bytes_sent - before.bytes_sent);
  CHECK(sent >= payload_out);
  CHECK(sent < payload_out * 1.01 + 256 * 1024);
  CHECK(after.requests - before.requests >= 2 * 22);  // 21 parts and the manifest, twice
  CHECK(after.bytes_received - before.bytes_received < 256 * 1024);  // acks only

  auto info = store->Stat(name);
  REQUIRE(info.ok());
  CHECK(info->size == bytes.size());
  CHECK(info->blocks == 21);
  auto got = store->GetObject(name);
  INFO(got.status().ToString());
  REQUIRE(got.ok());
  CHECK(*got == bytes);

  // Placement: the manifest and all 21 parts on the holders of the manifest's partition only.
  auto& ring = cluster.ring();
  const uint32_t partition = ring.PartitionOf(name);
  const auto holders = store->HoldersOf(name);
  CHECK(holders == ring.NodesOf(partition));
  REQUIRE(holders.size() == 2);
  const std::string gen = GenOf(cluster, name);
  std::set<std::string> expected = {name};
  for (int i = 0; i < 21; ++i) expected.insert(Part(name, gen, i));
  for (uint32_t n = 0; n < cluster.size(); ++n) {
    const bool holder = std::find(holders.begin(), holders.end(), n) != holders.end();
    INFO("node " << n << (holder ? " (holder)" : " (not a holder)"));
    if (holder) {
      CHECK(Listed(cluster, n, partition) == expected);
    } else {
      CHECK(cluster.Call(n, Named(Op::kHead, name)).code == ErrorCode::kNotFound);
      CHECK(cluster.Call(n, Named(Op::kHead, Part(name, gen, 0))).code == ErrorCode::kNotFound);
      CHECK(cluster.Call(n, Named(Op::kHead, Part(name, gen, 20))).code == ErrorCode::kNotFound);
    }
  }
  // The manifest is small JSON naming each part's size and checksum.
  Reply manifest = cluster.Call(holders[0], Named(Op::kGet, name));
  REQUIRE(manifest.ok());
  CHECK(manifest.payload.size() < 4096);
  CHECK_THAT(manifest.payload, Catch::Contains("\"zf_large_object\":1") &&
                                   Catch::Contains(storage::ChecksumHex(storage::Checksum(
                                       std::string_view(bytes).substr(0, kMiB)))));

  // A streaming reader seeks and reads across parts.
  auto reader = store->OpenObject(name);
  REQUIRE(reader.ok());
  CHECK((*reader)->size() == bytes.size());
  REQUIRE((*reader)->Seek(5 * kMiB - 7).ok());
  std::string buffer(3 * kMiB, '\0');
  size_t filled = 0;
  while (filled < buffer.size()) {
    auto n = (*reader)->Read(std::as_writable_bytes(std::span(buffer).subspan(filled)));
    REQUIRE(n.ok());
    REQUIRE(*n > 0);
    filled += *n;
  }
  CHECK(buffer == bytes.substr(5 * kMiB - 7, 3 * kMiB));
  REQUIRE((*reader)->Seek(bytes.size()).ok());
  CHECK((*reader)->Read(std::as_writable_bytes(std::span(buffer))).value() == 0);
  CHECK((*reader)->Seek(bytes.size() + 1).code() == ErrorCode::kInvalidArgument);

  auto listed = store->ListObjects("jobs/7/");
  REQUIRE(listed.ok());
  CHECK(*listed == std::vector<std::string>{name});
}

TEST_CASE("a range read across part boundaries returns the exact bytes and fetches only its parts",
          "[cluster][cluster_store][slow]") {
  TestCluster cluster("store-range", 3, 2);
  auto store = MakeStore(cluster, kMiB);
  const std::string name = "jobs/8/source";
  const std::string bytes = TestBytes(6 * kMiB + 100, 11);
  REQUIRE(store->PutObject(name, bytes).ok());

  const std::vector<std::pair<uint64_t, uint64_t>> ranges = {
      {kMiB - 10, 20},               // straddles parts 0 and 1
      {3 * kMiB - 1, 2 * kMiB + 2},  // the end of 2, all of 3 and 4, the start of 5
      {0, 1},
      {6 * kMiB, 100},        // the whole short last part
      {6 * kMiB + 95, 1000},  // fewer bytes at the end
      {bytes.size(), 10}};    // nothing at the very end
  for (const auto& [offset, length] : ranges) {
    INFO("offset " << offset << " length " << length);
    auto got = store->ReadRange(name, offset, length);
    INFO(got.status().ToString());
    REQUIRE(got.ok());
    CHECK(*got == bytes.substr(offset, length));
  }
  CHECK(store->ReadRange(name, bytes.size() + 1, 1).status().code() == ErrorCode::kInvalidArgument);

  // 20 bytes over a boundary cost the manifest and two parts, not the 6 MiB object.
  const auto before = store->traffic();
  REQUIRE(store->ReadRange(name, 4 * kMiB - 10, 20).ok());
  const uint64_t received = store->traffic().bytes_received - before.bytes_received;
  CHECK(received >= 2 * kMiB);
  CHECK(received < 2 * kMiB + 64 * 1024);
}

TEST_CASE(
    "parts damaged on disk or replaced by other bytes on some replicas still read right from "
    "another replica, and an object with no good copy of a part reads as corrupt",
    "[cluster][cluster_store][slow]") {
  TestCluster cluster("store-corrupt", 3, 3);
  auto store = MakeStore(cluster, kMiB);
  const std::string name = "jobs/9/chunks/00000";
  const std::string bytes = TestBytes(3 * kMiB + 17, 23);
  REQUIRE(store->PutObject(name, bytes).ok());
  cluster.AwaitAllReplicas(name);
  const std::string gen = GenOf(cluster, name);
  for (int i = 0; i < 4; ++i) cluster.AwaitAllReplicas(Part(name, gen, i));
  const auto holders = store->HoldersOf(name);
  REQUIRE(holders.size() == 3);

  // The first replica's copies are damaged underneath its store (its node catches that).
  const uint32_t damaged = holders[0];
  REQUIRE(cluster.node(damaged).Stop() == 0);
  REQUIRE(CorruptEveryBlock(cluster.node(damaged).data()) >= 5);
  REQUIRE(cluster.node(damaged).Start().empty());
  REQUIRE(WaitFor([&] { return store->client().IsAlive(damaged); }, 10s));

  // The second replica holds other, self-consistent bytes for part 1 (newer, so it keeps
  // them): only the manifest's checksum tells them apart.
  const uint32_t replaced = holders[1];
  const std::string other = TestBytes(kMiB, 99);
  Request put = Named(Op::kPut, Part(name, gen, 1));
  put.payload = other;
  put.checksum = storage::Checksum(other);
  put.ts = std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::system_clock::now().time_since_epoch())
               .count() +
           1'000'000'000;
  REQUIRE(cluster.Call(replaced, put).ok());
  REQUIRE(cluster.Call(replaced, Named(Op::kGet, Part(name, gen, 1))).payload == other);

  auto got = store->GetObject(name);
  INFO(got.status().ToString());
  REQUIRE(got.ok());
  CHECK(*got == bytes);
  auto range = store->ReadRange(name, kMiB - 3, 6);
  REQUIRE(range.ok());
  CHECK(*range == bytes.substr(kMiB - 3, 6));

  // Other bytes on every replica of part 2: no good copy is left.
  Request put2 = put;
  put2.name = Part(name, gen, 2);
  for (uint32_t n : holders) REQUIRE(cluster.Call(n, put2).ok());
  auto bad = store->GetObject(name);
  CHECK(bad.status().code() == ErrorCode::kCorrupt);
  auto reader = store->OpenObject(name);
  REQUIRE(reader.ok());
  REQUIRE((*reader)->Seek(2 * kMiB).ok());
  std::string buffer(16, '\0');
  CHECK((*reader)->Read(std::as_writable_bytes(std::span(buffer))).status().code() ==
        ErrorCode::kCorrupt);
  CHECK(store->ReadRange(name, 0, 100).value() == bytes.substr(0, 100));  // part 0 is fine
}

TEST_CASE(
    "a missing object is not_found, and deleting an object removes its manifest and every "
    "part from every node",
    "[cluster][cluster_store][slow]") {
  TestCluster cluster("store-delete", 3, 2);
  auto store = MakeStore(cluster, kMiB);
  CHECK(store->Stat("jobs/1/none").status().code() == ErrorCode::kNotFound);
  CHECK(store->GetObject("jobs/1/none").status().code() == ErrorCode::kNotFound);
  CHECK(store->OpenObject("jobs/1/none").status().code() == ErrorCode::kNotFound);
  CHECK(store->ReadRange("jobs/1/none", 0, 10).status().code() == ErrorCode::kNotFound);
  CHECK(store->DeleteObject("jobs/1/none").ok());  // removing a missing object is no error
  CHECK(store->GetObject("").status().code() == ErrorCode::kInvalidArgument);

  const std::string name = "jobs/1/chunks/00000";
  const std::string kept = "jobs/1/chunks/00001";
  REQUIRE(store->PutObject(name, TestBytes(2 * kMiB + 1, 3)).ok());
  REQUIRE(store->PutObject(kept, TestBytes(10, 4)).ok());
  REQUIRE(store->PutObject("jobs/1/empty", "").ok());
  CHECK(store->GetObject("jobs/1/empty").value().empty());
  CHECK(store->Stat("jobs/1/empty").value().blocks == 0);
  CHECK(store->ListObjects("jobs/1/").value() ==
        std::vector<std::string>{name, kept, "jobs/1/empty"});

  const std::string gen = GenOf(cluster, name);
  REQUIRE(store->DeleteObject(name).ok());
  CHECK(store->Stat(name).status().code() == ErrorCode::kNotFound);
  for (uint32_t n = 0; n < cluster.size(); ++n) {
    INFO("node " << n);
    CHECK(cluster.Call(n, Named(Op::kHead, name)).code == ErrorCode::kNotFound);
    for (int i = 0; i < 3; ++i)
      CHECK(cluster.Call(n, Named(Op::kHead, Part(name, gen, i))).code == ErrorCode::kNotFound);
  }
  CHECK(store->GetObject(kept).value() == TestBytes(10, 4));
  CHECK(store->ListObjects("jobs/1/").value() == std::vector<std::string>{kept, "jobs/1/empty"});

  // DeleteObjects counts objects (manifests), not the parts or copies it removed.
  auto removed = store->DeleteObjects("jobs/1/");
  INFO(removed.status().ToString());
  REQUIRE(removed.ok());
  CHECK(*removed == 2);
  CHECK(store->ListObjects("jobs/").value().empty());
  CHECK(store->GetObject(kept).status().code() == ErrorCode::kNotFound);

  // An abandoned writer removes the parts it wrote.
  {
    auto writer = store->CreateObject("jobs/2/abandoned");
    REQUIRE(writer.ok());
    REQUIRE((*writer)->Append(TestBytes(kMiB + 5, 8)).ok());
  }
  const uint32_t abandoned_partition = cluster.ring().PartitionOf("jobs/2/abandoned");
  for (uint32_t n = 0; n < cluster.size(); ++n)
    for (const auto& listed : Listed(cluster, n, abandoned_partition))
      CHECK(listed.rfind("jobs/2/abandoned", 0) != 0);
  CHECK(store->Stat("jobs/2/abandoned").status().code() == ErrorCode::kNotFound);

  // Metadata records need a meta store.
  CHECK(store->PutMeta("k", "v").code() == ErrorCode::kUnsupported);
}

// A tiny in-memory node for the local-handler tests: GET/HEAD/PUT/DELETE/LIST/PING.
class MapNode {
 public:
  explicit MapNode(const storage::Ring& ring) : ring_(ring) {}

  Reply Handle(const Request& r) {
    std::lock_guard lock(mu_);
    ++calls_;
    Reply reply;
    reply.node = "in-process";
    switch (r.op) {
      case Op::kPing:
        reply.load = storage::NodeLoad{};
        break;
      case Op::kPut:
        objects_[r.name] = {storage::ObjectEntry{r.name, r.checksum, r.payload.size(), r.ts},
                            r.payload};
        reply.object = objects_[r.name].first;
        break;
      case Op::kGet:
      case Op::kHead: {
        auto it = objects_.find(r.name);
        if (it == objects_.end()) {
          reply.code = ErrorCode::kNotFound;
          break;
        }
        reply.object = it->second.first;
        if (r.op == Op::kGet) reply.payload = it->second.second;
        break;
      }
      case Op::kDelete: {
        uint64_t removed = 0;
        for (auto it = objects_.begin(); it != objects_.end();) {
          const bool hit = r.name.empty() ? it->first.starts_with(r.prefix) : it->first == r.name;
          if (hit) {
            it = objects_.erase(it);
            ++removed;
          } else {
            ++it;
          }
        }
        reply.stats["removed"] = removed;
        break;
      }
      case Op::kList:
        for (const auto& [name, object] : objects_)
          if (ring_.PartitionOf(name) == r.partition) reply.entries.push_back(object.first);
        break;
      default:
        reply.code = ErrorCode::kUnknownOp;
    }
    return reply;
  }

  int calls() {
    std::lock_guard lock(mu_);
    return calls_;
  }

 private:
  const storage::Ring& ring_;
  std::mutex mu_;
  std::map<std::string, std::pair<storage::ObjectEntry, std::string>> objects_;
  int calls_ = 0;
};

TEST_CASE(
    "a client answers requests for its local node in process, without the network, and "
    "counts that node always alive",
    "[cluster][cluster_store]") {
  // Nothing listens on the local node's endpoint: only the handler can answer.
  storage::RingNode node;
  node.endpoint = "tcp://127.0.0.1:" + std::to_string(FreePort());
  auto ring = storage::Ring::Build({4, 1}, {node});
  REQUIRE(ring.ok());
  MapNode local(*ring);
  storage::ClusterOptions options;
  options.request_timeout = 2s;
  options.heartbeat_interval = 50ms;
  options.dead_after = 200ms;
  options.local_node = 0;
  options.local_handler = [&](const Request& r) { return local.Handle(r); };

  auto client = storage::ClusterClient::Create(*ring, options);
  REQUIRE(client.ok());
  auto& c = **client;
  const std::string bytes = TestBytes(300 << 10, 2);
  auto put = c.Put("jobs/3/chunks/00000", bytes);
  INFO(put.status().ToString());
  REQUIRE(put.ok());
  CHECK(put->acked == 1);
  CHECK(c.Get("jobs/3/chunks/00000").value() == bytes);
  auto head = c.Call(0, Named(Op::kHead, "jobs/3/chunks/00000"));
  REQUIRE(head.ok());
  CHECK(head->object->size == bytes.size());
  CHECK(c.Get("jobs/3/missing").status().code() == ErrorCode::kNotFound);
  CHECK(c.Delete("jobs/3/", /*prefix=*/true).value() == 1);
  CHECK(c.Get("jobs/3/chunks/00000").status().code() == ErrorCode::kNotFound);

  // Heartbeats go through the handler too, and the node stays alive past dead_after: six
  // more heartbeats (50 ms apart at the least) span more than its 200 ms.
  const int calls = local.calls();
  REQUIRE(WaitFor([&] { return local.calls() >= calls + 6; }, 10s));
  CHECK(c.IsAlive(0));
  CHECK(c.Health()[0].alive);
  const auto traffic = c.traffic();
  CHECK(traffic.bytes_sent == 0);
  CHECK(traffic.bytes_received == 0);
  CHECK(traffic.requests == 0);

  // A store over it is a node's task view: objects in parts, all in process.
  storage::ClusterStoreOptions store_options;
  store_options.part_bytes = 64 << 10;
  store_options.clients = 2;
  store_options.cluster = options;
  auto store = ClusterStore::Create(*ring, store_options);
  REQUIRE(store.ok());
  const std::string big = TestBytes((200 << 10) + 3, 4);
  REQUIRE((*store)->PutObject("jobs/4/chunks/00000", big).ok());
  CHECK((*store)->GetObject("jobs/4/chunks/00000").value() == big);
  CHECK((*store)->Stat("jobs/4/chunks/00000").value().blocks == 4);
  CHECK((*store)->ReadRange("jobs/4/chunks/00000", (64 << 10) - 1, 2).value() ==
        big.substr((64 << 10) - 1, 2));
  CHECK((*store)->ListObjects("jobs/4/").value() ==
        std::vector<std::string>{"jobs/4/chunks/00000"});
  REQUIRE((*store)->DeleteObject("jobs/4/chunks/00000").ok());
  CHECK((*store)->GetObject("jobs/4/chunks/00000").status().code() == ErrorCode::kNotFound);
  CHECK((*store)->traffic().bytes_sent == 0);
}

TEST_CASE("a client with a local node still reaches its other nodes over the network",
          "[cluster][cluster_store][slow]") {
  // Node 0 of a real two-node cluster is played by an in-process map; node 1 is real.
  TestCluster cluster("store-local-mixed", 2, 2);
  MapNode local(cluster.ring());
  storage::ClusterOptions options;
  options.request_timeout = 10s;
  options.key = cluster.key();
  options.local_node = 0;
  options.local_handler = [&](const Request& r) { return local.Handle(r); };
  auto client = storage::ClusterClient::Create(cluster.ring(), options);
  REQUIRE(client.ok());
  const std::string bytes = TestBytes(kMiB, 6);
  auto put = (*client)->Put("jobs/5/chunks/00000", bytes);
  INFO(put.status().ToString());
  REQUIRE(put.ok());
  CHECK(put->acked == 2);
  CHECK(cluster.Call(1, Named(Op::kGet, "jobs/5/chunks/00000")).payload == bytes);
  Reply in_process = local.Handle(Named(Op::kGet, "jobs/5/chunks/00000"));
  CHECK(in_process.payload == bytes);
  // Only node 1's copy crossed the network.
  const auto traffic = (*client)->traffic();
  CHECK(traffic.bytes_sent >= bytes.size());
  CHECK(traffic.bytes_sent < bytes.size() + 64 * 1024);
}

}  // namespace
}  // namespace zerofarm::test
