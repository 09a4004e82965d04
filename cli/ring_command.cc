// zerofarm ring: build and show the ring file (storage/ring.h).
#include <cstdio>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/flags.h"
#include "zerofarm/storage/ring.h"

namespace zerofarm::cli {
namespace {

constexpr const char* kUsage =
    "usage: zerofarm ring build --replicas 3 --part-power 8 -o RING NODE...\n"
    "       zerofarm ring show RING\n"
    "\n"
    "build   writes the ring file RING over the NODEs, each its ZeroMQ endpoint with optional\n"
    "        ,zone=Z and ,weight=W (defaults zone=1, weight=1), e.g.\n"
    "        tcp://10.0.0.1:7001,zone=a,weight=2. Replicas go to distinct nodes and, where the\n"
    "        zones allow, distinct zones. When RING exists it is rebalanced: nodes keep their\n"
    "        partitions as far as the new weights allow, and the moves are reported.\n"
    "        --replicas N (default 3), --part-power P (2^P partitions, default 8)\n"
    "show    prints each node's zone, weight and partition replicas\n";

int Usage(const std::string& error) {
  std::fprintf(stderr, "zerofarm ring: %s\n%s", error.c_str(), kUsage);
  return 2;
}

Result<storage::RingNode> ParseNode(const std::string& spec) {
  storage::RingNode node;
  size_t at = spec.find(',');
  node.endpoint = spec.substr(0, at);
  if (node.endpoint.rfind("tcp://", 0) != 0 && node.endpoint.rfind("ipc://", 0) != 0)
    return Status::Error(ErrorCode::kInvalidArgument,
                         "node '" + spec + "' is not a ZeroMQ endpoint (tcp://HOST:PORT)");
  while (at != std::string::npos) {
    const size_t next = spec.find(',', at + 1);
    const std::string kv = spec.substr(at + 1, next == std::string::npos ? next : next - at - 1);
    at = next;
    if (kv.rfind("zone=", 0) == 0) {
      node.zone = kv.substr(5);
    } else if (kv.rfind("weight=", 0) == 0) {
      char* end = nullptr;
      node.weight = std::strtod(kv.c_str() + 7, &end);
      if (*end || kv.size() == 7)
        return Status::Error(ErrorCode::kInvalidArgument, "bad weight in '" + spec + "'");
    } else {
      return Status::Error(ErrorCode::kInvalidArgument,
                           "unknown node option '" + kv + "' in '" + spec + "' (zone=Z, weight=W)");
    }
  }
  return node;
}

void PrintSummary(const storage::Ring& ring, std::FILE* out) {
  const auto counts = ring.ReplicaCounts();
  std::fprintf(out, "%u partitions x %d replicas over %zu nodes\n", ring.partitions(),
               ring.replicas(), ring.nodes().size());
  for (const auto& n : ring.nodes())
    std::fprintf(out, "  node %u %-28s zone=%-6s weight=%-6g %6u replicas (%.1f%%)\n", n.id,
                 n.endpoint.c_str(), n.zone.c_str(), n.weight, counts[n.id],
                 100.0 * counts[n.id] / (ring.partitions() * ring.replicas()));
}

int Build(int argc, char** argv) {
  Flags flags(argc, argv);
  if (flags.Has("help") || flags.Has("h")) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  const std::string out = flags.Take("output", "o").value_or("");
  const std::string replicas = flags.Take("replicas").value_or("3");
  const std::string part_power = flags.Take("part-power").value_or("8");
  if (!flags.error().empty()) return Usage(flags.error());
  if (!flags.Unknown().empty()) return Usage("unknown option " + flags.Unknown().front());
  if (out.empty()) return Usage("-o RING is required");
  if (flags.Positional().empty()) return Usage("no NODE given");
  storage::RingOptions options;
  const auto r = ParseInteger(replicas, 1, 16);
  const auto pp = ParseInteger(part_power, 1, 20);
  if (!r || !pp) return Usage("--replicas takes a whole number 1-16, --part-power 1-20");
  options.replicas = static_cast<int>(*r);
  options.part_power = static_cast<int>(*pp);
  std::vector<storage::RingNode> nodes;
  for (const std::string& spec : flags.Positional()) {
    auto node = ParseNode(spec);
    if (!node.ok()) return Usage(node.status().message());
    nodes.push_back(*node);
  }
  std::optional<storage::Ring> previous;
  if (FILE* f = std::fopen(out.c_str(), "rb")) {
    std::fclose(f);
    auto loaded = storage::Ring::Load(out);
    if (!loaded.ok()) {
      std::fprintf(stderr, "zerofarm ring: %s\n", loaded.status().ToString().c_str());
      return 1;
    }
    previous = std::move(*loaded);
  }
  auto ring = storage::Ring::Build(options, nodes, previous ? &*previous : nullptr);
  if (!ring.ok()) {
    std::fprintf(stderr, "zerofarm ring: %s\n", ring.status().message().c_str());
    return 1;
  }
  Status saved = ring->Save(out);
  if (!saved.ok()) {
    std::fprintf(stderr, "zerofarm ring: %s\n", saved.ToString().c_str());
    return 1;
  }
  PrintSummary(*ring, stdout);
  if (previous) {
    const int64_t moved = storage::Ring::MovedReplicas(*previous, *ring);
    const double total = static_cast<double>(ring->partitions()) * ring->replicas();
    if (moved >= 0)
      std::printf(
          "rebalanced from the previous %s: %lld of %.0f partition replicas move (%.1f%%)\n",
          out.c_str(), static_cast<long long>(moved), total, 100.0 * moved / total);
    else
      std::printf("rebuilt (the replica count changed): every partition may move\n");
  }
  std::printf("wrote %s\n", out.c_str());
  return 0;
}

}  // namespace

int RingCommand(int argc, char** argv) {
  if (argc < 2) return Usage("missing subcommand (build or show)");
  const std::string sub = argv[1];
  if (sub == "--help" || sub == "-h") {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (sub == "build") return Build(argc - 1, argv + 1);
  if (sub == "show") {
    if (argc != 3) return Usage("show takes one RING");
    auto ring = storage::Ring::Load(argv[2]);
    if (!ring.ok()) {
      std::fprintf(stderr, "zerofarm ring: %s\n", ring.status().ToString().c_str());
      return 1;
    }
    PrintSummary(*ring, stdout);
    return 0;
  }
  return Usage("unknown subcommand '" + sub + "'");
}

}  // namespace zerofarm::cli
