// zerofarm node: a storage node of a cluster (storage/node_server.h).
#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>

#include "cli/commands.h"
#include "cli/flags.h"
#include "cli/key_flags.h"
#include "zerofarm/base/process_memory.h"
#include "zerofarm/scheduler/task_executor.h"
#include "zerofarm/scheduler/worker_runtime.h"
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
    "  --workers N              worker threads (default 4)\n"
    "  --max-queue N            requests waiting beyond the workers; more are answered\n"
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
    "SIGTERM or SIGINT stops the node after the requests in progress.\n";

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

}  // namespace

int NodeCommand(int argc, char** argv) {
  Flags flags(argc, argv, {"insecure"});
  if (flags.Has("help") || flags.Has("h")) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  TuneAllocatorForServer();  // before any thread (process_memory.h)
  storage::NodeOptions options;
  options.data_dir = flags.Take("data").value_or("");
  options.bind = flags.Take("bind").value_or("");
  options.advertise = flags.Take("advertise").value_or("");
  const std::string ring_path = flags.Take("ring").value_or("");
  const auto workers = flags.Take("workers");
  const auto max_queue = flags.Take("max-queue");
  const auto interval = flags.Take("replicate-interval");
  const auto audit_rate = flags.Take("audit-rate");
  const auto peer_timeout = flags.Take("peer-timeout");
  const auto task_slots = flags.Take("task-slots");
  const std::string worker_memory = flags.Take("worker-memory").value_or("3G");
  const auto disk_reserve = flags.Take("disk-reserve");
  const auto key_path = flags.Take("key");
  const bool insecure = flags.Has("insecure");
  if (insecure) (void)flags.Take("insecure");
  if (!flags.error().empty()) return Usage(flags.error());
  if (!flags.Unknown().empty()) return Usage("unknown option " + flags.Unknown().front());
  if (!flags.Positional().empty()) return Usage("unexpected argument " + flags.Positional()[0]);
  if (options.data_dir.empty() || options.bind.empty() || ring_path.empty())
    return Usage("--data, --bind and --ring are required");
  if (workers && (!ParseCount(*workers, &options.workers) || options.workers == 0))
    return Usage("--workers takes a number >= 1");
  if (max_queue && !ParseCount(*max_queue, &options.max_queue))
    return Usage("--max-queue takes a number");
  if (interval) {
    if (*interval == "0") {
      options.replicate_interval = std::chrono::milliseconds(0);
    } else if (auto d = ParseDuration(*interval)) {
      options.replicate_interval = *d;
    } else {
      return Usage("--replicate-interval takes a duration such as 30s");
    }
  }
  if (audit_rate) {
    auto bytes = ParseByteSize(*audit_rate);
    if (!bytes) return Usage("--audit-rate takes a byte count such as 8M");
    options.audit_bytes_per_second = *bytes;
  }
  if (disk_reserve) {
    auto bytes = ParseByteSize(*disk_reserve);
    if (!bytes) return Usage("--disk-reserve takes a byte count such as 256M");
    options.disk_reserve_bytes = *bytes;
  }
  if (peer_timeout) {
    auto d = ParseDuration(*peer_timeout);
    if (!d || d->count() <= 0) return Usage("--peer-timeout takes a duration such as 5s");
    options.peer_timeout = *d;
  }

  options.task_slots = std::max(1u, std::thread::hardware_concurrency());
  if (task_slots && !ParseCount(*task_slots, &options.task_slots))
    return Usage("--task-slots takes a number");
  const auto memory = ParseByteSize(worker_memory);
  if (!memory) return Usage("--worker-memory takes a byte count such as 3G");
  if (auto stop = LoadFarmKeyFlags("node", key_path, insecure, &options.key)) return *stop;

  auto ring = storage::Ring::Load(ring_path);
  if (!ring.ok()) {
    std::fprintf(stderr, "zerofarm node: error: cannot load the ring %s: %s\n", ring_path.c_str(),
                 ring.status().ToString().c_str());
    return 1;
  }
  // Signals go to a waiting thread only (blocked here before any thread starts).
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  if (options.task_slots > 0) {
    // The worker is read, sealed and validated once; every task runs exactly those bytes in
    // the sandbox. A node meant to run tasks without a usable worker refuses to start (a farm
    // node silently running nothing would be worse); --task-slots 0 makes a store-only node.
    const std::string self = options.advertise.empty() ? options.bind : options.advertise;
    std::optional<uint32_t> self_id;
    for (const auto& n : ring->nodes())
      if (n.endpoint == self) self_id = n.id;
    scheduler::WorkerRuntimeOptions wo;
    wo.path = scheduler::DefaultWorkerPath();
    wo.isolation = scheduler::Isolation::kSandbox;
    wo.memory_bytes = *memory;
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
    if (self_id) {
      options.task_handler = scheduler::MakeNodeTaskHandler(*worker, *ring, *self_id);
      std::printf(
          "zerofarm node: %u task slots; workers run validated and sandboxed (sha256 "
          "%.16s...)\n",
          options.task_slots, (*worker)->program_sha256().c_str());
    }
  }

  auto server = storage::NodeServer::Create(options, *ring);
  if (!server.ok()) {
    std::fprintf(stderr, "zerofarm node: error: %s\n", server.status().message().c_str());
    return 1;
  }
  const uint32_t id = (*server)->node_id();
  const auto& me = ring->nodes()[id];
  uint32_t replicas = 0;
  for (uint32_t p = 0; p < ring->partitions(); ++p)
    for (uint32_t n : ring->NodesOf(p)) replicas += n == id;
  std::printf("zerofarm node: node %u (%s, zone %s) holds %u of %u partition replicas\n", id,
              me.endpoint.c_str(), me.zone.c_str(), replicas,
              ring->partitions() * static_cast<uint32_t>(ring->replicas()));
  std::printf("zerofarm node: listening on %s\n", (*server)->endpoint().c_str());
  std::fflush(stdout);

  storage::NodeServer* raw = server->get();
  std::thread waiter([raw, stop_signals] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    if (sig != 0) raw->Stop();
  });
  Status status = (*server)->Run();
  // Run() also returns on a socket error: wake the signal waiter so it can be joined.
  pthread_kill(waiter.native_handle(), SIGTERM);
  waiter.join();
  if (!status.ok()) {
    std::fprintf(stderr, "zerofarm node: error: %s\n", status.ToString().c_str());
    return 1;
  }
  std::printf("zerofarm node: stopped\n");
  return 0;
}

}  // namespace zerofarm::cli
