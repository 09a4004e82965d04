// The storage cluster end to end: real `zerofarm node` processes on loopback, a ring from
// `zerofarm ring build`, the ClusterClient as the proxy would use it, and raw ZeroMQ frames.
#include <catch2/catch.hpp>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <set>
#include <string>

#include "cluster_support.h"
#include "zerofarm/storage/cluster_client.h"
#include "zerofarm/storage/node_protocol.h"
#include "zerofarm/storage/ring.h"

namespace zerofarm::test {
namespace {

using namespace std::chrono_literals;
using storage::Op;
using storage::Reply;
using storage::Request;

Request Head(const std::string& name) {
  Request r;
  r.op = Op::kHead;
  r.name = name;
  return r;
}

Request OpOnly(Op op) {
  Request r;
  r.op = op;
  return r;
}

// A name whose partition's first replica is node `primary`.
std::string NameOnPrimary(storage::Ring& ring, uint32_t primary, const std::string& stem) {
  for (int i = 0; i < 10000; ++i) {
    std::string name = stem + std::to_string(i);
    if (ring.NodesOf(ring.PartitionOf(name)).front() == primary) return name;
  }
  FAIL("no name maps to node " << primary);
  return "";
}

std::vector<std::string> Frames(std::initializer_list<std::string> frames) { return frames; }

TEST_CASE("objects put to the cluster read back byte for byte from every replica",
          "[cluster][slow]") {
  TestCluster cluster("cluster-roundtrip", 3, 3);
  auto client = cluster.Client();
  const std::vector<std::pair<std::string, size_t>> objects = {
      {"jobs/1/chunks/00000", 1},
      {"jobs/1/chunks/00001", 100 << 10},
      {"jobs/1/chunks/00002", (5 << 20) + 3}};  // spans two 4 MiB store blocks
  for (size_t i = 0; i < objects.size(); ++i) {
    const auto& [name, size] = objects[i];
    const std::string bytes = TestBytes(size, i + 1);
    auto put = client->Put(name, bytes);
    INFO(put.status().ToString());
    REQUIRE(put.ok());
    CHECK(put->quorum == 2);
    CHECK(put->acked >= 2);
    auto got = client->Get(name);
    REQUIRE(got.ok());
    CHECK(*got == bytes);
    cluster.AwaitAllReplicas(name);
    for (uint32_t n : cluster.ring().NodesOf(cluster.ring().PartitionOf(name))) {
      Request get;
      get.op = Op::kGet;
      get.name = name;
      Reply reply = cluster.Call(n, get);
      REQUIRE(reply.ok());
      CHECK(reply.payload == bytes);
      REQUIRE(reply.object);
      CHECK(reply.object->checksum == storage::Checksum(bytes));
    }
  }
  CHECK(client->Get("jobs/1/missing").status().code() == ErrorCode::kNotFound);
}

TEST_CASE("a killed node is reported down within a few seconds and up after it restarts",
          "[cluster][slow]") {
  TestCluster cluster("cluster-liveness", 3, 2);
  auto client = cluster.Client();
  REQUIRE(WaitFor([&] { return client->Health()[1].since_last_reply < 1s; }, 10s));
  cluster.node(1).Kill9();
  // Dead after 2 s without an answer; the deadline leaves room for a loaded machine.
  auto down = WaitFor([&] { return !client->IsAlive(1); }, 10s);
  REQUIRE(down);
  std::printf("dead node detected after %lld ms (heartbeat 500 ms, dead after 2000 ms)\n",
              static_cast<long long>(down->count()));
  CHECK(client->IsAlive(0));
  CHECK(client->IsAlive(2));
  REQUIRE(cluster.node(1).Start().empty());
  auto up = WaitFor([&] { return client->IsAlive(1); }, 10s);
  REQUIRE(up);
  std::printf("restarted node seen alive after %lld ms\n", static_cast<long long>(up->count()));
}

TEST_CASE(
    "a write while a replica's node is down is acked by a majority, held on a handoff "
    "node, and moves home when the node returns",
    "[cluster][slow]") {
  TestCluster cluster("cluster-handoff", 3, 2);
  auto& ring = cluster.ring();
  const std::string name = NameOnPrimary(ring, 0, "jobs/2/chunks/");
  const uint32_t partition = ring.PartitionOf(name);
  const auto replicas = ring.NodesOf(partition);
  auto client = cluster.Client();
  const std::vector<uint32_t> spares = client->HandoffsOf(partition);
  REQUIRE(spares.size() == 1);
  const uint32_t handoff = spares[0];

  cluster.node(0).Kill9();
  REQUIRE(WaitFor([&] { return !client->IsAlive(0); }, 10s));
  const std::string bytes = TestBytes(3 << 20, 7);
  auto put = client->Put(name, bytes);
  INFO(put.status().ToString());
  REQUIRE(put.ok());
  CHECK(put->acked == 2);
  REQUIRE(put->handoffs.size() == 1);
  CHECK_THAT(put->handoffs[0], Catch::StartsWith(ring.nodes()[handoff].endpoint) &&
                                   Catch::EndsWith(ring.nodes()[0].endpoint));
  CHECK(cluster.Call(handoff, Head(name)).ok());
  CHECK(cluster.Call(replicas[1], Head(name)).ok());
  REQUIRE(client->Get(name).value() == bytes);

  // The home node returns; the handoff node's replicator moves the copy home.
  REQUIRE(cluster.node(0).Start().empty());
  CHECK(cluster.Call(0, Head(name)).code == ErrorCode::kNotFound);
  Reply pass = cluster.Call(handoff, OpOnly(Op::kReplicate));
  REQUIRE(pass.ok());
  CHECK(pass.stats["pushed"] >= 1);
  CHECK(pass.stats["handed_home"] == 1);
  CHECK(pass.stats["handoffs_held"] == 0);
  Reply home = cluster.Call(0, Head(name));
  REQUIRE(home.ok());
  CHECK(home.object->checksum == storage::Checksum(bytes));
  CHECK(cluster.Call(handoff, Head(name)).code == ErrorCode::kNotFound);
  REQUIRE(WaitFor([&] { return client->IsAlive(0); }, 10s));
  CHECK(client->Get(name).value() == bytes);
}

TEST_CASE(
    "a replica that stops answering mid-write is replaced by a handoff after the request "
    "deadline",
    "[cluster][slow]") {
  TestCluster cluster("cluster-frozen", 3, 2);
  const std::string name = NameOnPrimary(cluster.ring(), 0, "jobs/9/chunks/");
  // No heartbeats: the client only learns of the frozen node from the missing answer.
  auto client = cluster.Client(/*heartbeats=*/false, 1500ms);
  const uint32_t handoff = client->HandoffsOf(cluster.ring().PartitionOf(name)).at(0);
  REQUIRE(client->Call(0, OpOnly(Op::kPing)).ok());  // connected before it freezes
  cluster.node(0).Signal(SIGSTOP);                   // sockets stay open; no answers
  const auto start = std::chrono::steady_clock::now();
  auto put = client->Put(name, TestBytes(100000, 91));
  const auto took = std::chrono::steady_clock::now() - start;
  cluster.node(0).Signal(SIGCONT);
  INFO(put.status().ToString());
  REQUIRE(put.ok());
  CHECK(put->acked == 2);
  REQUIRE(put->handoffs.size() == 1);
  CHECK_THAT(put->handoffs[0], Catch::StartsWith(cluster.ring().nodes()[handoff].endpoint));
  CHECK_THAT(put->failures.at(0), Catch::Contains("no answer"));
  CHECK(took >= 1500ms);
  CHECK(cluster.Call(handoff, Head(name)).ok());
}

TEST_CASE("a replica missed while its node was down is pushed to it by the replicator",
          "[cluster][slow]") {
  TestCluster cluster("cluster-repair", 3, 3);
  auto client = cluster.Client();
  cluster.node(2).Kill9();
  REQUIRE(WaitFor([&] { return !client->IsAlive(2); }, 10s));
  std::vector<std::string> names;
  for (int i = 0; i < 5; ++i) {
    names.push_back("jobs/3/chunks/" + std::to_string(i));
    auto put = client->Put(names.back(), TestBytes(50000 + i, 30 + i));
    REQUIRE(put.ok());
    CHECK(put->acked == 2);
    CHECK(put->handoffs.empty());  // three replicas on three nodes: nowhere else to go
  }
  REQUIRE(cluster.node(2).Start().empty());
  for (const auto& n : names) CHECK(cluster.Call(2, Head(n)).code == ErrorCode::kNotFound);
  Reply pass = cluster.Call(0, OpOnly(Op::kReplicate));
  REQUIRE(pass.ok());
  CHECK(pass.stats["pushed"] == names.size());
  for (const auto& n : names) CHECK(cluster.Call(2, Head(n)).ok());
  // A second pass finds every partition in sync and moves nothing.
  Reply again = cluster.Call(0, OpOnly(Op::kReplicate));
  CHECK(again.stats["pushed"] == 0);
  CHECK(again.stats["in_sync"] >= 1);
}

TEST_CASE("a corrupted replica is served from another replica and repaired by the auditor",
          "[cluster][slow]") {
  TestCluster cluster("cluster-corrupt", 3, 3);
  auto& ring = cluster.ring();
  const std::string first = NameOnPrimary(ring, 1, "jobs/4/chunks/a");
  const std::string second = NameOnPrimary(ring, 1, "jobs/4/chunks/b");
  const std::string first_bytes = TestBytes(6 << 20, 41);
  const std::string second_bytes = TestBytes(200 << 10, 42);
  auto client = cluster.Client();
  REQUIRE(client->Put(first, first_bytes).ok());
  REQUIRE(client->Put(second, second_bytes).ok());
  cluster.AwaitAllReplicas(first);
  cluster.AwaitAllReplicas(second);

  // Damage node 1's copies underneath its store while it is stopped.
  REQUIRE(cluster.node(1).Stop() == 0);
  CHECK(CorruptEveryBlock(cluster.node(1).data()) == 3);
  REQUIRE(cluster.node(1).Start().empty());
  REQUIRE(WaitFor([&] { return client->IsAlive(1); }, 10s));

  // Node 1 is the first replica: the read fails its check there and falls back.
  auto got = client->Get(first);
  INFO(got.status().ToString());
  REQUIRE(got.ok());
  CHECK(*got == first_bytes);
  CHECK(cluster.Call(1, Head(first)).code == ErrorCode::kNotFound);  // quarantined on read

  Reply audit = cluster.Call(1, OpOnly(Op::kAudit));
  REQUIRE(audit.ok());
  CHECK(audit.stats["corrupt"] == 1);  // the second object; the first was caught on read
  CHECK(audit.stats["repaired"] == 2);
  CHECK(audit.stats["unrepaired"] == 0);
  for (const auto& [name, bytes] : {std::pair{first, first_bytes}, {second, second_bytes}}) {
    Request get;
    get.op = Op::kGet;
    get.name = name;
    Reply reply = cluster.Call(1, get);
    REQUIRE(reply.ok());
    CHECK(reply.payload == bytes);
  }
  Reply clean = cluster.Call(1, OpOnly(Op::kAudit));
  CHECK(clean.stats["corrupt"] == 0);
  CHECK(clean.stats["scanned"] == 2);
}

TEST_CASE(
    "a node with a full queue answers busy at once and drops requests past their "
    "deadline",
    "[cluster][slow]") {
  TestCluster cluster("cluster-busy", 1, 1, {"--workers", "1", "--max-queue", "2"});
  RawDealer dealer(cluster.node(0).endpoint(), &*cluster.key());
  auto send_put = [&](uint64_t id, const std::string& bytes, uint32_t timeout_ms) {
    Request put;
    put.op = Op::kPut;
    put.id = id;
    put.name = "burst/" + std::to_string(id);
    put.payload = bytes;
    put.checksum = storage::Checksum(bytes);
    put.ts = 1000 + static_cast<int64_t>(id);
    put.timeout_ms = timeout_ms;
    auto frames = storage::EncodeRequest(put);
    frames.insert(frames.begin(), "");
    dealer.Send(frames);
  };
  auto receive = [&] {
    auto reply_frames = dealer.Receive(30s);
    REQUIRE(reply_frames);
    std::vector<std::string_view> views(reply_frames->begin(), reply_frames->end());
    auto reply = storage::DecodeReply(views);
    REQUIRE(reply.ok());
    return std::move(*reply);
  };

  // A burst of synced 2 MiB writes at one worker and a queue of two.
  const std::string bytes = TestBytes(2 << 20, 5);
  const int burst = 20;
  for (int i = 0; i < burst; ++i) send_put(static_cast<uint64_t>(i + 1), bytes, 30000);
  // A heartbeat sent behind the burst is answered by the I/O thread, not queued.
  Request ping;
  ping.op = Op::kPing;
  ping.id = 999;
  auto ping_frames = storage::EncodeRequest(ping);
  ping_frames.insert(ping_frames.begin(), "");
  dealer.Send(ping_frames);
  std::map<std::string, int> codes;
  bool pinged = false;
  for (int i = 0; i < burst + 1; ++i) {
    Reply reply = receive();
    if (reply.id == 999) {
      pinged = true;
      CHECK(reply.ok());
      REQUIRE(reply.load);
      CHECK(reply.load->request_threads == 1);
      CHECK(reply.load->queued <= 2);
      continue;
    }
    ++codes[std::string(reply.code_name())];
    if (reply.code == ErrorCode::kBusy) {
      REQUIRE(reply.load);
      CHECK(reply.load->max_queue == 2);
    }
  }
  INFO("ok " << codes["ok"] << ", busy " << codes["busy"]);
  CHECK(pinged);
  CHECK(codes["busy"] >= 1);
  CHECK(codes["ok"] >= 2);
  CHECK(codes["ok"] + codes["busy"] == burst);

  // A request that waits in the queue behind a slow write longer than its budget.
  send_put(100, TestBytes(32 << 20, 6), 30000);
  send_put(101, "late", 1);
  std::map<uint64_t, std::string> by_id;
  for (int i = 0; i < 2; ++i) {
    Reply reply = receive();
    by_id[reply.id] = reply.code_name();
  }
  CHECK(by_id[100] == "ok");
  CHECK(by_id[101] == "deadline_exceeded");
  CHECK(cluster.Call(0, Head("burst/101")).code == ErrorCode::kNotFound);
  CHECK(cluster.Call(0, OpOnly(Op::kPing)).ok());
}

TEST_CASE("malformed messages get an error reply and the node keeps serving", "[cluster][slow]") {
  TestCluster cluster("cluster-garbage", 1, 1);
  RawDealer dealer(cluster.node(0).endpoint(), &*cluster.key());
  auto code_of = [&](const std::vector<std::string>& frames) {
    dealer.Send(frames);
    auto reply_frames = dealer.Receive(10s);
    REQUIRE(reply_frames);
    std::vector<std::string_view> views(reply_frames->begin(), reply_frames->end());
    auto reply = storage::DecodeReply(views);
    REQUIRE(reply.ok());
    return std::make_pair(std::string(reply->code_name()), reply->id);
  };
  CHECK(code_of(Frames({"", "hello"})).first == "bad_message");
  CHECK(code_of(Frames({"", "ZF9", "{}"})).first == "unsupported_version");
  CHECK(code_of(Frames({"", "ZF1", "not json {"})).first == "bad_message");
  CHECK(code_of(Frames({"", "ZF1", "[1,2]"})).first == "bad_message");
  CHECK(code_of(Frames({"", "ZF1", R"({"op":"FROB","id":5})"})) ==
        std::make_pair(std::string("unknown_op"), uint64_t{5}));
  CHECK(code_of(Frames({"", "ZF1", R"({"op":"GET","id":6})"})).first == "bad_message");
  CHECK(code_of(Frames({"", "ZF1", R"({"op":"PUT","id":7,"name":"a","checksum":"zz"})", "x"}))
            .first == "bad_message");
  CHECK(code_of(
            Frames({"", "ZF1",
                    R"({"op":"PUT","id":8,"name":"a","checksum":"0000000000000001","ts":5})", "x"}))
            .first == "checksum_mismatch");
  CHECK(code_of(Frames({"", "ZF1", R"({"op":"PING","id":"nine"})"})).first == "bad_message");
  CHECK(code_of(Frames({"", "ZF1", "{}", "a", "b"})).first == "bad_message");
  CHECK(code_of(Frames({"", ""})).first == "bad_message");
  {
    // A frame over the 64 MiB limit: ZeroMQ drops the sender's connection, nothing else.
    RawDealer big(cluster.node(0).endpoint(), &*cluster.key());
    big.Send(Frames({"", "ZF1", R"({"op":"PUT","id":1,"name":"big","checksum":"0"})",
                     std::string((65 << 20) + 1, 'x')}));
    CHECK_FALSE(big.Receive(1s));
  }
  CHECK(cluster.Call(0, OpOnly(Op::kPing)).ok());
  CHECK(cluster.Call(0, Head("big")).code == ErrorCode::kNotFound);
}

TEST_CASE(
    "a prefix delete removes every replica and a node that missed it does not bring the "
    "objects back",
    "[cluster][slow]") {
  TestCluster cluster("cluster-delete", 3, 3);
  auto client = cluster.Client();
  std::vector<std::string> names;
  for (int i = 0; i < 4; ++i) {
    names.push_back("jobs/5/chunks/" + std::to_string(i));
    REQUIRE(client->Put(names.back(), TestBytes(1000 + i, 50 + i)).ok());
    cluster.AwaitAllReplicas(names.back());
  }
  REQUIRE(client->Put("jobs/6/keep", "kept").ok());
  cluster.node(2).Kill9();
  REQUIRE(WaitFor([&] { return !client->IsAlive(2); }, 10s));
  auto removed = client->Delete("jobs/5/", /*prefix=*/true);
  INFO(removed.status().ToString());
  REQUIRE(removed.ok());
  CHECK(*removed == 8);  // four objects on the two live nodes
  for (const auto& n : names) CHECK(client->Get(n).status().code() == ErrorCode::kNotFound);

  REQUIRE(cluster.node(2).Start().empty());
  for (const auto& n : names) CHECK(cluster.Call(2, Head(n)).ok());  // it missed the delete
  Reply pass = cluster.Call(2, OpOnly(Op::kReplicate));
  REQUIRE(pass.ok());
  CHECK(pass.stats["pushed"] == 0);
  CHECK(pass.stats["dropped_deleted"] == names.size());
  for (const auto& n : names) {
    for (uint32_t node = 0; node < 3; ++node)
      CHECK(cluster.Call(node, Head(n)).code == ErrorCode::kNotFound);
  }
  CHECK(client->Get("jobs/6/keep").value() == "kept");
}

TEST_CASE("the periodic replicator moves a handoff copy home without being asked",
          "[cluster][slow]") {
  TestCluster cluster("cluster-periodic", 3, 2, {"--replicate-interval", "1s"});
  const std::string name = NameOnPrimary(cluster.ring(), 0, "jobs/7/chunks/");
  auto client = cluster.Client();
  const uint32_t handoff = client->HandoffsOf(cluster.ring().PartitionOf(name)).at(0);
  cluster.node(0).Kill9();
  REQUIRE(WaitFor([&] { return !client->IsAlive(0); }, 10s));
  auto put = client->Put(name, "held elsewhere");
  REQUIRE(put.ok());
  REQUIRE(put->handoffs.size() == 1);
  REQUIRE(cluster.node(0).Start().empty());
  auto home = WaitFor(
      [&] {
        return cluster.Call(0, Head(name)).ok() &&
               cluster.Call(handoff, Head(name)).code == ErrorCode::kNotFound;
      },
      20s);
  REQUIRE(home);
  std::printf("handoff moved home %lld ms after the node restarted (replicate interval 1 s)\n",
              static_cast<long long>(home->count()));
}

TEST_CASE("the background auditor finds and repairs a damaged copy on its own", "[cluster][slow]") {
  TestCluster cluster("cluster-auditor", 3, 3, {"--audit-rate", "64M"});
  const std::string name = "jobs/8/chunks/00000";
  const std::string bytes = TestBytes(1 << 20, 81);
  auto client = cluster.Client();
  REQUIRE(client->Put(name, bytes).ok());
  cluster.AwaitAllReplicas(name);
  REQUIRE(cluster.node(2).Stop() == 0);
  REQUIRE(CorruptEveryBlock(cluster.node(2).data()) == 1);
  REQUIRE(cluster.node(2).Start().empty());
  auto repaired = WaitFor(
      [&] {
        const std::string log = cluster.node(2).log();
        return log.find("auditor quarantined '" + name + "'") != std::string::npos &&
               log.find("repaired '" + name + "'") != std::string::npos;
      },
      20s);
  INFO(cluster.node(2).log());
  REQUIRE(repaired);
  Request get;
  get.op = Op::kGet;
  get.name = name;
  Reply reply = cluster.Call(2, get);
  REQUIRE(reply.ok());
  CHECK(reply.payload == bytes);
}

TEST_CASE("the node refuses to start when its endpoint is not in the ring", "[cluster][slow]") {
  TestCluster cluster("cluster-refuse", 1, 1);
  NodeProcess stranger("tcp://127.0.0.1:" + std::to_string(FreePort()), cluster.dir() / "stranger",
                       cluster.dir() / "ring.txt", cluster.KeyArgs());
  const std::string error = stranger.Start();
  CHECK_THAT(error, Catch::Contains("exited at start") &&
                        Catch::Contains("is not a node of the ring") &&
                        Catch::Contains(cluster.node(0).endpoint()));
}

}  // namespace
}  // namespace zerofarm::test
