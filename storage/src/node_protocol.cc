// The storage-node wire protocol, version 1 (node_protocol.h).
#include "zerofarm/storage/node_protocol.h"

#include <xxhash.h>

#include <array>
#include <cinttypes>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <utility>

namespace zerofarm::storage {
namespace {

using nlohmann::json;

constexpr std::array<std::pair<Op, const char*>, 11> kOps = {{
    {Op::kPing, "PING"},
    {Op::kPut, "PUT"},
    {Op::kGet, "GET"},
    {Op::kHead, "HEAD"},
    {Op::kDelete, "DELETE"},
    {Op::kList, "LIST"},
    {Op::kReplicate, "REPLICATE"},
    {Op::kAudit, "AUDIT"},
    {Op::kRunTask, "RUN_TASK"},
    {Op::kTaskStatus, "TASK_STATUS"},
    {Op::kCancelTask, "CANCEL_TASK"},
}};

bool IsTaskOp(Op op) {
  return op == Op::kRunTask || op == Op::kTaskStatus || op == Op::kCancelTask;
}

std::optional<uint64_t> ParseHex(const std::string& text) {
  if (text.empty() || text.size() > 16) return std::nullopt;
  uint64_t value = 0;
  for (char c : text) {
    int digit;
    if (c >= '0' && c <= '9') {
      digit = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      digit = c - 'a' + 10;
    } else {
      return std::nullopt;
    }
    value = (value << 4) | static_cast<uint64_t>(digit);
  }
  return value;
}

json EntryJson(const ObjectEntry& e) {
  return json::array({e.name, ChecksumHex(e.checksum), e.size, e.ts});
}

ObjectEntry EntryFrom(const json& j) {
  if (!j.is_array() || j.size() != 4)
    throw std::invalid_argument("an entry is [name, hex, size, ts]");
  ObjectEntry e;
  e.name = j.at(0).get<std::string>();
  auto sum = ParseHex(j.at(1).get<std::string>());
  if (!sum) throw std::invalid_argument("bad checksum in entry");
  e.checksum = *sum;
  e.size = j.at(2).get<uint64_t>();
  e.ts = j.at(3).get<int64_t>();
  return e;
}

// Checks the magic and the frame count; returns the parsed header.
Result<json> OpenFrames(const std::vector<std::string_view>& frames, size_t max_header) {
  if (frames.empty() || frames[0].size() != 3 || frames[0].substr(0, 2) != "ZF")
    return Status::Error("bad_message", "frame 0 is not the ZF protocol magic");
  if (frames[0] != kProtocolMagic)
    return Status::Error("unsupported_version", "protocol version '" +
                                                    std::string(frames[0].substr(2)) +
                                                    "' is not supported (this node speaks 1)");
  if (frames.size() < 2 || frames.size() > 3)
    return Status::Error("bad_message", "expected 2 or 3 frames (magic, header[, payload]), got " +
                                            std::to_string(frames.size()));
  if (frames[1].size() > max_header)
    return Status::Error("too_large", "header frame of " + std::to_string(frames[1].size()) +
                                          " bytes exceeds the limit");
  if (frames.size() == 3 && frames[2].size() > kMaxPayloadBytes)
    return Status::Error("too_large", "payload of " + std::to_string(frames[2].size()) +
                                          " bytes exceeds the 64 MiB limit");
  json header = json::parse(frames[1], nullptr, /*allow_exceptions=*/false);
  if (!header.is_object()) return Status::Error("bad_message", "the header is not a JSON object");
  return header;
}

}  // namespace

const char* OpName(Op op) {
  for (const auto& [o, name] : kOps)
    if (o == op) return name;
  return "?";
}

std::optional<Op> ParseOp(std::string_view name) {
  for (const auto& [o, n] : kOps)
    if (name == n) return o;
  return std::nullopt;
}

Status CheckObjectName(std::string_view name) {
  if (name.empty() || name.size() > kMaxNameBytes)
    return Status::Error("invalid_argument",
                         "an object name is 1 to 1024 bytes, got " + std::to_string(name.size()));
  try {
    (void)json(std::string(name)).dump();  // throws on invalid UTF-8
  } catch (const json::exception&) {
    return Status::Error("invalid_argument", "an object name must be valid UTF-8");
  }
  return Status::Ok();
}

Status Reply::ToStatus() const { return ok() ? Status::Ok() : Status::Error(code, message); }

uint64_t Checksum(std::string_view bytes) { return XXH64(bytes.data(), bytes.size(), 0); }

std::string ChecksumHex(uint64_t checksum) {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016" PRIx64, checksum);
  return buf;
}

std::vector<std::string> EncodeRequest(const Request& r) {
  json h = {{"op", OpName(r.op)}, {"id", r.id}, {"timeout_ms", r.timeout_ms}};
  if (!r.name.empty()) h["name"] = r.name;
  if (!r.prefix.empty()) h["prefix"] = r.prefix;
  if (r.op == Op::kList) {
    h["partition"] = r.partition;
    if (r.hash_only) h["hash_only"] = true;
  }
  if (r.op == Op::kPut) h["checksum"] = ChecksumHex(r.checksum);
  if (r.ts != 0) h["ts"] = r.ts;
  if (!r.handoff_for.empty()) h["handoff_for"] = r.handoff_for;
  if (!r.task_id.empty()) h["task_id"] = r.task_id;
  if (r.op == Op::kRunTask) {
    h["task"] = r.task;
    if (r.rerun) h["rerun"] = true;
  }
  std::vector<std::string> frames = {std::string(kProtocolMagic),
                                     h.dump(-1, ' ', false, json::error_handler_t::replace)};
  if (r.op == Op::kPut) frames.push_back(r.payload);
  return frames;
}

std::vector<std::string> EncodeReply(const Reply& r) {
  json h = {{"id", r.id}, {"code", r.code}};
  if (!r.message.empty()) h["message"] = r.message;
  if (!r.node.empty()) h["node"] = r.node;
  if (r.object) h["object"] = EntryJson(*r.object);
  if (!r.entries.empty()) {
    json list = json::array();
    for (const auto& e : r.entries) list.push_back(EntryJson(e));
    h["entries"] = std::move(list);
  }
  if (r.list_hash != 0) h["list_hash"] = ChecksumHex(r.list_hash);
  if (r.load)
    h["load"] = {{"queued", r.load->queued},         {"max_queue", r.load->max_queue},
                 {"workers", r.load->workers},       {"active", r.load->active},
                 {"task_slots", r.load->task_slots}, {"tasks_running", r.load->tasks_running}};
  if (!r.stats.empty()) h["stats"] = r.stats;
  if (!r.task_state.empty()) h["task_state"] = r.task_state;
  if (!r.task_result.empty()) h["task_result"] = r.task_result;
  std::vector<std::string> frames = {std::string(kProtocolMagic),
                                     h.dump(-1, ' ', false, json::error_handler_t::replace)};
  if (!r.payload.empty()) frames.push_back(r.payload);
  return frames;
}

Result<Request> DecodeRequest(const std::vector<std::string_view>& frames) {
  auto header = OpenFrames(frames, kMaxHeaderBytes);
  if (!header.ok()) return header.status();
  const json& h = *header;
  try {
    Request r;
    const auto op_it = h.find("op");
    if (op_it == h.end() || !op_it->is_string())
      return Status::Error("bad_message", "the header has no \"op\"");
    auto op = ParseOp(op_it->get<std::string>());
    if (!op) return Status::Error("unknown_op", "unknown op '" + op_it->get<std::string>() + "'");
    r.op = *op;
    r.id = h.value("id", uint64_t{0});
    r.timeout_ms = h.value("timeout_ms", uint32_t{5000});
    r.name = h.value("name", std::string());
    r.prefix = h.value("prefix", std::string());
    for (const char* key : {"id", "timeout_ms", "partition"})
      if (auto it = h.find(key); it != h.end() && !it->is_number_unsigned())
        return Status::Error("bad_message", std::string("\"") + key + "\" must be a number >= 0");
    r.partition = h.value("partition", uint32_t{0});
    r.hash_only = h.value("hash_only", false);
    r.ts = h.value("ts", int64_t{0});
    r.handoff_for = h.value("handoff_for", std::string());
    r.task_id = h.value("task_id", std::string());
    if (auto it = h.find("task"); it != h.end())  // a string; a JSON value is taken as its text
      r.task = it->is_string() ? it->get<std::string>() : it->dump();
    r.rerun = h.value("rerun", false);
    if (r.op == Op::kPut) {
      auto sum = ParseHex(h.value("checksum", std::string()));
      if (!sum) return Status::Error("bad_message", "PUT needs \"checksum\": 16 hex digits");
      r.checksum = *sum;
      if (frames.size() != 3) return Status::Error("bad_message", "PUT needs a payload frame");
      r.payload.assign(frames[2]);
    }
    if (r.name.size() > kMaxNameBytes || r.prefix.size() > kMaxNameBytes)
      return Status::Error("bad_message", "names and prefixes are at most 1024 bytes");
    const bool needs_name = r.op == Op::kPut || r.op == Op::kGet || r.op == Op::kHead;
    if (needs_name && r.name.empty())
      return Status::Error("bad_message", std::string(OpName(r.op)) + " needs a \"name\"");
    if (r.op == Op::kDelete && r.name.empty() && r.prefix.empty())
      return Status::Error("bad_message", "DELETE needs a \"name\" or a \"prefix\"");
    if (IsTaskOp(r.op) && r.task_id.empty())
      return Status::Error("bad_message", std::string(OpName(r.op)) + " needs a \"task_id\"");
    if (r.task_id.size() > kMaxNameBytes)
      return Status::Error("bad_message", "a task_id is at most 1024 bytes");
    if (r.op == Op::kRunTask && h.find("task") == h.end())
      return Status::Error("bad_message", "RUN_TASK needs a \"task\"");
    return r;
  } catch (const std::exception& e) {
    return Status::Error("bad_message", std::string("malformed header: ") + e.what());
  }
}

Result<Reply> DecodeReply(const std::vector<std::string_view>& frames) {
  auto header = OpenFrames(frames, kMaxPayloadBytes);
  if (!header.ok()) return header.status();
  const json& h = *header;
  try {
    Reply r;
    r.id = h.value("id", uint64_t{0});
    r.code = h.value("code", std::string());
    if (r.code.empty()) return Status::Error("bad_message", "the reply has no \"code\"");
    r.message = h.value("message", std::string());
    r.node = h.value("node", std::string());
    if (auto it = h.find("object"); it != h.end()) r.object = EntryFrom(*it);
    if (auto it = h.find("entries"); it != h.end())
      for (const auto& e : *it) r.entries.push_back(EntryFrom(e));
    if (auto it = h.find("list_hash"); it != h.end()) {
      auto sum = ParseHex(it->get<std::string>());
      if (!sum) return Status::Error("bad_message", "bad list_hash");
      r.list_hash = *sum;
    }
    if (auto it = h.find("load"); it != h.end()) {
      NodeLoad load;
      load.queued = it->value("queued", uint32_t{0});
      load.max_queue = it->value("max_queue", uint32_t{0});
      load.workers = it->value("workers", uint32_t{0});
      load.active = it->value("active", uint32_t{0});
      load.task_slots = it->value("task_slots", uint32_t{0});
      load.tasks_running = it->value("tasks_running", uint32_t{0});
      r.load = load;
    }
    if (auto it = h.find("stats"); it != h.end())
      r.stats = it->get<std::map<std::string, uint64_t>>();
    r.task_state = h.value("task_state", std::string());
    r.task_result = h.value("task_result", std::string());
    if (frames.size() == 3) r.payload.assign(frames[2]);
    return r;
  } catch (const std::exception& e) {
    return Status::Error("bad_message", std::string("malformed reply: ") + e.what());
  }
}

uint64_t PeekRequestId(const std::vector<std::string_view>& frames) {
  if (frames.size() < 2 || frames[1].size() > kMaxHeaderBytes) return 0;
  json h = json::parse(frames[1], nullptr, false);
  if (!h.is_object()) return 0;
  auto it = h.find("id");
  return it != h.end() && it->is_number_unsigned() ? it->get<uint64_t>() : 0;
}

}  // namespace zerofarm::storage
