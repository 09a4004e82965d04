// The ring: balanced, zone-aware, deterministic placement that moves little when nodes change.
#include "zerofarm/storage/ring.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <set>
#include <string>

#include "corpus.h"
#include "zerofarm/storage/node_protocol.h"

using zerofarm::ErrorCode;
using zerofarm::storage::Ring;
using zerofarm::storage::RingNode;
using zerofarm::storage::RingOptions;

namespace {

RingNode Node(int port, std::string zone = "1", double weight = 1.0) {
  return RingNode{0, "tcp://127.0.0.1:" + std::to_string(port), std::move(zone), weight};
}

Ring MustBuild(const RingOptions& o, std::vector<RingNode> nodes, const Ring* previous = nullptr) {
  auto r = Ring::Build(o, std::move(nodes), previous);
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  return std::move(*r);
}

void CheckDistinctNodes(const Ring& ring) {
  for (uint32_t p = 0; p < ring.partitions(); ++p) {
    const auto& row = ring.NodesOf(p);
    REQUIRE(row.size() == static_cast<size_t>(ring.replicas()));
    CHECK(std::set<uint32_t>(row.begin(), row.end()).size() == row.size());
  }
}

}  // namespace

TEST_CASE("a ring spreads replicas evenly over equal nodes, each partition on distinct nodes",
          "[ring]") {
  auto ring = MustBuild({8, 3}, {Node(7001), Node(7002), Node(7003), Node(7004), Node(7005)});
  CheckDistinctNodes(ring);
  const double share = 256.0 * 3 / 5;
  for (uint32_t c : ring.ReplicaCounts()) CHECK(std::abs(c - share) <= 1.0);
}

TEST_CASE("replicas land in distinct zones whenever there are enough zones", "[ring]") {
  // Zone b has three nodes, a and c one each: every partition still spans all three zones.
  auto ring = MustBuild({8, 3}, {Node(7001, "a"), Node(7002, "b"), Node(7003, "b"), Node(7004, "b"),
                                 Node(7005, "c")});
  for (uint32_t p = 0; p < ring.partitions(); ++p) {
    std::set<std::string> zones;
    for (uint32_t d : ring.NodesOf(p)) zones.insert(ring.nodes()[d].zone);
    CHECK(zones.size() == 3);
  }
}

TEST_CASE("weights set each node's share of the partition replicas", "[ring]") {
  auto ring = MustBuild({10, 2}, {Node(7001, "1", 1), Node(7002, "1", 2), Node(7003, "1", 1)});
  const auto counts = ring.ReplicaCounts();
  const double slots = 1024.0 * 2;
  CHECK(std::abs(counts[0] - slots / 4) <= 1.0);
  CHECK(std::abs(counts[1] - slots / 2) <= 1.0);
  CHECK(std::abs(counts[2] - slots / 4) <= 1.0);
}

TEST_CASE("building the same ring twice gives the same bytes", "[ring]") {
  std::vector<RingNode> nodes{Node(7001, "a"), Node(7002, "b", 2), Node(7003, "c")};
  CHECK(MustBuild({8, 2}, nodes).ToText() == MustBuild({8, 2}, nodes).ToText());
}

TEST_CASE("adding a fourth node moves about its share of replicas and nothing else", "[ring]") {
  const RingOptions o{8, 3};
  auto three = MustBuild(o, {Node(7001), Node(7002), Node(7003)});
  auto four = MustBuild(o, {Node(7001), Node(7002), Node(7003), Node(7004)}, &three);
  CheckDistinctNodes(four);
  const int64_t moved = Ring::MovedReplicas(three, four);
  const double slots = 256.0 * 3;
  // The ideal is exactly the new node's share: a quarter of the replicas.
  CHECK(moved == static_cast<int64_t>(slots / 4));
  for (uint32_t c : four.ReplicaCounts()) CHECK(std::abs(c - slots / 4) <= 1.0);
  // No partition loses more than one replica in one rebalance.
  for (uint32_t p = 0; p < four.partitions(); ++p) {
    int kept = 0;
    for (uint32_t d : four.NodesOf(p))
      for (uint32_t old : three.NodesOf(p))
        kept += four.nodes()[d].endpoint == three.nodes()[old].endpoint ? 1 : 0;
    CHECK(kept >= 2);
  }
}

TEST_CASE("removing a node moves only the replicas it held", "[ring]") {
  const RingOptions o{8, 2};
  auto four = MustBuild(o, {Node(7001), Node(7002), Node(7003), Node(7004)});
  const uint32_t held = four.ReplicaCounts()[3];
  auto three = MustBuild(o, {Node(7001), Node(7002), Node(7003)}, &four);
  CheckDistinctNodes(three);
  CHECK(Ring::MovedReplicas(four, three) == held);
}

TEST_CASE("the ring file round-trips and a damaged one is refused with a reason", "[ring]") {
  auto ring = MustBuild({6, 2}, {Node(7001, "a", 1.5), Node(7002, "b"), Node(7003, "c")});
  const std::string text = ring.ToText();
  auto parsed = Ring::Parse(text);
  REQUIRE(parsed.ok());
  CHECK(parsed->ToText() == text);
  CHECK(parsed->PartitionOf("jobs/abc/chunks/00001") == ring.PartitionOf("jobs/abc/chunks/00001"));

  auto damaged = [&](const std::string& from, const std::string& to) {
    std::string t = text;
    const size_t at = t.find(from);
    REQUIRE(at != std::string::npos);
    t.replace(at, from.size(), to);
    auto r = Ring::Parse(t);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == ErrorCode::kCorruptRing);
    return r.status().message();
  };
  CHECK(damaged("zerofarm-ring 1", "zerofarm-ring 9").find("version") != std::string::npos);
  CHECK(damaged("\n5: ", "\n5: 9 ").find("partition 5") != std::string::npos);
  CHECK(damaged("\n63:", "\n64:").find("63") != std::string::npos);
  CHECK(damaged("weight=1.5", "weight=-1").find("weight") != std::string::npos);
  CHECK_FALSE(Ring::Parse(text.substr(0, text.size() / 2)).ok());
  CHECK_FALSE(Ring::Parse("").ok());
}

TEST_CASE("a ring that cannot be built says why", "[ring]") {
  CHECK(Ring::Build({8, 3}, {Node(7001), Node(7002)}).status().message().find("at least 3") !=
        std::string::npos);
  CHECK(Ring::Build({8, 2}, {Node(7001), Node(7001)}).status().message().find("twice") !=
        std::string::npos);
  CHECK(Ring::Build({8, 1}, {Node(7001, "1", 0)}).status().message().find("weight") !=
        std::string::npos);
  CHECK_FALSE(Ring::Build({0, 1}, {Node(7001)}).ok());
  auto a = MustBuild({8, 1}, {Node(7001)});
  CHECK(Ring::Build({9, 1}, {Node(7001)}, &a).status().message().find("part_power") !=
        std::string::npos);
}

TEST_CASE("object names spread evenly over the partitions", "[ring]") {
  auto ring = MustBuild({4, 1}, {Node(7001)});
  std::vector<int> hits(ring.partitions(), 0);
  for (int i = 0; i < 16000; ++i) ++hits[ring.PartitionOf("jobs/j/chunks/" + std::to_string(i))];
  for (int h : hits) CHECK(std::abs(h - 1000) < 150);
}

TEST_CASE("a saved ring file loads back identical", "[ring]") {
  auto scratch = zerofarm::test::ScratchDir::Create("ring");
  REQUIRE(scratch.ok());
  const std::string path = (scratch->path() / "ring.txt").string();
  auto ring = MustBuild({5, 2}, {Node(7001), Node(7002)});
  REQUIRE(ring.Save(path).ok());
  auto loaded = Ring::Load(path);
  REQUIRE(loaded.ok());
  CHECK(loaded->ToText() == ring.ToText());
  CHECK(Ring::Load((scratch->path() / "missing").string()).status().code() == ErrorCode::kIoError);
}

TEST_CASE("a name is placed by its part before the first '#', and names without one hash whole",
          "[ring]") {
  auto ring = MustBuild({8, 2}, {Node(7001), Node(7002), Node(7003)});
  // Without '#': the top part_power bits of XXH64(name), exactly as before the '#' rule.
  for (const std::string name : {"jobs/abc/chunks/00001", "a", "jobs/j/out/720p.ts", ""}) {
    CHECK(ring.PartitionOf(name) == zerofarm::storage::Checksum(name) >> (64 - 8));
  }
  // With '#': the parts of a large object and a task's outputs go with the object.
  int differs = 0;
  for (int i = 0; i < 64; ++i) {
    const std::string base = "jobs/j/chunks/" + std::to_string(i);
    const uint32_t p = ring.PartitionOf(base);
    CHECK(ring.PartitionOf(base + "#00000") == p);
    CHECK(ring.PartitionOf(base + "#00017") == p);
    CHECK(ring.PartitionOf(base + "#") == p);
    CHECK(ring.PartitionOf(base + "#out#720p") == p);  // only the first '#' counts
    differs += ring.PartitionOf(base + "00000") != p ? 1 : 0;
  }
  CHECK(differs > 32);  // without the '#' the same suffixes scatter
  CHECK(ring.PartitionOf("#anything") == ring.PartitionOf(""));
}
