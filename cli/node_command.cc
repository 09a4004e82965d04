// zerofarm node: a storage node of a cluster (storage/node_server.h).
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "cli/commands.h"
#include "cli/flags.h"
#include "cli/key_flags.h"
#include "zerofarm/base/process_memory.h"
#include "zerofarm/scheduler/task_executor.h"
#include "zerofarm/scheduler/worker_runtime.h"
#include "zerofarm/storage/live_ring.h"
#include "zerofarm/storage/node_protocol.h"
#include "zerofarm/storage/node_server.h"
#include "zerofarm/storage/ring.h"

namespace zerofarm::cli {
namespace {

constexpr const char* kUsage =
    "usage: zerofarm node --data DIR --bind tcp://HOST:PORT --ring RING [options]\n"
    "\n"
    "Serves the objects of this node's partitions over ZeroMQ (protocol ZF1), replicates them\n"
    "to the other replicas, moves handoff copies home and audits stored checksums, and runs\n"
    "the transcode tasks a proxy sends it (zerofarm-worker, validated once at start and run\n"
    "sandboxed per task) on the chunks it holds.\n"
    "  --data DIR               the node's object store (created when missing)\n"
    "  --bind ENDPOINT          ZeroMQ endpoint to bind, e.g. tcp://0.0.0.0:7001\n"
    "  --ring RING              the ring file (zerofarm ring build); the node's endpoint must\n"
    "                           be one of its nodes\n"
    "  --advertise ENDPOINT     this node's endpoint in the ring when it differs from --bind\n"
    "  --request-threads N      threads answering requests (default 4; --workers N is the\n"
    "                           same flag)\n"
    "  --max-queue N            requests waiting beyond those threads; more are answered\n"
    "                           \"busy\" at once (default 64)\n"
    "  --replicate-interval D   pause between replication passes, e.g. 30s; 0 = only on\n"
    "                           request (default 30s)\n"
    "  --audit-rate BYTES       auditor read budget per second, e.g. 8M; 0 = off (default 8M)\n"
    "  --peer-timeout D         deadline of a request to another node (default 5s)\n"
    "  --task-slots N           transcode tasks at once (default: cores; 0 = store only)\n"
    "  --worker-memory SIZE     each sandboxed worker's memory limit (default 3G)\n"
    "  --disk-reserve SIZE      free space kept on the data dir's volume: below it the node\n"
    "                           refuses writes (\"disk_full\") until space returns; reads go\n"
    "                           on (default 256M; 0 = no check)\n"
    "  --key FILE               the farm key (zerofarm key create): CURVE authentication and\n"
    "                           encryption of every connection; required unless --insecure\n"
    "  --insecure               run without a key: anyone reaching the port may do anything\n"
    "                           (a trusted test network only; loudly reported)\n"
    "SIGTERM or SIGINT stops the node after the requests in progress. The node follows its\n"
    "ring file: rewritten (checked every second) or on SIGHUP it is reloaded, and the\n"
    "replicator moves what the new ring places elsewhere; a ring that does not load, that\n"
    "changes the part power or that leaves this node out is refused (the old one stays).\n";

int Usage(const std::string& error) {
  std::fprintf(stderr, "zerofarm node: %s\n%s", error.c_str(), kUsage);
  return 2;
}

bool ParseCount(const std::string& text, uint32_t* out) {
  try {
    size_t used = 0;
    const unsigned long v = std::stoul(text, &used);
    if (used != text.size() || v > 1000000) return false;
    *out = static_cast<uint32_t>(v);
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

// The flags of zerofarm node that are checked after they are all taken, as given.
struct NodeFlags {
  std::string ring_path;
  std::optional<Flags::Named> request_threads;
  std::optional<std::string> max_queue, interval, audit_rate, peer_timeout, task_slots;
  std::string worker_memory;
  std::optional<std::string> disk_reserve, key_path;
  bool insecure = false;
};

// What a checked command line asks for.
struct NodeSetup {
  storage::NodeOptions options;
  std::string ring_path;
  uint64_t worker_memory = 0;
};

NodeFlags TakeNodeFlags(Flags& flags, storage::NodeOptions* options) {
  NodeFlags f;
  options->data_dir = flags.Take("data").value_or("");
  options->bind = flags.Take("bind").value_or("");
  options->advertise = flags.Take("advertise").value_or("");
  f.ring_path = flags.Take("ring").value_or("");
  f.request_threads = flags.TakeRenamed("request-threads", {"workers"});
  f.max_queue = flags.Take("max-queue");
  f.interval = flags.Take("replicate-interval");
  f.audit_rate = flags.Take("audit-rate");
  f.peer_timeout = flags.Take("peer-timeout");
  f.task_slots = flags.Take("task-slots");
  f.worker_memory = flags.Take("worker-memory").value_or("3G");
  f.disk_reserve = flags.Take("disk-reserve");
  f.key_path = flags.Take("key");
  f.insecure = flags.Has("insecure");
  if (f.insecure) (void)flags.Take("insecure");
  return f;
}

// Checks the server's own limits (request threads, queue, replication, audit, disk, peers); a usage
// error's text, or nullopt.
std::optional<std::string> ParseServerLimits(const NodeFlags& f, storage::NodeOptions* options) {
  if (f.request_threads && (!ParseCount(f.request_threads->value, &options->request_threads) ||
                            options->request_threads == 0))
    return f.request_threads->flag + " takes a number >= 1";
  if (f.max_queue && !ParseCount(*f.max_queue, &options->max_queue))
    return "--max-queue takes a number";
  if (f.interval) {
    if (*f.interval == "0") {
      options->replicate_interval = std::chrono::milliseconds(0);
    } else if (auto d = ParseDuration(*f.interval)) {
      options->replicate_interval = *d;
    } else {
      return "--replicate-interval takes a duration such as 30s";
    }
  }
  if (f.audit_rate) {
    auto bytes = ParseByteSize(*f.audit_rate);
    if (!bytes) return "--audit-rate takes a byte count such as 8M";
    options->audit_bytes_per_second = *bytes;
  }
  if (f.disk_reserve) {
    auto bytes = ParseByteSize(*f.disk_reserve);
    if (!bytes) return "--disk-reserve takes a byte count such as 256M";
    options->disk_reserve_bytes = *bytes;
  }
  if (f.peer_timeout) {
    auto d = ParseDuration(*f.peer_timeout);
    if (!d || d->count() <= 0) return "--peer-timeout takes a duration such as 5s";
    options->peer_timeout = *d;
  }
  return std::nullopt;
}

// Every default and every flag error of zerofarm node. Returns the exit status to stop with
// (2: usage; the farm key's own), or nullopt to run.
std::optional<int> ParseNodeFlags(Flags& flags, NodeSetup* setup) {
  storage::NodeOptions& options = setup->options;
  const NodeFlags f = TakeNodeFlags(flags, &options);
  if (!flags.error().empty()) return Usage(flags.error());
  if (!flags.Unknown().empty()) return Usage("unknown option " + flags.Unknown().front());
  if (!flags.Positional().empty()) return Usage("unexpected argument " + flags.Positional()[0]);
  if (options.data_dir.empty() || options.bind.empty() || f.ring_path.empty())
    return Usage("--data, --bind and --ring are required");
  if (auto why = ParseServerLimits(f, &options)) return Usage(*why);
  options.task_slots = std::max(1u, std::thread::hardware_concurrency());
  if (f.task_slots && !ParseCount(*f.task_slots, &options.task_slots))
    return Usage("--task-slots takes a number");
  const auto memory = ParseByteSize(f.worker_memory);
  if (!memory) return Usage("--worker-memory takes a byte count such as 3G");
  setup->worker_memory = *memory;
  setup->ring_path = f.ring_path;
  return LoadFarmKeyFlags("node", f.key_path, f.insecure, &options.key);
}

// Blocks SIGTERM, SIGINT and SIGHUP before any thread starts: they go to a waiting thread only.
sigset_t BlockStopSignals() {
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  return stop_signals;
}

// The worker is read, sealed and validated once; every task runs exactly those bytes in the
// sandbox. A node meant to run tasks without a usable worker refuses to start (a farm node
// silently running nothing would be worse); --task-slots 0 makes a store-only node. Sets the
// task handler when this node is in the ring; an exit status on failure.
std::optional<int> AttachTaskHandler(NodeSetup* setup,
                                     const std::shared_ptr<storage::LiveRing>& ring) {
  storage::NodeOptions& options = setup->options;
  const std::string self = ring->self();
  const bool in_ring = storage::NodeIdIn(*ring->Get(), self).has_value();
  scheduler::WorkerRuntimeOptions wo;
  wo.path = scheduler::DefaultWorkerPath();
  wo.isolation = scheduler::Isolation::kSandbox;
  wo.memory_bytes = setup->worker_memory;
  wo.verdict_cache_dir = std::filesystem::path(options.data_dir) / "verdicts";
  std::error_code ec;
  std::filesystem::create_directories(options.data_dir, ec);
  auto worker = scheduler::WorkerRuntime::Load(wo);
  if (!worker.ok()) {
    std::fprintf(stderr,
                 "zerofarm node: error: %s: %s (--task-slots 0 runs a node that only stores)\n",
                 wo.path.c_str(), worker.status().message().c_str());
    return 1;
  }
  if (in_ring) {
    options.task_handler = scheduler::MakeNodeTaskHandler(*worker, ring, self);
    std::printf(
        "zerofarm node: %u task slots; workers run validated and sandboxed (sha256 "
        "%.16s...)\n",
        options.task_slots, (*worker)->program_sha256().c_str());
  }
  return std::nullopt;
}

// The start-up lines on stdout: which partitions the node holds and where it listens.
void PrintStarted(const storage::NodeServer& server, const storage::Ring& ring) {
  const uint32_t id = server.node_id();
  const auto& me = ring.nodes()[id];
  uint32_t replicas = 0;
  for (uint32_t p = 0; p < ring.partitions(); ++p)
    for (uint32_t n : ring.NodesOf(p)) replicas += n == id;
  std::printf("zerofarm node: node %u (%s, zone %s) holds %u of %u partition replicas\n", id,
              me.endpoint.c_str(), me.zone.c_str(), replicas,
              ring.partitions() * static_cast<uint32_t>(ring.replicas()));
  std::printf("zerofarm node: listening on %s\n", server.endpoint().c_str());
  std::fflush(stdout);
}

void LogNode(const std::string& line) { std::fprintf(stderr, "zerofarm node: %s\n", line.c_str()); }

// Runs the server until SIGTERM or SIGINT (or a socket error), reloading the ring on SIGHUP;
// the exit status.
int RunUntilStopped(storage::NodeServer& server, const sigset_t& stop_signals,
                    storage::RingFileWatch& watch) {
  storage::NodeServer* raw = &server;
  std::atomic<bool> ended{false};
  std::thread waiter([raw, stop_signals, &watch, &ended] {
    int sig = 0;
    while (sigwait(&stop_signals, &sig) == 0 && sig == SIGHUP && !ended) (void)watch.ReloadNow();
    raw->Stop();
  });
  Status status = server.Run();
  // Run() also returns on a socket error: wake the signal waiter so it can be joined.
  ended = true;
  pthread_kill(waiter.native_handle(), SIGTERM);
  waiter.join();
  if (!status.ok()) {
    std::fprintf(stderr, "zerofarm node: error: %s\n", status.ToString().c_str());
    return 1;
  }
  std::printf("zerofarm node: stopped\n");
  return 0;
}

}  // namespace

int NodeCommand(int argc, char** argv) {
  Flags flags(argc, argv, {"insecure"});
  if (flags.Has("help") || flags.Has("h")) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  TuneAllocatorForServer();  // before any thread (process_memory.h)
  NodeSetup setup;
  if (auto stop = ParseNodeFlags(flags, &setup)) return *stop;

  auto ring = storage::Ring::Load(setup.ring_path);
  if (!ring.ok()) {
    std::fprintf(stderr, "zerofarm node: error: cannot load the ring %s: %s\n",
                 setup.ring_path.c_str(), ring.status().ToString().c_str());
    return 1;
  }
  const sigset_t stop_signals = BlockStopSignals();
  const storage::NodeOptions& o = setup.options;
  auto live = std::make_shared<storage::LiveRing>(std::move(*ring),
                                                  o.advertise.empty() ? o.bind : o.advertise);
  if (setup.options.task_slots > 0)
    if (auto stop = AttachTaskHandler(&setup, live)) return *stop;

  auto server = storage::NodeServer::Create(setup.options, live);
  if (!server.ok()) {
    std::fprintf(stderr, "zerofarm node: error: %s\n", server.status().message().c_str());
    return 1;
  }
  PrintStarted(**server, *live->Get());
  storage::RingFileWatch watch(*live, setup.ring_path, LogNode);
  return RunUntilStopped(**server, stop_signals, watch);
}

}  // namespace zerofarm::cli
