// The farm end to end: real `zerofarm node` processes and a real `zerofarm proxy` on loopback
// (or in network namespaces), videos uploaded over HTTP, renditions checked frame by frame with
// ffprobe, and the faults a farm must survive: a node or the proxy killed mid-job, a node that
// comes back, a chunk corrupted on disk, a straggling worker, a node cut off from the others.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "clip_factory.h"
#include "cluster_support.h"
#include "corpus.h"
#include "cpu_hog.h"
#include "hls_playlist.h"
#include "media_check.h"
#include "run_command.h"
#include "serve_process.h"
#include "zerofarm/storage/cluster_store.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace zerofarm;
using namespace zerofarm::test;
using namespace std::chrono_literals;

namespace {

std::string ChunkName(const std::string& id, int index) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "chunks/%05d", index);
  return "jobs/" + id + "/" + buf;
}

// Checks that `node` has every segment of the video's first rendition that the ring places on
// it (`head_ok` sends it a HEAD and says whether it answered ok); returns how many it checked.
int CheckHoldsItsSegments(const storage::Ring& ring, const json& video, uint32_t node,
                          const std::function<bool(const storage::Request&)>& head_ok) {
  const std::string id = video["id"];
  const std::string rung = video["renditions"][0]["name"];
  int checked = 0;
  for (const auto& c : video["chunks"]) {
    if (c["index"].get<int>() < 0) continue;
    const std::string segment = ChunkName(id, c["index"]) + "#out/" + rung;
    const auto& holders = ring.NodesOf(ring.PartitionOf(segment));
    if (std::find(holders.begin(), holders.end(), node) == holders.end()) continue;
    storage::Request head;
    head.op = storage::Op::kHead;
    head.name = segment;
    INFO(segment);
    CHECK(head_ok(head));
    ++checked;
  }
  return checked;
}

// `zerofarm proxy --ring RING --key FILE` for a TestCluster.
std::vector<std::string> ProxyCommand(const TestCluster& cluster) {
  std::vector<std::string> command = {"proxy", "--ring", (cluster.dir() / "ring.txt").string()};
  for (const auto& a : cluster.KeyArgs()) command.push_back(a);
  return command;
}

// A proxy in front of a TestCluster, started; its data under the cluster's scratch dir. With
// $ZEROFARM_TEST_CPU_HOG=N, N busy loops run beside it for its whole life.
struct Farm {
  explicit Farm(const std::string& label, int replicas = 2,
                std::vector<std::string> proxy_args = {"--chunk-seconds", "1"})
      : cluster(label, 3, replicas, {"--task-slots", "1"}),
        proxy(cluster.dir() / "proxy", proxy_args, ProxyCommand(cluster)) {
    const std::string err = proxy.Start();
    INFO(err);
    REQUIRE(err.empty());
  }

  std::string Upload(const fs::path& file, const std::string& ladder = "360p") {
    auto args = Bearer(proxy.token());
    args.insert(args.end(), {"--data-binary", "@" + file.string()});
    auto r = Curl(
        args, proxy.url("/v1/videos?ladder=" + ladder + "&filename=" + file.filename().string()));
    INFO(file << ": " << r.body << r.error);
    REQUIRE(r.status == 201);
    return json::parse(r.body)["id"];
  }

  json Video(const std::string& id) {
    auto r = Curl(Bearer(proxy.token()), proxy.url("/v1/videos/" + id));
    REQUIRE(r.status == 200);
    return json::parse(r.body);
  }

  json WaitDone(const std::string& id, std::chrono::seconds limit = 300s) {
    return json::parse(WaitForStatus(proxy, proxy.token(), id, {"ready", "failed"}, limit));
  }

  // Frames of the first rendition's MP4 as a player downloads it.
  int64_t RenditionFrames(const json& video) {
    const std::string id = video["id"];
    const std::string rung = video["renditions"][0]["name"];
    const fs::path got = cluster.dir() / (id + "-" + rung + ".mp4");
    auto fetch = RunCommand(
        {"curl", "-sS", "-f", "-o", got.string(),
         proxy.url("/v1/videos/" + id + "/mp4/" + rung + ".mp4?access_token=" + proxy.token())},
        60s);
    REQUIRE(fetch.succeeded());
    return CountFrames(got);
  }

  // A value of the proxy's /metrics (0 when absent).
  double Metric(const std::string& name) {
    auto r = Curl(Bearer(proxy.token()), proxy.url("/metrics"));
    REQUIRE(r.status == 200);
    size_t at = r.body.find("\n" + name + " ");
    if (at == std::string::npos) return 0;
    return std::stod(r.body.substr(at + name.size() + 2));
  }

  // Waits until one of the video's tasks runs and at least `done` have finished; returns the
  // node of a running task.
  std::string WaitForRunningTask(const std::string& id, int done) {
    std::string node;
    auto waited = WaitFor(
        [&] {
          json v = Video(id);
          int finished = 0;
          std::string running;
          for (const auto& c : v.value("chunks", json::array())) {
            if (c["state"] == "done") ++finished;
            if (c["state"] == "running" && !c["node"].get<std::string>().empty())
              running = c["node"];
          }
          if (finished >= done && !running.empty()) node = running;
          return !node.empty();
        },
        120s);
    REQUIRE(waited.has_value());
    return node;
  }

  uint32_t NodeIdOf(const std::string& endpoint) {
    for (const auto& n : cluster.ring().nodes())
      if (n.endpoint == endpoint) return n.id;
    FAIL("no node " << endpoint);
    return 0;
  }

  // Every stored byte of the upload reads back through the cluster as it was sent.
  void CheckSourceIntact(const std::string& id, const fs::path& file) {
    storage::ClusterStoreOptions o;
    o.cluster.heartbeats = false;
    o.cluster.key = cluster.key();
    auto store = storage::ClusterStore::Create(cluster.ring(), o);
    REQUIRE(store.ok());
    auto stored = (*store)->GetObject("jobs/" + id + "/source");
    REQUIRE(stored.ok());
    CHECK(*stored == ReadFile(file));
  }

  CpuHog hog{CpuHog::FromEnvironment()};
  TestCluster cluster;
  ServeProcess proxy;
};

// A clip whose keyframes fall on every second: 1 s chunks never need pre-roll.
fs::path SteadyClip(int seconds) { return MakeShortClip(seconds, 25); }

}  // namespace

TEST_CASE(
    "a proxy over three storage nodes transcodes the corpus frame-exact and refuses the "
    "bad clips with a reason",
    "[farm][integration][corpus][slow]") {
  auto corpus = CorpusDir();
  if (!corpus) {
    WARN("no corpus (../shared/media/corpus or $ZEROFARM_CORPUS): skipped");
    return;
  }
  auto manifest = ReadCorpusManifest(*corpus);
  REQUIRE(manifest.ok());
  Farm farm("farm-corpus");
  std::vector<std::pair<CorpusEntry, std::string>> uploaded;
  for (const auto& e : *manifest) {
    const fs::path file = *corpus / e.file;
    if (fs::exists(file)) uploaded.emplace_back(e, farm.Upload(file));
  }
  REQUIRE(!uploaded.empty());
  for (const auto& [e, id] : uploaded) {
    json v = farm.WaitDone(id);
    INFO(e.file << " (" << e.what << "): " << v.dump());
    if (!e.transcode) {
      CHECK(v["status"] == "failed");
      CHECK(!v["error"]["code"].get<std::string>().empty());
      continue;
    }
    REQUIRE(v["status"] == "ready");
    if (e.frames) CHECK(farm.RenditionFrames(v) == *e.frames);
    // Every video task ran on a node holding a replica of its chunk.
    for (const auto& c : v["chunks"]) {
      if (c["index"].get<int>() < 0) continue;
      const auto& ring = farm.cluster.ring();
      std::set<std::string> holders;
      for (uint32_t n : ring.NodesOf(ring.PartitionOf(ChunkName(id, c["index"]))))
        holders.insert(ring.nodes()[n].endpoint);
      CHECK(holders.count(c["node"].get<std::string>()) == 1);
    }
    CHECK(v["network"]["task_input_bytes"].get<uint64_t>() > 0);
  }
  CHECK(farm.Metric("zerofarm_remote_placements_total") == 0);
  CHECK(farm.Metric("zerofarm_tasks_moved_total") == 0);
  CHECK(Curl({}, farm.proxy.url("/healthz")).status == 200);
}

TEST_CASE("tasks run next to their chunks: no chunk byte crosses the network for a task",
          "[farm][integration][slow]") {
  Farm farm("farm-local");
  const fs::path clip = SteadyClip(12);
  const std::string id = farm.Upload(clip);
  json v = farm.WaitDone(id);
  INFO(v.dump());
  REQUIRE(v["status"] == "ready");
  CHECK(farm.RenditionFrames(v) == CountFrames(clip));
  CHECK(v["network"]["task_input_bytes"].get<uint64_t>() > 0);
  CHECK(v["network"]["task_input_bytes_remote"].get<uint64_t>() == 0);
  // Outputs are stored on the node that made them and sent to the other replica only.
  CHECK(v["network"]["task_output_bytes_sent"].get<uint64_t>() > 0);
  std::set<std::string> nodes;
  for (const auto& c : v["chunks"]) nodes.insert(c["node"].get<std::string>());
  CHECK(nodes.size() >= 2);  // the work spread over the farm
}

TEST_CASE(
    "a node killed with -9 mid-job loses its tasks to another holder, and its replicas "
    "are repaired when it comes back",
    "[farm][fault][slow]") {
  Farm farm("farm-kill-node");
  const fs::path clip = SteadyClip(40);
  const std::string id = farm.Upload(clip);
  const std::string victim = farm.WaitForRunningTask(id, 3);
  const uint32_t victim_id = farm.NodeIdOf(victim);
  farm.cluster.node(victim_id).Kill9();
  json v = farm.WaitDone(id);
  INFO(v.dump());
  REQUIRE(v["status"] == "ready");
  CHECK(farm.RenditionFrames(v) == CountFrames(clip));
  CHECK(farm.Metric("zerofarm_tasks_moved_total") >= 1);
  farm.CheckSourceIntact(id, clip);

  // The node returns; one replication pass of its peers brings it every object it should hold.
  const std::string restarted = farm.cluster.node(victim_id).Start();
  INFO(restarted);
  REQUIRE(restarted.empty());
  for (uint32_t n = 0; n < farm.cluster.size(); ++n) {
    if (n == victim_id) continue;
    storage::Request r;
    r.op = storage::Op::kReplicate;
    CHECK(farm.cluster.Call(n, r, 120s).ok());
  }
  const auto& ring = farm.cluster.ring();
  CHECK(CheckHoldsItsSegments(ring, v, victim_id, [&](const storage::Request& head) {
          return farm.cluster.Call(victim_id, head).ok();
        }) > 0);
}

namespace {

// The segment files a media playlist lists, in order (tests/support's strict reader).
std::vector<std::string> Listed(const std::string& playlist) {
  auto listed = ListedSegments(playlist);
  INFO(playlist);
  REQUIRE(listed.ok());
  return *listed;
}

}  // namespace

TEST_CASE(
    "a video plays through the proxy while its nodes still transcode it, and what was "
    "published survives a kill -9 of the proxy byte for byte",
    "[farm][progressive][fault][slow]") {
  Farm farm("farm-progressive");
  const fs::path clip = SteadyClip(30);
  const std::string id = farm.Upload(clip);
  json v;
  auto playable = WaitFor(
      [&] {
        v = farm.Video(id);
        if (v.value("playable", false) || v.value("status", "") != "processing") return true;
        std::this_thread::sleep_for(100ms);  // each poll is a curl process
        return false;
      },
      240s);
  INFO(v.dump());
  REQUIRE(playable.has_value());
  REQUIRE(v["status"] == "processing");
  REQUIRE(v["playable"] == true);
  const std::string base = "/v1/videos/" + id + "/hls/";
  const std::string rung = v["ladder"][0];  // the clip is smaller than 360p: one rung, its size
  auto fetch = [&](const std::string& path) {
    auto r = Curl(Bearer(farm.proxy.token()), farm.proxy.url(path));
    INFO(path << " -> " << r.status);
    REQUIRE(r.status == 200);
    return r.body;
  };
  const std::string playlist = fetch(base + rung + "/index.m3u8");
  CHECK_THAT(playlist, Catch::Contains("#EXT-X-PLAYLIST-TYPE:EVENT"));
  CHECK_THAT(playlist, !Catch::Contains("#EXT-X-ENDLIST"));
  std::map<std::string, std::string> published;
  for (const std::string& r : {rung, std::string("audio")})
    for (const auto& seg : Listed(fetch(base + r + "/index.m3u8")))
      published[r + "/" + seg] = fetch(base + r + "/" + seg);
  REQUIRE(!published.empty());

  farm.proxy.Kill9();
  REQUIRE(farm.proxy.Start().empty());
  for (int round = 0; round < 2; ++round) {
    for (const auto& [name, bytes] : published) {
      const auto listed = Listed(fetch(base + name.substr(0, name.find('/')) + "/index.m3u8"));
      INFO(name << " round " << round);
      CHECK(std::find(listed.begin(), listed.end(), name.substr(name.find('/') + 1)) !=
            listed.end());
      CHECK(fetch(base + name) == bytes);
    }
    if (round == 0) {
      v = farm.WaitDone(id);
      INFO(v.dump());
      REQUIRE(v["status"] == "ready");
    }
  }
  CHECK_THAT(fetch(base + rung + "/index.m3u8"), Catch::Contains("#EXT-X-ENDLIST"));
  CHECK(farm.RenditionFrames(v) == CountFrames(clip));
}

TEST_CASE(
    "a ring with a fourth node pushed while a job runs is picked up by the nodes and the proxy, "
    "and the job ends ready and frame-exact",
    "[farm][ring][slow]") {
  Farm farm("farm-ring-grow");
  const fs::path clip = SteadyClip(16);
  const std::string id = farm.Upload(clip);
  (void)farm.WaitForRunningTask(id, 1);

  // `zerofarm ring build` over the live ring file with a fourth node, which starts on it.
  const fs::path ring_path = farm.cluster.dir() / "ring.txt";
  const std::string fourth = "tcp://127.0.0.1:" + std::to_string(FreePort());
  std::vector<std::string> build = {ZF_ZEROFARM_BIN, "ring", "build", "--replicas",      "2",
                                    "--part-power",  "4",    "-o",    ring_path.string()};
  for (uint32_t i = 0; i < 3; ++i)
    build.push_back(farm.cluster.node(i).endpoint() + ",zone=z" + std::to_string(i));
  build.push_back(fourth + ",zone=z3");
  auto built = RunCommand(build, 30s);
  INFO(built.out << built.err);
  REQUIRE(built.succeeded());
  std::vector<std::string> args = {"--task-slots", "1"};
  for (const auto& a : farm.cluster.KeyArgs()) args.push_back(a);
  NodeProcess node3(fourth, farm.cluster.dir() / "node3", ring_path, args);
  REQUIRE(node3.Start().empty());
  REQUIRE(WaitFor([&] { return farm.Metric("zerofarm_ring_generation") == 2; }, 10s));
  CHECK_THAT(farm.proxy.log(), Catch::Contains("ring reloaded: "));
  for (uint32_t i = 0; i < 3; ++i)
    CHECK(WaitFor(
        [&] { return farm.cluster.node(i).log().find("ring reloaded: ") != std::string::npos; },
        10s));
  // The replicators move what the new ring placed elsewhere while the job goes on.
  storage::Request replicate;
  replicate.op = storage::Op::kReplicate;
  for (uint32_t i = 0; i < 3; ++i) (void)farm.cluster.Call(i, replicate);

  json v = farm.WaitDone(id);
  INFO(v.dump());
  REQUIRE(v["status"] == "ready");
  CHECK(farm.RenditionFrames(v) == CountFrames(clip));
  CHECK(WaitFor(
      [&] {
        auto r = Curl(Bearer(farm.proxy.token()), farm.proxy.url("/metrics"));
        return r.body.find("zerofarm_node_same_ring{node=\"" + fourth + "\"} 1") !=
               std::string::npos;
      },
      10s));
}

TEST_CASE("a proxy killed with -9 mid-job resumes every job when it restarts",
          "[farm][fault][slow]") {
  Farm farm("farm-kill-proxy");
  const fs::path a = SteadyClip(30), b = SteadyClip(8);
  const std::string first = farm.Upload(a);
  const std::string second = farm.Upload(b);
  farm.WaitForRunningTask(first, 3);
  farm.proxy.Kill9();
  REQUIRE(farm.proxy.Start().empty());
  for (const auto& [id, clip] : {std::pair{first, a}, std::pair{second, b}}) {
    json v = farm.WaitDone(id);
    INFO(v.dump());
    REQUIRE(v["status"] == "ready");
    CHECK(farm.RenditionFrames(v) == CountFrames(clip));
    farm.CheckSourceIntact(id, clip);
  }
}

TEST_CASE(
    "a chunk corrupted on a node's disk is found by the auditor and repaired from a "
    "replica",
    "[farm][fault][slow]") {
  Farm farm("farm-corrupt");
  const fs::path clip = SteadyClip(6);
  const std::string id = farm.Upload(clip);
  json v = farm.WaitDone(id);
  REQUIRE(v["status"] == "ready");

  // Damage every block node 0 stores while it is down.
  REQUIRE(farm.cluster.node(0).Stop() == 0);
  CHECK(CorruptEveryBlock(farm.cluster.node(0).data()) > 0);
  REQUIRE(farm.cluster.node(0).Start().empty());
  storage::Request audit;
  audit.op = storage::Op::kAudit;
  storage::Reply audited = farm.cluster.Call(0, audit, 120s);
  INFO(audited.message);
  REQUIRE(audited.ok());
  CHECK(audited.stats["corrupt"] > 0);
  CHECK(audited.stats["repaired"] == audited.stats["corrupt"]);
  // Node 0 serves good copies again, the upload reads back intact, and a new job over the
  // same farm comes out frame-exact.
  const auto& ring = farm.cluster.ring();
  const std::string chunk = ChunkName(id, 0);
  const auto& holders = ring.NodesOf(ring.PartitionOf(chunk));
  if (std::find(holders.begin(), holders.end(), 0u) != holders.end()) {
    storage::Request get;
    get.op = storage::Op::kGet;
    get.name = chunk;
    CHECK(farm.cluster.Call(0, get).ok());
  }
  farm.CheckSourceIntact(id, clip);
  const std::string again = farm.Upload(clip);
  json w = farm.WaitDone(again);
  REQUIRE(w["status"] == "ready");
  CHECK(farm.RenditionFrames(w) == CountFrames(clip));
}

namespace {

// The pid of a running zerofarm-worker (a task in progress) below process `ancestor`, if any.
std::optional<pid_t> WorkerUnder(pid_t ancestor) {
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    const std::string cmdline = ReadFile(entry.path() / "cmdline");
    if (cmdline.find("--task") == std::string::npos ||
        cmdline.find("decode_from") == std::string::npos)
      continue;
    pid_t pid = std::stoi(name);
    for (int depth = 0; depth < 8 && pid > 1; ++depth) {
      std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
      std::string text((std::istreambuf_iterator<char>(stat)), {});
      const size_t close = text.rfind(')');
      if (close == std::string::npos) break;
      int ppid = 0;
      std::sscanf(text.c_str() + close + 2, "%*c %d", &ppid);
      if (ppid == ancestor) return std::stoi(name);
      pid = ppid;
    }
  }
  return std::nullopt;
}

}  // namespace

TEST_CASE(
    "a straggling task gets a backup copy on another holder and the first copy to finish "
    "wins, also on a loaded machine",
    "[farm][fault][slow]") {
  // Two busy loops beside the farm: under this load the job used to stay `processing` with
  // every task done (the cancelled, stopped copy kept its node's only slot until its timeout,
  // and the proxy kept offering the next task to that node rather than to the other holder).
  CpuHog load(2);
  Farm farm("farm-straggler", 2, {"--chunk-seconds", "1", "--backup-after", "3s"});
  const fs::path clip = SteadyClip(30);
  const std::string id = farm.Upload(clip);
  // Freeze one worker (its node keeps answering heartbeats: a straggler, not a dead node).
  const std::string node = farm.WaitForRunningTask(id, 4);
  const pid_t node_pid = farm.cluster.node(farm.NodeIdOf(node)).pid();
  std::optional<pid_t> worker;
  REQUIRE(WaitFor([&] { return (worker = WorkerUnder(node_pid)).has_value(); }, 30s));
  REQUIRE(::kill(*worker, SIGSTOP) == 0);
  json v = farm.WaitDone(id);
  INFO(v.dump());
  REQUIRE(v["status"] == "ready");
  // The losing copy was cancelled: its node killed the stopped worker rather than leave it
  // holding the node's slot until the task's timeout.
  const auto gone = WaitFor([&] { return !fs::exists("/proc/" + std::to_string(*worker)); }, 60s);
  if (!gone) ::kill(*worker, SIGKILL);
  CHECK(gone.has_value());
  CHECK(farm.RenditionFrames(v) == CountFrames(clip));
  CHECK(farm.Metric("zerofarm_backup_copies_total") >= 1);
  CHECK(farm.Metric("zerofarm_backup_wins_total") >= 1);
  CHECK(farm.Metric("zerofarm_tasks_moved_total") == 0);
}

namespace {

// iproute2's `ip` (SpawnWithLog does not search PATH).
std::string IpTool() {
  for (const char* p : {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"})
    if (fs::exists(p)) return p;
  return "ip";
}

// Three network namespaces on a private bridge, each with its own address (10.231.N.0/24 is
// used only inside the namespaces and on the bridge these create); everything is removed on
// destruction.
class NetnsLab {
 public:
  NetnsLab() {
    const std::string tag = std::to_string(::getpid() % 100000);
    bridge_ = "zfb" + tag;
    if (!Run({"ip", "link", "add", bridge_, "type", "bridge"})) {
      why_ = "cannot create a bridge (" + last_ + ")";
      return;
    }
    ok_ = Run({"ip", "addr", "add", "10.231.0.1/24", "dev", bridge_}) &&
          Run({"ip", "link", "set", bridge_, "up"});
    for (int i = 0; ok_ && i < 3; ++i) {
      const std::string ns = "zf" + tag + "n" + std::to_string(i);
      const std::string host = "zf" + tag + "h" + std::to_string(i);
      const std::string peer = "zf" + tag + "c" + std::to_string(i);
      namespaces_.push_back(ns);
      host_links_.push_back(host);
      ok_ =
          Run({"ip", "netns", "add", ns}) &&
          Run({"ip", "link", "add", host, "type", "veth", "peer", "name", peer}) &&
          Run({"ip", "link", "set", peer, "netns", ns}) &&
          Run({"ip", "link", "set", host, "master", bridge_}) &&
          Run({"ip", "link", "set", host, "up"}) &&
          Run({"ip", "netns", "exec", ns, "ip", "addr", "add", Address(i) + "/24", "dev", peer}) &&
          Run({"ip", "netns", "exec", ns, "ip", "link", "set", peer, "up"}) &&
          Run({"ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"});
    }
    if (!ok_) why_ = "cannot set up network namespaces (" + last_ + ")";
  }
  ~NetnsLab() {
    for (const auto& ns : namespaces_) Run({"ip", "netns", "del", ns});
    Run({"ip", "link", "del", bridge_});
  }
  bool ok() const { return ok_; }
  const std::string& why() const { return why_; }
  static std::string Address(int i) { return "10.231.0." + std::to_string(10 + i); }
  const std::string& ns(int i) const { return namespaces_[static_cast<size_t>(i)]; }
  // Cuts (or restores) node i's only link: it can reach nobody and nobody can reach it.
  bool SetLink(int i, bool up) {
    return Run({"ip", "link", "set", host_links_[static_cast<size_t>(i)], up ? "up" : "down"});
  }

 private:
  bool Run(const std::vector<std::string>& argv) {
    auto r = RunCommand(argv, 30s);
    if (!r.succeeded()) last_ = FormatCommand(argv) + ": " + r.err;
    return r.succeeded();
  }
  std::string bridge_;
  std::vector<std::string> namespaces_, host_links_;
  bool ok_ = false;
  std::string why_, last_;
};

}  // namespace

TEST_CASE(
    "a node cut off from the others in its own network namespace loses its tasks, and "
    "catches up when the link returns",
    "[farm][fault][netns][slow]") {
  if (::geteuid() != 0) {
    WARN("network namespaces need root: skipped");
    return;
  }
  NetnsLab lab;
  if (!lab.ok()) {
    WARN("the host forbids network namespaces here: skipped: " << lab.why());
    return;
  }
  auto dir = ScratchDir::Create("farm-netns");
  REQUIRE(dir.ok());
  const fs::path ring_path = dir->path() / "ring.txt";
  std::vector<std::string> build = {ZF_ZEROFARM_BIN, "ring", "build", "--replicas",      "2",
                                    "--part-power",  "4",    "-o",    ring_path.string()};
  for (int i = 0; i < 3; ++i)
    build.push_back("tcp://" + NetnsLab::Address(i) + ":7000,zone=z" + std::to_string(i));
  REQUIRE(RunCommand(build, 30s).succeeded());
  auto ring = storage::Ring::Load(ring_path.string());
  REQUIRE(ring.ok());
  const fs::path key_path = dir->path() / "farm.key";
  REQUIRE(RunCommand({ZF_ZEROFARM_BIN, "key", "create", "-o", key_path.string()}, 30s).succeeded());
  auto key = storage::FarmKey::Load(key_path.string());
  REQUIRE(key.ok());

  // Each node runs inside its namespace; `ip netns exec` execs it, so the pid is the node's.
  std::vector<pid_t> nodes;
  auto start_node = [&](int i) {
    const fs::path data = dir->path() / ("node" + std::to_string(i));
    const std::string log = data.string() + ".log";
    const size_t from = fs::exists(log) ? fs::file_size(log) : 0;
    pid_t pid = SpawnWithLog({IpTool(),
                              "netns",
                              "exec",
                              lab.ns(i),
                              ZF_ZEROFARM_BIN,
                              "node",
                              "--data",
                              data.string(),
                              "--bind",
                              "tcp://" + NetnsLab::Address(i) + ":7000",
                              "--ring",
                              ring_path.string(),
                              "--task-slots",
                              "1",
                              "--replicate-interval",
                              "0",
                              "--audit-rate",
                              "0",
                              "--key",
                              key_path.string()},
                             log);
    REQUIRE(pid > 0);
    REQUIRE(WaitFor(
        [&] { return ReadFile(log).substr(from).find("listening on") != std::string::npos; }, 60s));
    return pid;
  };
  for (int i = 0; i < 3; ++i) nodes.push_back(start_node(i));
  struct Reaper {
    std::vector<pid_t>& pids;
    ~Reaper() {
      for (pid_t p : pids) {
        ::kill(p, SIGKILL);
        ::waitpid(p, nullptr, 0);
      }
    }
  } reaper{nodes};

  ServeProcess proxy(dir->path() / "proxy", {"--chunk-seconds", "1"},
                     {"proxy", "--ring", ring_path.string(), "--key", key_path.string()});
  REQUIRE(proxy.Start().empty());
  const fs::path clip = SteadyClip(40);
  auto args = Bearer(proxy.token());
  args.insert(args.end(), {"--data-binary", "@" + clip.string()});
  auto created = Curl(args, proxy.url("/v1/videos?ladder=360p"));
  REQUIRE(created.status == 201);
  const std::string id = json::parse(created.body)["id"];

  // Cut off a node while it runs a task.
  std::string victim;
  REQUIRE(WaitFor(
      [&] {
        auto r = Curl(Bearer(proxy.token()), proxy.url("/v1/videos/" + id));
        json v = json::parse(r.body);
        int done = 0;
        for (const auto& c : v.value("chunks", json::array())) {
          if (c["state"] == "done") ++done;
          if (c["state"] == "running" && done >= 3 && !c["node"].get<std::string>().empty())
            victim = c["node"];
        }
        return !victim.empty();
      },
      120s));
  int victim_id = -1;
  for (const auto& n : ring->nodes())
    if (n.endpoint == victim) victim_id = static_cast<int>(n.id);
  REQUIRE(victim_id >= 0);
  REQUIRE(lab.SetLink(victim_id, false));

  json v = json::parse(WaitForStatus(proxy, proxy.token(), id, {"ready", "failed"}, 300s));
  INFO(v.dump() << "\n" << proxy.log());
  REQUIRE(v["status"] == "ready");
  const fs::path got = dir->path() / "out.mp4";
  const std::string rung = v["renditions"][0]["name"];
  REQUIRE(RunCommand({"curl", "-sS", "-f", "-o", got.string(),
                      proxy.url("/v1/videos/" + id + "/mp4/" + rung +
                                ".mp4?access_token=" + proxy.token())},
                     60s)
              .succeeded());
  CHECK(CountFrames(got) == CountFrames(clip));
  auto metrics = Curl(Bearer(proxy.token()), proxy.url("/metrics")).body;
  CHECK(metrics.find("zerofarm_tasks_moved_total 0\n") == std::string::npos);

  // The link returns: the others' replicators bring the node what it missed.
  REQUIRE(lab.SetLink(victim_id, true));
  storage::ClusterOptions co;
  co.heartbeats = false;
  co.request_timeout = 120s;
  co.key = *key;
  auto client = storage::ClusterClient::Create(*ring, co);
  REQUIRE(client.ok());
  for (uint32_t n = 0; n < 3; ++n) {
    if (static_cast<int>(n) == victim_id) continue;
    storage::Request r;
    r.op = storage::Op::kReplicate;
    auto reply = (*client)->Call(n, r);
    REQUIRE(reply.ok());
    CHECK(reply->ok());
  }
  const auto victim_node = static_cast<uint32_t>(victim_id);
  CHECK(CheckHoldsItsSegments(*ring, v, victim_node, [&](const storage::Request& head) {
          auto reply = (*client)->Call(victim_node, head);
          return reply.ok() && reply->ok();
        }) > 0);
  proxy.Kill9();
}

namespace {

// A tmpfs of `size` mounted at `dir` for the scope (lazily unmounted at its end).
struct TmpfsMount {
  TmpfsMount(const fs::path& dir, const std::string& size) : dir_(dir) {
    fs::create_directories(dir);
    auto r = RunCommand({"mount", "-t", "tmpfs", "-o", "size=" + size, "tmpfs", dir.string()}, 30s);
    mounted_ = r.succeeded();
    why_ = r.err;
  }
  ~TmpfsMount() {
    if (mounted_) (void)RunCommand({"umount", "-l", dir_.string()}, 30s);
  }
  bool mounted() const { return mounted_; }
  const std::string& why() const { return why_; }

 private:
  fs::path dir_;
  bool mounted_ = false;
  std::string why_;
};

}  // namespace

TEST_CASE(
    "a node on a full file system keeps serving reads, refuses writes with disk_full, and takes "
    "writes again once space returns, with every upload intact",
    "[farm][fault][disk][slow]") {
  Farm farm("farm-diskfull");
  const fs::path clip = SteadyClip(8);
  const std::string before = farm.Upload(clip);
  REQUIRE(farm.WaitDone(before)["status"] == "ready");

  // Node 2's store moves onto a 64 MiB tmpfs, then a filler leaves it less than its reserve.
  NodeProcess& node = farm.cluster.node(2);
  REQUIRE(node.Stop() == 0);
  const fs::path data = node.data();
  fs::rename(data, data.string() + ".disk");
  TmpfsMount tmpfs(data, "64m");
  if (!tmpfs.mounted()) {
    WARN("cannot mount a tmpfs here: skipped: " << tmpfs.why());
    return;
  }
  fs::copy(data.string() + ".disk", data, fs::copy_options::recursive);
  const auto space = fs::space(data);
  const fs::path filler = data / "filler";
  const uintmax_t fill = space.available > (8u << 20) ? space.available - (8u << 20) : 0;
  REQUIRE(RunCommand({"fallocate", "-l", std::to_string(fill), filler.string()}, 30s).succeeded());
  node.AddArgs({"--disk-reserve", "16M"});
  REQUIRE(node.Start().empty());
  REQUIRE(WaitFor([&] { return node.log().find("disk full") != std::string::npos; }, 10s));

  // Writes are refused with a reason, the heartbeat says so, reads go on.
  storage::Request ping;
  ping.op = storage::Op::kPing;
  storage::Reply pong = farm.cluster.Call(2, ping);
  REQUIRE(pong.load);
  CHECK(pong.load->disk_full);
  storage::Request put;
  put.op = storage::Op::kPut;
  put.name = "jobs/full/probe";
  put.payload = "probe";
  put.checksum = storage::Checksum(put.payload);
  put.ts = std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::system_clock::now().time_since_epoch())
               .count();
  storage::Reply refused = farm.cluster.Call(2, put);
  CHECK(refused.code == ErrorCode::kDiskFull);
  CHECK_THAT(refused.message, Catch::Contains("reserve"));
  const json ready = farm.Video(before);
  CHECK(CheckHoldsItsSegments(farm.cluster.ring(), ready, 2, [&](const storage::Request& head) {
          return farm.cluster.Call(2, head).ok();
        }) > 0);
  REQUIRE(WaitFor(
      [&] { return farm.Metric("zerofarm_node_disk_full{node=\"" + node.endpoint() + "\"}") == 1; },
      10s));

  // Uploads go on: node 2's copies go to handoff nodes.
  const std::string during = farm.Upload(clip);
  json v = farm.WaitDone(during);
  INFO(v.dump() << "\n" << farm.proxy.log());
  REQUIRE(v["status"] == "ready");
  CHECK(farm.RenditionFrames(v) == CountFrames(clip));

  // Space returns: the node takes writes again on its own.
  fs::remove(filler);
  REQUIRE(WaitFor([&] { return node.log().find("disk space is back") != std::string::npos; }, 10s));
  CHECK_FALSE(farm.cluster.Call(2, ping).load->disk_full);
  put.ts += 1;
  CHECK(farm.cluster.Call(2, put).ok());
  // Handoffs move home, and every acknowledged upload reads back whole.
  storage::Request replicate;
  replicate.op = storage::Op::kReplicate;
  for (uint32_t n = 0; n < 3; ++n) CHECK(farm.cluster.Call(n, replicate).ok());
  farm.CheckSourceIntact(before, clip);
  farm.CheckSourceIntact(during, clip);
  CHECK(CheckHoldsItsSegments(farm.cluster.ring(), v, 2, [&](const storage::Request& head) {
          return farm.cluster.Call(2, head).ok();
        }) > 0);
  CHECK(node.log().find("Assertion") == std::string::npos);
  node.Kill9();
}

TEST_CASE(
    "an outsider without the farm key gets no answer from any node, and a misbehaving member's "
    "deep message and far-future tombstone are refused while the farm keeps working",
    "[farm][security][slow]") {
  Farm farm("farm-outsider");
  const fs::path clip = SteadyClip(6);
  const std::string id = farm.Upload(clip);
  REQUIRE(farm.WaitDone(id)["status"] == "ready");
  auto stranger = storage::FarmKey::Generate();
  REQUIRE(stranger.ok());
  const int64_t now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  const std::vector<std::string> headers = {
      R"({"op":"PING","id":1})",
      R"({"op":"LIST","id":2,"partition":0})",
      R"({"op":"GET","id":3,"name":"jobs/)" + id + R"(/source"})",
      R"({"op":"PUT","id":4,"name":"jobs/)" + id +
          R"(/source","checksum":"0000000000000000","ts":)" + std::to_string(now) + "}",
      R"({"op":"DELETE","id":5,"prefix":"jobs/)" + id + R"(/","ts":)" + std::to_string(now) + "}",
      R"({"op":"RUN_TASK","id":6,"task_id":"x","task":"{}"})"};
  for (uint32_t n = 0; n < 3; ++n) {
    const std::string endpoint = farm.cluster.node(n).endpoint();
    RawDealer plain(endpoint);
    RawDealer foreign(endpoint, &*farm.cluster.key(), &stranger->primary());
    for (const auto& h : headers) {
      INFO("node " << n << ": " << h);
      std::vector<std::string> frames = {"", "ZF1", h};
      if (h.find("\"PUT\"") != std::string::npos) frames.push_back("");
      CHECK_FALSE((plain.Send(frames) && plain.Receive(1s)));
      CHECK_FALSE((foreign.Send(frames) && foreign.Receive(1s)));
    }
  }

  // A member that misbehaves: refused, and every node stays up.
  RawDealer member(farm.cluster.node(0).endpoint(), &*farm.cluster.key());
  auto code_of = [&](const std::string& header) {
    REQUIRE(member.Send({"", "ZF1", header}));
    auto got = member.Receive(20s);
    REQUIRE(got);
    std::vector<std::string_view> views(got->begin(), got->end());
    auto reply = storage::DecodeReply(views);
    REQUIRE(reply.ok());
    return std::string(reply->code_name());
  };
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  CHECK(code_of(R"({"op":"RUN_TASK","id":7,"task_id":"x","task":)" + deep + "}") == "bad_message");
  CHECK(code_of(R"({"op":"DELETE","id":8,"prefix":"jobs/","ts":9223372036854775807})") ==
        "clock_skew");
  CHECK(code_of(R"({"op":"DELETE","id":9,"prefix":"jobs/","ts":)" + std::to_string(now) + "}") ==
        "invalid_argument");
  for (uint32_t n = 0; n < 3; ++n) CHECK(farm.cluster.node(n).running());

  // The video is untouched and new uploads still work.
  farm.CheckSourceIntact(id, clip);
  const std::string next = farm.Upload(clip);
  json v = farm.WaitDone(next);
  INFO(v.dump());
  CHECK(v["status"] == "ready");
}

TEST_CASE("the proxy's /healthz says it cannot take writes once too few nodes answer",
          "[farm][health][slow]") {
  Farm farm("farm-healthz");
  CHECK(Curl({}, farm.proxy.url("/healthz")).status == 200);
  farm.cluster.node(0).Kill9();
  farm.cluster.node(1).Kill9();  // 1 of 3 left: no majority of the 2 replicas
  REQUIRE(WaitFor([&] { return Curl({}, farm.proxy.url("/healthz")).status == 503; }, 30s));
  CHECK_THAT(Curl({}, farm.proxy.url("/healthz")).body, Catch::Contains("no_quorum"));
  REQUIRE(farm.cluster.node(1).Start().empty());
  CHECK(WaitFor([&] { return Curl({}, farm.proxy.url("/healthz")).status == 200; }, 30s));
}

TEST_CASE("an object put through the proxy reads back byte for byte with a storage node down",
          "[farm][objects][slow]") {
  Farm farm("farm-objects");
  std::string bytes(20 << 20, '\0');
  uint64_t x = 7;
  for (char& c : bytes) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    c = static_cast<char>(x >> 56);
  }
  const fs::path file = farm.cluster.dir() / "object.bin";
  std::ofstream(file, std::ios::binary) << bytes;
  auto args = Bearer(farm.proxy.token());
  args.insert(args.end(), {"-T", file.string()});
  auto put = Curl(args, farm.proxy.url("/v1/objects/big/dir/object.bin"));
  INFO(put.body << put.error);
  REQUIRE(put.status == 201);
  CHECK(json::parse(put.body)["bytes"] == bytes.size());

  farm.cluster.node(1).Kill9();
  auto got = Curl(Bearer(farm.proxy.token()), farm.proxy.url("/v1/objects/big/dir/object.bin"));
  INFO(got.error);
  CHECK(got.status == 200);
  CHECK(got.body.size() == bytes.size());
  CHECK(got.body == bytes);
  CHECK(got.header("etag") == "\"" + json::parse(put.body)["etag"].get<std::string>() + "\"");
  auto ranged = Bearer(farm.proxy.token());
  ranged.insert(ranged.end(), {"-H", "Range: bytes=-10"});
  auto range = Curl(ranged, farm.proxy.url("/v1/objects/big/dir/object.bin"));
  CHECK(range.status == 206);
  CHECK(range.body == bytes.substr(bytes.size() - 10));
}

TEST_CASE(
    "a grep job runs each part on a node holding it, and ends with the exact count when a "
    "node is killed with -9 mid-job",
    "[farm][jobs][fault][slow]") {
  if (!fs::exists("/bin/busybox")) {
    WARN("busybox-static is not installed (scripts/setup.sh installs it); skipping");
    return;
  }
  Farm farm("farm-jobs");
  const std::string token = farm.proxy.token();
  auto put = [&](const std::string& path, const fs::path& file) {
    auto args = Bearer(token);
    args.insert(args.end(), {"-T", file.string()});
    auto r = Curl(args, farm.proxy.url("/v1/objects/" + path));
    INFO(path << ": " << r.body << r.error);
    REQUIRE(r.status == 201);
    return json::parse(r.body);
  };
  CHECK(put("bin/busybox", "/bin/busybox")["program"]["verdict"] == "accepted");
  size_t errors = 0;
  for (int f = 0; f < 4; ++f) {
    std::string text;
    uint64_t x = 1234567 + f;
    for (int i = 0; i < 30000; ++i) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      const bool error = x % 5 == 0;
      errors += error;
      text +=
          "line " + std::to_string(i) + (error ? " ERROR " : " INFO ") + std::to_string(x) + "\n";
    }
    const fs::path file = farm.cluster.dir() / ("log" + std::to_string(f));
    std::ofstream(file, std::ios::binary) << text;
    put("logs/part-" + std::to_string(f) + ".log", file);
  }
  // Each instance takes a while (a busy loop per line), so the job is still running when a
  // node dies.
  const json job{
      {"map",
       {{"program", "bin/busybox"},
        {"args", {"awk", "{for (i = 0; i < 300; i++) s += i} /ERROR/ {c++} END {print c+0}"}},
        {"input", {{"container", "logs"}, {"prefix", "part-"}}}}},
      {"reduce", {{"program", "bin/busybox"}, {"args", {"awk", "{s+=$1} END {print s}"}}}},
      {"split", {{"bytes", "256K"}}}};
  auto args = Bearer(token);
  args.insert(args.end(), {"-X", "POST", "--data-binary", job.dump()});
  auto created = Curl(args, farm.proxy.url("/v1/jobs"));
  INFO(created.body);
  REQUIRE(created.status == 201);
  const std::string id = json::parse(created.body)["id"];
  auto get = [&] {
    return json::parse(Curl(Bearer(token), farm.proxy.url("/v1/jobs/" + id)).body);
  };

  // Once an instance has finished and another runs, kill the node running it.
  std::string victim;
  REQUIRE(WaitFor(
      [&] {
        json j = get();
        bool some_done = false;
        for (const auto& i : j["instances"]) some_done = some_done || i["state"] == "done";
        for (const auto& i : j["instances"])
          if (some_done && i["state"] == "running" && i["node"].is_string()) victim = i["node"];
        return !victim.empty() || j["status"] != "running";
      },
      180s));
  REQUIRE_FALSE(victim.empty());
  farm.cluster.node(farm.NodeIdOf(victim)).Kill9();

  json done;
  REQUIRE(WaitFor(
      [&] {
        done = get();
        return done["status"] != "running";
      },
      300s));
  INFO(done.dump(1).substr(0, 6000));
  REQUIRE(done["status"] == "done");
  CHECK(done["result"] == std::to_string(errors) + "\n");
  int moved = 0;
  for (const auto& i : done["instances"]) {
    CHECK(i["state"] == "done");
    if (i["stage"] == "map" && i["node"] != victim) ++moved;
    // A map instance reads its part where it is stored: no input byte crosses the network
    // (what it sends is its output's replica).
    if (i["stage"] == "map")
      CHECK(i["network_bytes"].get<uint64_t>() <= i["bytes_out"].get<uint64_t>() * 2);
  }
  CHECK(moved > 0);
}

namespace {

// An MPEG-TS source with a steady tone: read front to back, so its head (and its audio) can be
// transcoded before the rest has arrived.
std::string TrickleSource() {
  auto made = MakeCachedClip(
      "farm-trickle.ts", {"-f",       "lavfi",     "-i",   "testsrc2=size=640x360:rate=25",
                          "-f",       "lavfi",     "-i",   "sine=frequency=440:sample_rate=48000",
                          "-t",       "16",        "-c:v", "libx264",
                          "-preset",  "ultrafast", "-g",   "25",
                          "-pix_fmt", "yuv420p",   "-c:a", "aac"});
  REQUIRE(made.ok());
  return made->string();
}

// A raw chunked POST to the proxy whose body takes `seconds` to arrive; it stops after
// `fraction` of the bytes when told (the connection then closes mid-body).
class TrickleUpload {
 public:
  TrickleUpload(Farm& farm, const std::string& bytes, int seconds, double fraction = 1.0)
      : up_(farm.proxy.port(),
            "POST /v1/videos?ladder=360p&filename=trickle.ts HTTP/1.1\r\nHost: x\r\n"
            "Authorization: Bearer " +
                farm.proxy.token() + "\r\nTransfer-Encoding: chunked\r\n\r\n") {
    REQUIRE(up_.connected());
    sender_ = std::thread([this, bytes, seconds, fraction] {
      const size_t pieces = 64;
      const auto pace = std::chrono::milliseconds(seconds * 1000 / pieces);
      for (size_t i = 0; i < pieces; ++i) {
        if (static_cast<double>(i) >= fraction * pieces) {
          while (!abort_) std::this_thread::sleep_for(10ms);
          return;
        }
        const size_t from = bytes.size() * i / pieces, to = bytes.size() * (i + 1) / pieces;
        if (!up_.SendChunk(std::string_view(bytes).substr(from, to - from))) return;
        std::this_thread::sleep_for(pace);
      }
      sent_all_ = true;
      up_.SendChunk("");
    });
  }
  ~TrickleUpload() {
    abort_ = true;
    if (sender_.joinable()) sender_.join();
  }
  bool sent_all() const { return sent_all_; }
  // Stops sending (a partial upload stays open until the object is destroyed).
  void Join() {
    abort_ = true;
    sender_.join();
  }
  std::string Response() { return up_.Response(); }

 private:
  UploadStream up_;
  std::atomic<bool> sent_all_{false}, abort_{false};
  std::thread sender_;
};

// The id of the newest video (an upload in progress is listed as soon as it begins).
std::string NewestVideo(Farm& farm) {
  std::string id;
  REQUIRE(WaitFor(
      [&] {
        auto r = Curl(Bearer(farm.proxy.token()), farm.proxy.url("/v1/videos?limit=1"));
        auto list = json::parse(r.body, nullptr, false);
        if (list.is_object() && !list["videos"].empty()) id = list["videos"][0]["id"];
        return !id.empty();
      },
      30s));
  return id;
}

bool AudioRunning(const json& v) {
  return v.contains("audio") && v["audio"].is_object() && v["audio"]["state"] == "running" &&
         !v["audio"]["node"].get<std::string>().empty();
}

// The video once its audio task runs on a node (or it ended first: the caller's check fails).
json WaitAudioRunning(Farm& farm, const std::string& id) {
  json v;
  WaitFor(
      [&] {
        v = farm.Video(id);
        const std::string status = v.value("status", "");
        return AudioRunning(v) || status == "failed" || status == "ready";
      },
      60s);
  return v;
}

// The audio of the video's first MP4 against the source's: as long, and it decodes cleanly.
void CheckAudioTrack(Farm& farm, const json& v, const std::string& source) {
  const std::string id = v["id"];
  const std::string rung = v["renditions"][0]["name"];
  const fs::path got = farm.cluster.dir() / (id + "-" + rung + "-audio.mp4");
  auto fetch = RunCommand({"curl", "-sS", "-f", "-o", got.string(),
                           farm.proxy.url("/v1/videos/" + id + "/mp4/" + rung +
                                          ".mp4?access_token=" + farm.proxy.token())},
                          60s);
  REQUIRE(fetch.succeeded());
  auto want = SourceAudioDuration(source);
  REQUIRE(want.ok());
  REQUIRE(want->has_value());
  auto audio = ProbeAudio(got.string());
  REQUIRE(audio.ok());
  REQUIRE(audio->has_value());
  INFO("MP4 audio " << (*audio)->Duration() << " s, source " << **want << " s");
  CHECK(std::abs((*audio)->Duration() - **want) < 0.1);
  CHECK((*audio)->decoder_messages.empty());
  Status clean = DecodesCleanly(got.string());
  INFO(clean.ToString());
  CHECK(clean.ok());
}

}  // namespace

TEST_CASE(
    "through the proxy the audio track is encoded on a node while a slow upload still arrives, "
    "and the video plays before its last byte",
    "[farm][progressive][slow]") {
  Farm farm("farm-audio-fed");
  const std::string source = TrickleSource();
  TrickleUpload up(farm, ReadFile(source), 32);
  const std::string id = NewestVideo(farm);
  bool audio_before_ingest_done = false;
  json v;
  auto playable = WaitFor(
      [&] {
        v = farm.Video(id);
        if (AudioRunning(v) && !v["progress"].value("ingest_done", true) && !up.sent_all())
          audio_before_ingest_done = true;
        if (v.value("playable", false) || v.value("status", "") == "failed") return true;
        std::this_thread::sleep_for(100ms);
        return false;
      },
      120s);
  const bool before_last_byte = !up.sent_all();
  INFO(v.dump() << farm.proxy.log());
  REQUIRE(playable.has_value());
  REQUIRE(v["playable"] == true);
  CHECK(audio_before_ingest_done);
  CHECK(before_last_byte);
  up.Join();
  CHECK(up.Response().find(" 201 ") != std::string::npos);
  v = farm.WaitDone(id);
  INFO(v.dump());
  REQUIRE(v["status"] == "ready");
  CHECK(v["audio"]["attempts"] == 1);
  CHECK(farm.RenditionFrames(v) == CountFrames(source));
  CheckAudioTrack(farm, v, source);
}

TEST_CASE(
    "an upload cut off mid-body through the proxy ends the audio task that its node was "
    "encoding instead of leaving it waiting",
    "[farm][progressive][fault][slow]") {
  Farm farm("farm-audio-cut");
  const std::string source = TrickleSource();
  std::string id;
  {
    TrickleUpload up(farm, ReadFile(source), 32, /*fraction=*/0.5);
    id = NewestVideo(farm);
    const json v = WaitAudioRunning(farm, id);
    INFO(v.dump());
    REQUIRE(AudioRunning(v));
  }  // the connection closes mid-body
  json v = farm.WaitDone(id, 60s);
  INFO(v.dump());
  CHECK(v["status"] == "failed");
  // The node that ran the audio task saw it end (cancelled, or its input stopped).
  const std::string task = "jobs/" + id + "/audio@";
  auto ended = WaitFor(
      [&] {
        for (uint32_t n = 0; n < farm.cluster.size(); ++n) {
          const std::string log = farm.cluster.node(n).log();
          for (size_t at = log.find(task); at != std::string::npos; at = log.find(task, at + 1))
            if (log.substr(at, log.find('\n', at) - at).find("failed") != std::string::npos)
              return true;
        }
        std::this_thread::sleep_for(200ms);
        return false;
      },
      30s);
  std::string logs;
  for (uint32_t n = 0; n < farm.cluster.size(); ++n) logs += farm.cluster.node(n).log();
  INFO(logs);
  CHECK(ended.has_value());
}

TEST_CASE(
    "a node killed with -9 while it encodes the audio of an upload in progress: the audio is "
    "encoded again from the stored source",
    "[farm][progressive][fault][slow]") {
  Farm farm("farm-audio-kill");
  const std::string source = TrickleSource();
  TrickleUpload up(farm, ReadFile(source), 24);
  const std::string id = NewestVideo(farm);
  json v = WaitAudioRunning(farm, id);
  INFO(v.dump());
  REQUIRE(AudioRunning(v));
  farm.cluster.node(farm.NodeIdOf(v["audio"]["node"])).Kill9();
  up.Join();
  v = farm.WaitDone(id);
  INFO(v.dump() << farm.proxy.log());
  REQUIRE(v["status"] == "ready");
  CHECK(v["audio"]["attempts"].get<int>() >= 2);
  CHECK(farm.RenditionFrames(v) == CountFrames(source));
  CheckAudioTrack(farm, v, source);
}
