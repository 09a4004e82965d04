// The node's wire against peers that are not the farm's or that misbehave: real `zerofarm node`
// processes on loopback, CURVE with a farm key from `zerofarm key create`, raw ZeroMQ frames.
#include <sys/stat.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "cluster_support.h"
#include "corpus.h"
#include "run_command.h"
#include "zerofarm/storage/cluster_client.h"
#include "zerofarm/storage/farm_key.h"
#include "zerofarm/storage/node_protocol.h"

namespace zerofarm::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using storage::Op;
using storage::Reply;
using storage::Request;

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// One request of every kind an outsider would try.
std::vector<Request> EveryOp() {
  std::vector<Request> out;
  Request r;
  r.op = Op::kPing;
  out.push_back(r);
  r.op = Op::kList;
  r.partition = 0;
  out.push_back(r);
  r = Request{};
  r.op = Op::kGet;
  r.name = "jobs/1/source";
  out.push_back(r);
  r.op = Op::kPut;
  r.payload = "outsider";
  r.checksum = storage::Checksum(r.payload);
  r.ts = NowNs();
  out.push_back(r);
  r = Request{};
  r.op = Op::kDelete;
  r.prefix = "jobs/1/";
  r.ts = NowNs();
  out.push_back(r);
  r = Request{};
  r.op = Op::kRunTask;
  r.task_id = "outsider";
  r.task = R"({"kind":"transcode"})";
  out.push_back(r);
  return out;
}

// Sends every op on `dealer`; the ops that got any answer within `wait` each.
std::vector<std::string> Answered(RawDealer& dealer, std::chrono::milliseconds wait) {
  std::vector<std::string> answered;
  uint64_t id = 0;
  for (Request r : EveryOp()) {
    r.id = ++id;
    auto frames = storage::EncodeRequest(r);
    frames.insert(frames.begin(), "");
    if (dealer.Send(frames) && dealer.Receive(wait)) answered.push_back(storage::OpName(r.op));
  }
  return answered;
}

Reply Exchange(RawDealer& dealer, const std::vector<std::string>& frames) {
  REQUIRE(dealer.Send(frames));
  auto got = dealer.Receive(20s);
  REQUIRE(got);
  std::vector<std::string_view> views(got->begin(), got->end());
  auto reply = storage::DecodeReply(views);
  REQUIRE(reply.ok());
  return std::move(*reply);
}

void WriteKeyFile(const std::filesystem::path& path, const std::string& text) {
  std::ofstream(path, std::ios::trunc) << text;
  REQUIRE(::chmod(path.c_str(), 0600) == 0);
}

std::unique_ptr<storage::ClusterClient> ClientWith(const storage::Ring& ring,
                                                   const storage::FarmKey& key) {
  storage::ClusterOptions options;
  options.heartbeats = false;
  options.request_timeout = 5s;
  options.key = key;
  auto client = storage::ClusterClient::Create(ring, options);
  REQUIRE(client.ok());
  return std::move(*client);
}

TEST_CASE("a node answers nothing to a socket without the farm key, nor to another key",
          "[cluster][security][slow]") {
  TestCluster cluster("wire-outsider", 1, 1);
  // Plaintext: the CURVE handshake never completes, so nothing is read.
  RawDealer plain(cluster.node(0).endpoint());
  CHECK(Answered(plain, 1500ms).empty());
  // CURVE with the node's true public key but a client key of its own: ZAP refuses it.
  auto stranger = storage::FarmKey::Generate();
  REQUIRE(stranger.ok());
  RawDealer foreign(cluster.node(0).endpoint(), &*cluster.key(), &stranger->primary());
  CHECK(Answered(foreign, 1500ms).empty());
  // The farm's key gets every answer.
  RawDealer member(cluster.node(0).endpoint(), &*cluster.key());
  CHECK(Answered(member, 10s).size() == EveryOp().size());
  CHECK_THAT(cluster.node(0).log(), Catch::Contains("refused a connection from 127.0.0.1"));
  // Nothing the outsiders sent was stored.
  CHECK(cluster
            .Call(0,
                  [] {
                    Request head;
                    head.op = Op::kHead;
                    head.name = "jobs/1/source";
                    return head;
                  }())
            .code == ErrorCode::kNotFound);
}

TEST_CASE("a node or proxy without --key refuses to start unless --insecure, which it reports",
          "[cluster][security][slow]") {
  TestCluster cluster("wire-nokey", 1, 1, {"--insecure"});
  CHECK_THAT(cluster.node(0).log(), Catch::Contains("WARNING: --insecure"));
  auto client = cluster.Client(/*heartbeats=*/false);
  REQUIRE(client->Put("jobs/1/source", "bytes").ok());

  NodeProcess keyless("tcp://127.0.0.1:" + std::to_string(FreePort()), cluster.dir() / "keyless",
                      cluster.dir() / "ring.txt", {});
  CHECK_THAT(keyless.Start(),
             Catch::Contains("exited at start") && Catch::Contains("--key FILE is required"));
  auto proxy =
      RunCommand({ZF_ZEROFARM_BIN, "proxy", "--ring", (cluster.dir() / "ring.txt").string(),
                  "--data", (cluster.dir() / "proxy").string()},
                 30s);
  CHECK(proxy.exit_code == 2);
  CHECK_THAT(proxy.err, Catch::Contains("--key FILE is required"));

  // A key file others may read is refused, and `key create` never overwrites one.
  const auto key = cluster.dir() / "farm.key";
  REQUIRE(RunCommand({ZF_ZEROFARM_BIN, "key", "create", "-o", key.string()}, 30s).succeeded());
  struct stat st {};
  REQUIRE(::stat(key.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  CHECK(RunCommand({ZF_ZEROFARM_BIN, "key", "create", "-o", key.string()}, 30s).exit_code == 1);
  REQUIRE(::chmod(key.c_str(), 0644) == 0);
  CHECK(storage::FarmKey::Load(key.string()).status().code() == ErrorCode::kInsecureKeyFile);
}

TEST_CASE(
    "a deeply nested message, far-future writes and a bare prefix delete are refused and the "
    "node keeps serving",
    "[cluster][security][slow]") {
  TestCluster cluster("wire-hostile", 1, 1);
  auto client = cluster.Client(/*heartbeats=*/false);
  REQUIRE(client->Put("jobs/a1/source", "before").ok());
  RawDealer dealer(cluster.node(0).endpoint(), &*cluster.key());

  // 100,000 nested arrays as a RUN_TASK's task: once a stack overflow on the node's I/O thread.
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  Reply reply = Exchange(
      dealer, {"", "ZF1", R"({"op":"RUN_TASK","id":1,"task_id":"x","task":)" + deep + "}"});
  CHECK(reply.code == ErrorCode::kBadMessage);
  // Truncation targets: partition 2^32 + 5 and a budget past 2^32 ms.
  CHECK(Exchange(dealer, {"", "ZF1", R"({"op":"LIST","id":2,"partition":4294967301})"}).code ==
        ErrorCode::kBadMessage);
  CHECK(Exchange(dealer, {"", "ZF1", R"({"op":"PING","id":3,"timeout_ms":4294967297})"}).code ==
        ErrorCode::kBadMessage);

  // A tombstone at 2^63 - 1 over every job, and one far ahead over a single object.
  CHECK(Exchange(dealer,
                 {"", "ZF1", R"({"op":"DELETE","id":4,"prefix":"jobs/","ts":9223372036854775807})"})
            .code == ErrorCode::kClockSkew);
  CHECK(Exchange(dealer, {"", "ZF1",
                          R"({"op":"DELETE","id":5,"prefix":"jobs/","ts":)" +
                              std::to_string(NowNs()) + "}"})
            .code == ErrorCode::kInvalidArgument);
  Request late;
  late.op = Op::kDelete;
  late.id = 6;
  late.name = "jobs/a1/source";
  late.ts = NowNs() + int64_t{24} * 3600 * 1000000000;  // one day ahead
  auto frames = storage::EncodeRequest(late);
  frames.insert(frames.begin(), "");
  CHECK(Exchange(dealer, frames).code == ErrorCode::kClockSkew);
  Request put;
  put.op = Op::kPut;
  put.id = 7;
  put.name = "jobs/a1/source";
  put.payload = "swapped";
  put.checksum = storage::Checksum(put.payload);
  put.ts = NowNs() + int64_t{24} * 3600 * 1000000000;
  frames = storage::EncodeRequest(put);
  frames.insert(frames.begin(), "");
  CHECK(Exchange(dealer, frames).code == ErrorCode::kClockSkew);
  CHECK_THAT(cluster.node(0).log(), Catch::Contains("ahead of this node's clock") &&
                                        Catch::Contains("refused a DELETE by prefix"));

  // The node is up, kept its object, and takes new writes under jobs/.
  REQUIRE(cluster.node(0).running());
  CHECK(client->Get("jobs/a1/source").value() == "before");
  CHECK(client->Put("jobs/a2/source", "after").ok());
  CHECK(client->Get("jobs/a2/source").value() == "after");
  // A job's own prefix may still be deleted.
  CHECK(client->Delete("jobs/a2/", /*prefix=*/true).value() == 1);
  CHECK(client->Delete("jobs/", /*prefix=*/true).status().code() == ErrorCode::kInvalidArgument);
}

TEST_CASE("the farm key rotates without downtime: old+new, then new+old, then new alone",
          "[cluster][security][slow]") {
  TestCluster cluster("wire-rotate", 2, 2);
  const storage::FarmKey old_key = *cluster.key();
  auto made = storage::FarmKey::Generate();
  REQUIRE(made.ok());
  const storage::FarmKey new_key = *made;
  auto both = [](const storage::FarmKey& first, const storage::FarmKey& second) {
    auto key = storage::FarmKey::Parse(first.ToText() + second.ToText());  // `cat first second`
    REQUIRE(key.ok());
    REQUIRE(key->keys().size() == 2);
    return *key;
  };
  const storage::FarmKey step1 = both(old_key, new_key);
  const storage::FarmKey step2 = both(new_key, old_key);
  // Every client of the rollout's steps reaches every node, whatever step it is at.
  int round = 0;
  auto all_reach = [&](const std::vector<const storage::FarmKey*>& clients) {
    for (const auto* key : clients) {
      auto client = ClientWith(cluster.ring(), *key);
      const std::string name = "jobs/r" + std::to_string(++round) + "/source";
      auto put = client->Put(name, name);
      INFO(put.status().ToString());
      REQUIRE(put.ok());
      CHECK(put->acked == 2);
      for (uint32_t n = 0; n < 2; ++n) {
        Request head;
        head.op = Op::kHead;
        head.name = name;
        auto reply = client->Call(n, head);
        INFO("node " << n << ": " << reply.status().ToString());
        CHECK((reply.ok() && reply->ok()));
      }
    }
  };
  // Restarts one node on the key file's new contents (the nodes read cluster.key_path()).
  auto restart = [&](uint32_t node, const storage::FarmKey& key) {
    WriteKeyFile(cluster.key_path(), key.ToText());
    REQUIRE(cluster.node(node).Stop() == 0);
    REQUIRE(cluster.node(node).Start().empty());
  };

  restart(0, step1);
  all_reach({&old_key, &step1});
  restart(1, step1);
  all_reach({&old_key, &step1});
  restart(0, step2);  // node 0 now serves the new key
  all_reach({&step1, &step2});
  restart(1, step2);
  all_reach({&step1, &step2});
  restart(0, new_key);
  all_reach({&step2, &new_key});
  restart(1, new_key);
  all_reach({&new_key});
  // The old key is revoked: its holder gets no answer.
  auto revoked = ClientWith(cluster.ring(), old_key);
  Request ping;
  ping.op = Op::kPing;
  CHECK(revoked->Call(0, ping, 1500ms).status().code() == ErrorCode::kUnavailable);
  CHECK(revoked->Put("jobs/r0/source", "x").status().code() == ErrorCode::kNoQuorum);
}

TEST_CASE("a node whose ring lists the same nodes in another order says so and moves no data",
          "[cluster][ring][slow]") {
  TestCluster cluster("wire-ring", 3, 2);
  auto client = cluster.Client(/*heartbeats=*/false);
  std::vector<std::string> names;
  for (int i = 0; i < 24; ++i) {
    names.push_back("jobs/ring/chunks/" + std::to_string(i));
    REQUIRE(client->Put(names.back(), TestBytes(4096, static_cast<uint64_t>(i))).ok());
  }
  for (const auto& n : names) cluster.AwaitAllReplicas(n);
  const auto ring_path = cluster.dir() / "ring.txt";
  // The same nodes, listed last to first.
  std::vector<std::string> build = {ZF_ZEROFARM_BIN,
                                    "ring",
                                    "build",
                                    "--replicas",
                                    "2",
                                    "--part-power",
                                    "4",
                                    "-o",
                                    (cluster.dir() / "reordered.txt").string()};
  for (int i = 2; i >= 0; --i)
    build.push_back(cluster.node(static_cast<uint32_t>(i)).endpoint() + ",zone=z" +
                    std::to_string(i));
  REQUIRE(RunCommand(build, 30s).succeeded());
  auto reordered = storage::Ring::Load((cluster.dir() / "reordered.txt").string());
  REQUIRE(reordered.ok());
  REQUIRE(reordered->ContentHash() != cluster.ring().ContentHash());

  // Node 2 restarts on its own ring file (the nodes follow the file they were started with);
  // the others keep the farm's.
  REQUIRE(cluster.node(2).Stop() == 0);
  cluster.node(2).set_ring(cluster.dir() / "reordered.txt");
  REQUIRE(cluster.node(2).Start().empty());

  Request replicate;
  replicate.op = Op::kReplicate;
  Reply paused = cluster.Call(2, replicate);
  CHECK(paused.stats["ring_mismatch"] == 1);
  CHECK(paused.stats["pushed"] == 0);
  CHECK(paused.stats["handed_home"] == 0);
  CHECK_THAT(cluster.node(2).log(), Catch::Contains("not the farm's majority ring") &&
                                        Catch::Contains("no data moves until the rings agree"));
  CHECK(cluster.node(2).log().find("local copy removed") == std::string::npos);
  // What node 2 held under the farm's ring is still there.
  for (const auto& n : names) {
    const auto& holders = cluster.ring().NodesOf(cluster.ring().PartitionOf(n));
    if (std::find(holders.begin(), holders.end(), 2u) == holders.end()) continue;
    Request head;
    head.op = Op::kHead;
    head.name = n;
    INFO(n);
    CHECK(cluster.Call(2, head).ok());
  }
  // The majority moves nothing to it either, and names it.
  Reply majority = cluster.Call(0, replicate);
  CHECK(majority.stats["ring_mismatch"] == 0);
  CHECK(majority.stats["peers_other_ring"] == 1);
  CHECK_THAT(cluster.node(0).log(), Catch::Contains("peers hold another ring") &&
                                        Catch::Contains(cluster.node(2).endpoint()));
  // Back on the farm's ring, it replicates again.
  REQUIRE(cluster.node(2).Stop() == 0);
  cluster.node(2).set_ring(ring_path);
  REQUIRE(cluster.node(2).Start().empty());
  Reply agreed = cluster.Call(2, replicate);
  CHECK(agreed.stats["ring_mismatch"] == 0);
  CHECK(agreed.stats["peers_other_ring"] == 0);
}

}  // namespace
}  // namespace zerofarm::test
