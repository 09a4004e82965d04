// Ring changes on a live farm: the LiveRing's swap rules, and real `zerofarm node` processes
// that follow their ring file while a client reads, with the replicator moving only what the
// new ring places elsewhere.
#include "zerofarm/storage/live_ring.h"

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "cluster_support.h"
#include "run_command.h"
#include "zerofarm/storage/cluster_client.h"
#include "zerofarm/storage/cluster_store.h"
#include "zerofarm/storage/node_protocol.h"
#include "zerofarm/storage/ring.h"

namespace zerofarm::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using storage::LiveRing;
using storage::Op;
using storage::Reply;
using storage::Request;
using storage::Ring;
using storage::RingNode;

Ring MustBuild(int part_power, int replicas, const std::vector<std::string>& endpoints,
               const Ring* previous = nullptr) {
  std::vector<RingNode> nodes;
  for (const auto& e : endpoints) nodes.push_back(RingNode{0, e, "z" + e.substr(e.size() - 1), 1});
  auto ring = Ring::Build({part_power, replicas}, nodes, previous);
  REQUIRE(ring.ok());
  return std::move(*ring);
}

// The endpoints holding `name`'s partition in `ring`.
std::set<std::string> HoldersIn(const Ring& ring, const std::string& name) {
  std::set<std::string> out;
  for (uint32_t n : ring.NodesOf(ring.PartitionOf(name))) out.insert(ring.nodes()[n].endpoint);
  return out;
}

// Writes `text` to `path` as `zerofarm ring build` does: a temporary file renamed over it.
void ReplaceFile(const fs::path& path, const std::string& text) {
  const fs::path tmp = path.parent_path() / ("." + path.filename().string() + ".new");
  std::ofstream(tmp, std::ios::trunc) << text;
  fs::rename(tmp, path);
}

uint64_t PingRingHash(TestCluster& cluster, uint32_t node) {
  Request ping;
  ping.op = Op::kPing;
  return cluster.Call(node, ping).ring_hash;
}

TEST_CASE("a live ring swaps whole rings, keeps the previous one and refuses what it cannot follow",
          "[cluster][ring]") {
  const std::vector<std::string> three = {"tcp://n:1", "tcp://n:2", "tcp://n:3"};
  const Ring first = MustBuild(4, 2, three);
  LiveRing live(first, "tcp://n:2");
  const auto before = live.Get();
  CHECK(live.generation() == 1);
  CHECK(live.Previous() == nullptr);
  CHECK(live.hash() == first.ContentHash());

  auto same = live.Replace(first);
  REQUIRE(same.ok());
  CHECK(same->unchanged);
  CHECK(live.generation() == 1);

  std::vector<std::string> four = three;
  four.push_back("tcp://n:4");
  const Ring grown = MustBuild(4, 2, four, &first);
  auto swapped = live.Replace(grown);
  REQUIRE(swapped.ok());
  CHECK(swapped->generation == 2);
  CHECK(swapped->moved == Ring::MovedReplicas(first, grown));
  CHECK(swapped->moved > 0);
  CHECK(live.Get()->ContentHash() == grown.ContentHash());
  CHECK(live.Previous()->ContentHash() == first.ContentHash());
  // A snapshot taken before the swap is still whole.
  CHECK(before->nodes().size() == 3);
  CHECK_THAT(storage::DescribeReload(live, "ring.txt", swapped),
             Catch::Contains("ring reloaded: ") && Catch::Contains("partition replicas moved"));

  const Ring without_me = MustBuild(4, 2, {"tcp://n:1", "tcp://n:3", "tcp://n:4"});
  auto refused = live.Replace(without_me);
  REQUIRE_FALSE(refused.ok());
  CHECK_THAT(refused.status().message(), Catch::Contains("does not list this node"));
  const Ring recut = MustBuild(5, 2, four);
  refused = live.Replace(recut);
  REQUIRE_FALSE(refused.ok());
  CHECK_THAT(refused.status().message(), Catch::Contains("part_power"));
  CHECK(live.generation() == 2);
  CHECK(live.hash() == grown.ContentHash());

  auto dir = ScratchDir::Create("live-ring");
  REQUIRE(dir.ok());
  const fs::path garbage = dir->path() / "ring.txt";
  std::ofstream(garbage) << "zerofarm-ring 1\npart_power banana\n";
  auto bad = live.Reload(garbage.string());
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().code() == ErrorCode::kCorruptRing);
  CHECK_THAT(storage::DescribeReload(live, garbage.string(), bad),
             Catch::Contains("refused") && Catch::Contains("keeping ring"));
  CHECK(live.hash() == grown.ContentHash());
}

TEST_CASE("a file watch reloads a rewritten ring file and logs the change once",
          "[cluster][ring]") {
  auto dir = ScratchDir::Create("ring-watch");
  REQUIRE(dir.ok());
  const fs::path path = dir->path() / "ring.txt";
  const Ring first = MustBuild(3, 1, {"tcp://n:1", "tcp://n:2"});
  REQUIRE(first.Save(path.string()).ok());
  LiveRing live(first);
  std::mutex mu;
  std::vector<std::string> lines;
  storage::RingFileWatch watch(
      live, path.string(),
      [&](const std::string& line) {
        std::lock_guard lock(mu);
        lines.push_back(line);
      },
      50ms);
  const Ring second = MustBuild(3, 1, {"tcp://n:1", "tcp://n:2", "tcp://n:3"}, &first);
  REQUIRE(second.Save(path.string()).ok());
  REQUIRE(WaitFor([&] { return live.generation() == 2; }, 5s));
  CHECK(live.hash() == second.ContentHash());
  std::this_thread::sleep_for(200ms);  // no further polls see a change
  std::lock_guard lock(mu);
  REQUIRE(lines.size() == 1);
  CHECK_THAT(lines[0], Catch::StartsWith("ring reloaded: "));
}

TEST_CASE(
    "nodes follow a rewritten ring file: a fourth node gets its share, only moved partitions "
    "move, and every object stays readable",
    "[cluster][ring][slow]") {
  TestCluster cluster("ring-grow", 3, 2);
  const fs::path ring_path = cluster.dir() / "ring.txt";
  const Ring old_ring = cluster.ring();
  auto live = std::make_shared<LiveRing>(old_ring);
  storage::ClusterOptions options;
  options.key = cluster.key();
  options.request_timeout = 10s;
  auto made = storage::ClusterClient::Create(live, options);
  REQUIRE(made.ok());
  auto client = std::move(*made);

  std::map<std::string, std::string> objects;
  for (int i = 0; i < 48; ++i) {
    const std::string name = "jobs/grow/chunks/" + std::to_string(i);
    objects[name] = TestBytes(4096 + static_cast<size_t>(i), static_cast<uint64_t>(i));
    REQUIRE(client->Put(name, objects[name]).ok());
  }
  for (const auto& [name, bytes] : objects) cluster.AwaitAllReplicas(name);

  // `zerofarm ring build` over the live file adds a fourth node; the running nodes pick it up.
  const std::string fourth = "tcp://127.0.0.1:" + std::to_string(FreePort());
  std::vector<std::string> build = {ZF_ZEROFARM_BIN, "ring", "build", "--replicas",      "2",
                                    "--part-power",  "4",    "-o",    ring_path.string()};
  for (uint32_t i = 0; i < 3; ++i)
    build.push_back(cluster.node(i).endpoint() + ",zone=z" + std::to_string(i));
  build.push_back(fourth + ",zone=z3");
  auto built = RunCommand(build, 30s);
  INFO(built.out << built.err);
  REQUIRE(built.succeeded());
  auto loaded = Ring::Load(ring_path.string());
  REQUIRE(loaded.ok());
  const Ring new_ring = std::move(*loaded);
  REQUIRE(new_ring.nodes().size() == 4);
  const uint64_t new_hash = new_ring.ContentHash();

  NodeProcess node3(fourth, cluster.dir() / "node3", ring_path, cluster.KeyArgs());
  REQUIRE(node3.Start().empty());
  for (uint32_t i = 0; i < 3; ++i) {
    INFO("node " << i);
    REQUIRE(WaitFor([&] { return PingRingHash(cluster, i) == new_hash; }, 10s));
    CHECK_THAT(cluster.node(i).log(), Catch::Contains("ring reloaded: ") &&
                                          Catch::Contains(storage::ChecksumHex(new_hash)));
  }
  auto reloaded = live->Replace(new_ring);  // the client's own reload (the proxy's watch does so)
  REQUIRE(reloaded.ok());
  CHECK(reloaded->moved == Ring::MovedReplicas(old_ring, new_ring));

  // What the replicators owe: each object to the holders the new ring added for it, and the
  // old holders it dropped let their copies go.
  uint64_t owed = 0, left = 0;
  std::map<std::string, std::set<std::string>> now_held;
  for (const auto& [name, bytes] : objects) {
    const auto before = HoldersIn(old_ring, name), after = HoldersIn(new_ring, name);
    for (const auto& e : after) owed += before.count(e) ? 0 : 1;
    for (const auto& e : before) left += after.count(e) ? 0 : 1;
    now_held[name] = after;
  }
  REQUIRE(owed > 0);

  // A listing sees every object, wherever it is now.
  storage::ClusterStoreOptions store_options;
  store_options.cluster = options;
  store_options.cluster.heartbeats = false;
  auto store = storage::ClusterStore::Create(live, store_options);
  REQUIRE(store.ok());
  auto listed = (*store)->ListObjects("jobs/grow/");
  REQUIRE(listed.ok());
  CHECK(listed->size() == objects.size());

  // Every object reads right before, during and after the move.
  std::atomic<bool> moving{true};
  std::atomic<uint64_t> reads{0}, bad_reads{0};
  std::thread reader([&] {
    auto c = storage::ClusterClient::Create(live, options);
    if (!c.ok()) {
      ++bad_reads;
      return;
    }
    while (moving) {
      for (const auto& [name, bytes] : objects) {
        auto got = (*c)->Get(name);
        ++reads;
        if (!got.ok() || *got != bytes) ++bad_reads;
      }
    }
  });
  Request replicate;
  replicate.op = Op::kReplicate;
  uint64_t pushed = 0, moved_out = 0;
  for (uint32_t i = 0; i < 3; ++i) {
    Reply r = cluster.Call(i, replicate);
    INFO("node " << i << " log:\n" << cluster.node(i).log());
    CHECK(r.stats["ring_mismatch"] == 0);
    CHECK(r.stats["errors"] == 0);
    pushed += r.stats["pushed"];
    moved_out += r.stats["moved_out"];
  }
  moving = false;
  reader.join();
  CHECK(reads > 0);
  CHECK(bad_reads == 0);
  CHECK(pushed == owed);
  CHECK(moved_out == left);

  // Each node holds exactly the objects the new ring places on it.
  auto fourth_client = storage::ClusterClient::Create(new_ring, [&] {
    storage::ClusterOptions o = options;
    o.heartbeats = false;
    return o;
  }());
  REQUIRE(fourth_client.ok());
  size_t on_fourth = 0;
  for (const auto& [name, bytes] : objects) {
    for (const auto& n : new_ring.nodes()) {
      Request head;
      head.op = Op::kHead;
      head.name = name;
      auto r = (*fourth_client)->CallAt(n.endpoint, head);
      REQUIRE(r.ok());
      INFO(name << " on " << n.endpoint);
      CHECK(r->ok() == (now_held[name].count(n.endpoint) == 1));
      on_fourth += r->ok() && n.endpoint == fourth ? 1 : 0;
    }
    auto got = client->Get(name);
    REQUIRE(got.ok());
    CHECK(*got == bytes);
  }
  CHECK(on_fourth > 0);
  listed = (*store)->ListObjects("jobs/grow/");
  REQUIRE(listed.ok());
  CHECK(listed->size() == objects.size());
}

TEST_CASE("a ring file that is garbage or leaves a node out is refused and the old ring serves on",
          "[cluster][ring][slow]") {
  TestCluster cluster("ring-refuse", 3, 2);
  const fs::path ring_path = cluster.dir() / "ring.txt";
  const uint64_t old_hash = cluster.ring().ContentHash();
  auto client = cluster.Client();
  std::map<std::string, std::string> objects;
  for (int i = 0; i < 12; ++i) {
    const std::string name = "jobs/refuse/" + std::to_string(i);
    objects[name] = TestBytes(2048, static_cast<uint64_t>(i) + 100);
    REQUIRE(client->Put(name, objects[name]).ok());
  }

  ReplaceFile(ring_path, "zerofarm-ring 1\nthis is not a ring\n");
  for (uint32_t i = 0; i < 3; ++i) {
    INFO("node " << i);
    CHECK(
        WaitFor([&] { return cluster.node(i).log().find("refused: ") != std::string::npos; }, 10s));
    CHECK(PingRingHash(cluster, i) == old_hash);
  }
  for (const auto& [name, bytes] : objects) {
    auto got = client->Get(name);
    REQUIRE(got.ok());
    CHECK(*got == bytes);
  }

  // A ring of nodes 0 and 1 only: they take it, node 2 refuses it (on the watch and on SIGHUP)
  // and keeps serving with its old ring.
  const Ring two = MustBuild(4, 2, {cluster.node(0).endpoint(), cluster.node(1).endpoint()});
  ReplaceFile(ring_path, two.ToText());
  const std::string left_out = "does not list this node (" + cluster.node(2).endpoint() + ")";
  REQUIRE(WaitFor([&] { return cluster.node(2).log().find(left_out) != std::string::npos; }, 10s));
  CHECK(WaitFor([&] { return PingRingHash(cluster, 0) == two.ContentHash(); }, 10s));
  cluster.node(2).Signal(SIGHUP);
  CHECK(WaitFor(
      [&] {
        const std::string log = cluster.node(2).log();
        return log.find(left_out) != log.rfind(left_out);  // said twice
      },
      10s));
  CHECK(cluster.node(2).running());
  CHECK(PingRingHash(cluster, 2) == old_hash);
  Request head;
  head.op = Op::kHead;
  for (const auto& [name, bytes] : objects) {
    const auto holders = HoldersIn(cluster.ring(), name);
    if (!holders.count(cluster.node(2).endpoint())) continue;
    head.name = name;
    CHECK(cluster.Call(2, head).ok());
  }
}

}  // namespace
}  // namespace zerofarm::test
