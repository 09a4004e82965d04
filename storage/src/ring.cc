#include "zerofarm/storage/ring.h"

#include <fcntl.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include "zerofarm/base/unique_fd.h"

// The ring's text form, line by line ('#' starts a comment line; blank lines are ignored):
//   zerofarm-ring 1
//   part_power P
//   replicas R
//   nodes N
//   node ID ENDPOINT zone=Z weight=W        (N lines, ids 0..N-1 in order)
//   PARTITION: ID ID ...                     (2^P lines, in order, R ids each, primary first)

namespace zerofarm::storage {
namespace {

constexpr uint32_t kUnassigned = std::numeric_limits<uint32_t>::max();

Status Invalid(const std::string& why) { return Status::Error(ErrorCode::kInvalidArgument, why); }
Status Corrupt(const std::string& why) { return Status::Error(ErrorCode::kCorruptRing, why); }

// Partitions in a scattered but fixed order (multiplication by an odd constant is a bijection
// modulo a power of two), so that moves and fills spread over the whole name space.
std::vector<uint32_t> ScatterOrder(uint32_t partitions) {
  std::vector<uint32_t> order(partitions);
  for (uint32_t i = 0; i < partitions; ++i)
    order[i] = static_cast<uint32_t>((uint64_t{i} * 2654435761u) & (partitions - 1));
  return order;
}

// Each node's wanted replica count: the weight share of every slot, at most one replica per
// partition, rounded by largest remainder (ties to the lower id). Sums to partitions*replicas.
std::vector<int64_t> Targets(const std::vector<RingNode>& nodes, uint32_t partitions,
                             int replicas) {
  const size_t n = nodes.size();
  const double slots = static_cast<double>(partitions) * replicas;
  std::vector<double> ideal(n, 0);
  std::vector<bool> capped(n, false);
  for (;;) {  // water-filling: a node can hold each partition once
    double free_slots = slots, free_weight = 0;
    for (size_t i = 0; i < n; ++i) {
      if (capped[i])
        free_slots -= partitions;
      else
        free_weight += nodes[i].weight;
    }
    bool changed = false;
    for (size_t i = 0; i < n; ++i) {
      if (capped[i]) {
        ideal[i] = partitions;
        continue;
      }
      ideal[i] = free_slots * nodes[i].weight / free_weight;
      if (ideal[i] > partitions) {
        capped[i] = true;
        changed = true;
      }
    }
    if (!changed) break;
  }
  std::vector<int64_t> target(n);
  int64_t assigned = 0;
  std::vector<std::pair<double, size_t>> remainders;
  for (size_t i = 0; i < n; ++i) {
    target[i] = static_cast<int64_t>(std::floor(ideal[i]));
    assigned += target[i];
    remainders.push_back({ideal[i] - std::floor(ideal[i]), i});
  }
  std::stable_sort(remainders.begin(), remainders.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  for (size_t k = 0; assigned < static_cast<int64_t>(slots) && k < remainders.size(); ++k) {
    if (target[remainders[k].second] < static_cast<int64_t>(partitions)) {
      ++target[remainders[k].second];
      ++assigned;
    }
  }
  return target;
}

std::string FormatWeight(double w) {
  std::ostringstream o;
  o.precision(6);
  o << w;
  return o.str();
}

// Build's limits on its options and node list, checked before any node.
Status CheckBuildOptions(const RingOptions& options, size_t node_count) {
  if (options.part_power < 1 || options.part_power > 20)
    return Invalid("part_power must be within 1-20");
  if (options.replicas < 1 || options.replicas > 16) return Invalid("replicas must be within 1-16");
  if (node_count == 0) return Invalid("a ring needs at least one node");
  if (static_cast<int>(node_count) < options.replicas)
    return Invalid(std::to_string(options.replicas) + " replicas need at least " +
                   std::to_string(options.replicas) + " nodes, got " + std::to_string(node_count));
  return Status::Ok();
}

Status CheckNode(const RingNode& node) {
  if (node.endpoint.empty()) return Invalid("a node has no endpoint");
  if (node.endpoint.find_first_of(" \t\n") != std::string::npos)
    return Invalid("endpoint '" + node.endpoint + "' contains white space");
  if (node.zone.empty() || node.zone.find_first_of(" \t\n") != std::string::npos)
    return Invalid("node " + node.endpoint + " has an empty or spaced zone");
  if (!(node.weight > 0) || !std::isfinite(node.weight))
    return Invalid("node " + node.endpoint + " needs a weight > 0");
  return Status::Ok();
}

// Gives every node its position as id and checks each, in order, then the endpoints' uniqueness.
Status NumberAndCheckNodes(std::vector<RingNode>* nodes) {
  std::set<std::string> endpoints;
  for (size_t i = 0; i < nodes->size(); ++i) {
    RingNode& node = (*nodes)[i];
    node.id = static_cast<uint32_t>(i);
    ZF_RETURN_IF_ERROR(CheckNode(node));
    if (!endpoints.insert(node.endpoint).second)
      return Invalid("endpoint " + node.endpoint + " is listed twice");
  }
  return Status::Ok();
}

// A placement under construction: the table ([partition][replica] -> node id, kUnassigned
// for an empty slot) and, per node, the replicas it wants and holds, and its zone.
struct Placement {
  uint32_t parts = 0;
  int reps = 0;
  size_t n = 0;  // nodes
  std::vector<int64_t> target;
  std::vector<int64_t> have;
  std::vector<size_t> zone_of;  // node -> zone index
  size_t zones = 0;             // distinct zones
  size_t spread = 0;            // zones a partition can span: min(zones, replicas)
  std::vector<uint32_t> order;  // partitions in ScatterOrder
  std::vector<std::vector<uint32_t>> table;

  size_t DistinctZones(const std::vector<uint32_t>& row) const {
    std::set<size_t> z;
    for (uint32_t d : row)
      if (d != kUnassigned) z.insert(zone_of[d]);
    return z.size();
  }
};

// An empty placement over `nodes`: every slot unassigned, zones numbered by first appearance.
Placement StartPlacement(const std::vector<RingNode>& nodes, uint32_t parts, int reps) {
  Placement pl;
  pl.parts = parts;
  pl.reps = reps;
  pl.n = nodes.size();
  pl.target = Targets(nodes, parts, reps);
  pl.have.assign(pl.n, 0);
  std::map<std::string, size_t> zone_index;
  pl.zone_of.resize(pl.n);
  for (size_t i = 0; i < pl.n; ++i)
    pl.zone_of[i] = zone_index.try_emplace(nodes[i].zone, zone_index.size()).first->second;
  pl.zones = zone_index.size();
  pl.spread = std::min<size_t>(pl.zones, static_cast<size_t>(reps));
  pl.table.assign(parts, std::vector<uint32_t>(static_cast<size_t>(reps), kUnassigned));
  pl.order = ScatterOrder(parts);
  return pl;
}

// A partition crowded into fewer zones than the ring allows gives one replica up (the last one
// that shares its zone), to be placed in another zone by FillEmptySlots.
void UncrowdPartition(Placement* pl, std::vector<uint32_t>* row) {
  size_t held = 0;
  for (uint32_t d : *row) held += d != kUnassigned ? 1 : 0;
  if (!(held > pl->DistinctZones(*row) && pl->DistinctZones(*row) < pl->spread)) return;
  for (int r = pl->reps - 1; r >= 0; --r) {
    if ((*row)[r] == kUnassigned) continue;
    const uint32_t d = (*row)[r];
    const bool shared = std::count_if(row->begin(), row->end(), [&](uint32_t o) {
                          return o != kUnassigned && pl->zone_of[o] == pl->zone_of[d];
                        }) > 1;
    if (!shared) continue;
    (*row)[r] = kUnassigned;
    --pl->have[d];
    break;
  }
}

// Every partition keeps the nodes (matched by endpoint) it had in `previous`, then is uncrowded.
void KeepPrevious(Placement* pl, const std::vector<RingNode>& nodes, const Ring& previous) {
  std::map<std::string, uint32_t> by_endpoint;
  for (const RingNode& node : nodes) by_endpoint[node.endpoint] = node.id;
  for (uint32_t p = 0; p < pl->parts; ++p) {
    auto& row = pl->table[p];
    for (int r = 0; r < pl->reps; ++r) {
      auto it = by_endpoint.find(previous.nodes()[previous.NodesOf(p)[r]].endpoint);
      if (it == by_endpoint.end()) continue;
      row[r] = it->second;
      ++pl->have[it->second];
    }
    UncrowdPartition(pl, &row);
  }
}

// Nodes over their share give replicas up, at most one per partition per pass, spread over the
// partitions, the most over-full node first.
void ShedExcess(Placement* pl) {
  std::vector<int> dropped(pl->parts, 0);
  for (int pass = 1; pass <= pl->reps; ++pass) {
    bool any_over = false;
    for (size_t d = 0; d < pl->n; ++d) any_over |= pl->have[d] > pl->target[d];
    if (!any_over) break;
    for (uint32_t p : pl->order) {
      if (dropped[p] >= pass) continue;
      auto& row = pl->table[p];
      int best = -1;
      for (int r = 0; r < pl->reps; ++r) {
        if (row[r] == kUnassigned) continue;
        const uint32_t d = row[r];
        if (pl->have[d] <= pl->target[d]) continue;
        if (best < 0 || pl->have[d] - pl->target[d] > pl->have[row[best]] - pl->target[row[best]])
          best = r;
      }
      if (best < 0) continue;
      --pl->have[row[best]];
      row[best] = kUnassigned;
      ++dropped[p];
    }
  }
}

// The node for an empty slot of `row`: one not yet in it, in the least used zone of the row,
// wanting the most replicas (ties to the lower id).
uint32_t BestNodeFor(const Placement& pl, const std::vector<uint32_t>& row) {
  std::vector<int> zone_use(pl.zones, 0);
  for (uint32_t d : row)
    if (d != kUnassigned) ++zone_use[pl.zone_of[d]];
  int64_t best = -1;
  for (size_t d = 0; d < pl.n; ++d) {
    if (std::find(row.begin(), row.end(), static_cast<uint32_t>(d)) != row.end()) continue;
    if (best < 0) {
      best = static_cast<int64_t>(d);
      continue;
    }
    const size_t b = static_cast<size_t>(best);
    const int zd = zone_use[pl.zone_of[d]], zb = zone_use[pl.zone_of[b]];
    const int64_t wd = pl.target[d] - pl.have[d], wb = pl.target[b] - pl.have[b];
    if (zd != zb ? zd < zb : wd > wb) best = static_cast<int64_t>(d);
  }
  return static_cast<uint32_t>(best);
}

// Fills every empty slot, replica by replica, each in ScatterOrder (see BestNodeFor).
void FillEmptySlots(Placement* pl) {
  for (int r = 0; r < pl->reps; ++r) {
    for (uint32_t p : pl->order) {
      auto& row = pl->table[p];
      if (row[r] != kUnassigned) continue;
      row[r] = BestNodeFor(*pl, row);
      ++pl->have[row[r]];
    }
  }
}

// The lines of a ring's text that carry content: each cut at its first '#', trailing spaces,
// tabs and carriage returns removed, empty lines dropped.
std::vector<std::string> ContentLines(std::string_view text) {
  std::istringstream in{std::string(text)};
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) {
    if (auto hash = line.find('#'); hash != std::string::npos) line.erase(hash);
    while (!line.empty() && (line.back() == ' ' || line.back() == '\t' || line.back() == '\r'))
      line.pop_back();
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

// Hands out a ring text's content lines in order.
class LineReader {
 public:
  explicit LineReader(std::string_view text) : lines_(ContentLines(text)) {}

  bool AtEnd() const { return at_ >= lines_.size(); }
  // The next line; only when !AtEnd().
  const std::string& Take() { return lines_[at_++]; }
  // What follows "`key` " on the next line.
  Result<std::string> Next(const std::string& key) {
    if (AtEnd()) return Corrupt("ends before '" + key + "'");
    const std::string& line = Take();
    if (line.rfind(key + " ", 0) != 0) return Corrupt("expected '" + key + "', got: " + line);
    return line.substr(key.size() + 1);
  }

 private:
  std::vector<std::string> lines_;
  size_t at_ = 0;
};

// A whole decimal number within [lo, hi], or nullopt.
std::optional<long> ParseNumber(const std::string& s, long lo, long hi) {
  char* end = nullptr;
  errno = 0;
  long v = std::strtol(s.c_str(), &end, 10);
  if (errno || end == s.c_str() || *end || v < lo || v > hi) return std::nullopt;
  return v;
}

struct RingHeader {
  long part_power = 0;
  long replicas = 0;
  long node_count = 0;
  std::string replicas_text;  // as written, for messages
};

// The magic line and the three counts, checked against each other.
Result<RingHeader> ParseHeader(LineReader* in) {
  auto magic = in->Next("zerofarm-ring");
  if (!magic.ok()) return magic.status();
  if (*magic != "1") return Corrupt("unknown ring format version " + *magic);
  auto pp = in->Next("part_power");
  if (!pp.ok()) return pp.status();
  auto rp = in->Next("replicas");
  if (!rp.ok()) return rp.status();
  auto nn = in->Next("nodes");
  if (!nn.ok()) return nn.status();
  auto part_power = ParseNumber(*pp, 1, 20);
  auto replicas = ParseNumber(*rp, 1, 16);
  auto node_count = ParseNumber(*nn, 1, 100000);
  if (!part_power || !replicas || !node_count) return Corrupt("bad header numbers");
  if (*replicas > *node_count) return Corrupt("more replicas than nodes");
  return RingHeader{*part_power, *replicas, *node_count, *rp};
}

// One node line's fields after "node ": "ID ENDPOINT zone=Z weight=W", ID being `id`.
Result<RingNode> ParseNode(const std::string& rest, long id) {
  std::istringstream f(rest);
  std::string id_text, endpoint, zone, weight, extra;
  f >> id_text >> endpoint >> zone >> weight;
  if (f >> extra || weight.empty()) return Corrupt("bad node line: node " + rest);
  if (ParseNumber(id_text, id, id) == std::nullopt)
    return Corrupt("node ids must be 0, 1, ... in order");
  if (zone.rfind("zone=", 0) != 0 || zone.size() == 5 || weight.rfind("weight=", 0) != 0)
    return Corrupt("bad node line: node " + rest);
  RingNode node;
  node.id = static_cast<uint32_t>(id);
  node.endpoint = endpoint;
  node.zone = zone.substr(5);
  char* end = nullptr;
  node.weight = std::strtod(weight.c_str() + 7, &end);
  if (*end || !(node.weight > 0) || !std::isfinite(node.weight))
    return Corrupt("bad weight: " + weight);
  return node;
}

// The header's node_count node lines, ids in order, endpoints distinct.
Result<std::vector<RingNode>> ParseNodes(LineReader* in, const RingHeader& header) {
  std::vector<RingNode> nodes;
  std::set<std::string> endpoints;
  for (long i = 0; i < header.node_count; ++i) {
    auto rest = in->Next("node");
    if (!rest.ok()) return rest.status();
    auto node = ParseNode(*rest, i);
    if (!node.ok()) return node.status();
    if (!endpoints.insert(node->endpoint).second)
      return Corrupt("endpoint listed twice: " + node->endpoint);
    nodes.push_back(std::move(*node));
  }
  return nodes;
}

// Partition p's line: "p:" and the header's count of distinct node ids in range.
Result<std::vector<uint32_t>> ParsePartition(LineReader* in, uint32_t p, const RingHeader& header) {
  if (in->AtEnd()) return Corrupt("partition " + std::to_string(p) + " is missing");
  const std::string& line = in->Take();
  const std::string prefix = std::to_string(p) + ":";
  if (line.rfind(prefix, 0) != 0) return Corrupt("expected partition " + prefix + " got " + line);
  std::istringstream f(line.substr(prefix.size()));
  std::vector<uint32_t> row;
  for (std::string id; f >> id;) {
    auto v = ParseNumber(id, 0, header.node_count - 1);
    if (!v) return Corrupt("partition " + std::to_string(p) + ": bad node id " + id);
    if (std::find(row.begin(), row.end(), static_cast<uint32_t>(*v)) != row.end())
      return Corrupt("partition " + std::to_string(p) + " names a node twice");
    row.push_back(static_cast<uint32_t>(*v));
  }
  if (static_cast<long>(row.size()) != header.replicas)
    return Corrupt("partition " + std::to_string(p) + " does not have " + header.replicas_text +
                   " replicas");
  return row;
}

}  // namespace

Result<Ring> Ring::Build(const RingOptions& options, std::vector<RingNode> nodes,
                         const Ring* previous) {
  ZF_RETURN_IF_ERROR(CheckBuildOptions(options, nodes.size()));
  ZF_RETURN_IF_ERROR(NumberAndCheckNodes(&nodes));
  if (previous && previous->part_power() != options.part_power)
    return Invalid("the previous ring has part_power " + std::to_string(previous->part_power()) +
                   "; changing it would move every partition");

  Ring ring;
  ring.part_power_ = options.part_power;
  ring.replicas_ = options.replicas;
  ring.nodes_ = nodes;
  Placement placement = StartPlacement(nodes, ring.partitions(), options.replicas);
  if (previous && previous->replicas() == options.replicas) {
    KeepPrevious(&placement, nodes, *previous);
    ShedExcess(&placement);
  }
  FillEmptySlots(&placement);
  ring.table_ = std::move(placement.table);
  return ring;
}

uint32_t Ring::PartitionOf(std::string_view object_name) const {
  // "A#B" is placed with "A"; a name without '#' hashes whole (npos keeps it all).
  const std::string_view key = object_name.substr(0, object_name.find('#'));
  const uint64_t h = XXH64(key.data(), key.size(), 0);
  return static_cast<uint32_t>(h >> (64 - part_power_));
}

std::vector<uint32_t> Ring::ReplicaCounts() const {
  std::vector<uint32_t> counts(nodes_.size(), 0);
  for (const auto& row : table_)
    for (uint32_t d : row) ++counts[d];
  return counts;
}

int64_t Ring::MovedReplicas(const Ring& before, const Ring& after) {
  if (before.part_power_ != after.part_power_ || before.replicas_ != after.replicas_) return -1;
  int64_t moved = 0;
  for (uint32_t p = 0; p < after.partitions(); ++p) {
    std::set<std::string> old;
    for (uint32_t d : before.table_[p]) old.insert(before.nodes_[d].endpoint);
    for (uint32_t d : after.table_[p]) moved += old.count(after.nodes_[d].endpoint) ? 0 : 1;
  }
  return moved;
}

uint64_t Ring::ContentHash() const {
  const std::string text = ToText();
  return XXH64(text.data(), text.size(), 0);
}

std::string Ring::ToText() const {
  std::ostringstream o;
  o << "# zerofarm ring: the object name space in 2^part_power partitions (top bits of\n"
       "# XXH64(name)), each with its replicas' nodes, primary first. Written by\n"
       "# `zerofarm ring build`; every node and proxy loads it.\n";
  o << "zerofarm-ring 1\n";
  o << "part_power " << part_power_ << "\n";
  o << "replicas " << replicas_ << "\n";
  o << "nodes " << nodes_.size() << "\n";
  const auto counts = ReplicaCounts();
  for (const RingNode& node : nodes_) {
    o << "node " << node.id << " " << node.endpoint << " zone=" << node.zone
      << " weight=" << FormatWeight(node.weight) << "    # " << counts[node.id]
      << " partition replicas\n";
  }
  o << "# partition: nodes\n";
  for (uint32_t p = 0; p < partitions(); ++p) {
    o << p << ":";
    for (uint32_t d : table_[p]) o << " " << d;
    o << "\n";
  }
  return o.str();
}

Result<Ring> Ring::Parse(std::string_view text) {
  LineReader in(text);
  auto header = ParseHeader(&in);
  if (!header.ok()) return header.status();
  Ring ring;
  ring.part_power_ = static_cast<int>(header->part_power);
  ring.replicas_ = static_cast<int>(header->replicas);
  auto nodes = ParseNodes(&in, *header);
  if (!nodes.ok()) return nodes.status();
  ring.nodes_ = std::move(*nodes);
  const uint32_t parts = ring.partitions();
  ring.table_.reserve(parts);
  for (uint32_t p = 0; p < parts; ++p) {
    auto row = ParsePartition(&in, p, *header);
    if (!row.ok()) return row.status();
    ring.table_.push_back(std::move(*row));
  }
  if (!in.AtEnd()) return Corrupt("trailing lines after the last partition");
  return ring;
}

Result<Ring> Ring::Load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::Error(ErrorCode::kIoError, "cannot open ring " + path);
  std::ostringstream text;
  text << in.rdbuf();
  auto ring = Parse(text.str());
  if (!ring.ok()) return ring.status().WithContext(path);
  return ring;
}

Status Ring::Save(const std::string& path) const {
  namespace fs = std::filesystem;
  const fs::path target = fs::absolute(path);
  const fs::path tmp = target.parent_path() / ("." + target.filename().string() + ".tmp");
  const std::string text = ToText();
  {
    UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!fd.valid()) return ErrnoError("open " + tmp.string(), errno);
    ZF_RETURN_IF_ERROR(WriteAll(fd.get(), std::as_bytes(std::span(text.data(), text.size()))));
    if (::fsync(fd.get()) != 0) return ErrnoError("fsync " + tmp.string(), errno);
  }
  if (::rename(tmp.c_str(), target.c_str()) != 0)
    return ErrnoError("rename to " + target.string(), errno);
  UniqueFd dir(::open(target.parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir.valid()) ::fsync(dir.get());
  return Status::Ok();
}

}  // namespace zerofarm::storage
