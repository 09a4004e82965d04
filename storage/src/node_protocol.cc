// The storage-node wire protocol, version 1 (node_protocol.h).
#include "zerofarm/storage/node_protocol.h"

#include <xxhash.h>

#include <algorithm>
#include <array>
#include <cinttypes>
#include <cstdio>
#include <limits>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <utility>

#include "zerofarm/base/bounded_json.h"
#include "zerofarm/base/enum_names.h"

namespace zerofarm::storage {
namespace {

using nlohmann::json;

constexpr std::array<std::pair<Op, std::string_view>, 12> kOps = {{
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
    {Op::kTaskInput, "TASK_INPUT"},
}};

bool IsTaskOp(Op op) {
  return op == Op::kRunTask || op == Op::kTaskStatus || op == Op::kCancelTask ||
         op == Op::kTaskInput;
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

// Integer fields are range-checked, never truncated: a value outside [lo, hi] (or not an
// integer at all) is refused with the field's name.
struct BadField : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

uint64_t Unsigned(const json& v, const char* field, uint64_t hi) {
  if (!v.is_number_unsigned() && !(v.is_number_integer() && v.get<int64_t>() >= 0))
    throw BadField(std::string("\"") + field + "\" must be an integer >= 0");
  const uint64_t x = v.get<uint64_t>();
  if (x > hi)
    throw BadField(std::string("\"") + field + "\" is " + std::to_string(x) + ", above its limit " +
                   std::to_string(hi));
  return x;
}

int64_t Signed(const json& v, const char* field) {
  if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t{INT64_MAX})
    throw BadField(std::string("\"") + field + "\" does not fit a signed 64-bit integer");
  if (!v.is_number_integer()) throw BadField(std::string("\"") + field + "\" must be an integer");
  return v.get<int64_t>();
}

template <class T>
T UnsignedField(const json& h, const char* field, T fallback) {
  auto it = h.find(field);
  if (it == h.end()) return fallback;
  return static_cast<T>(Unsigned(*it, field, std::numeric_limits<T>::max()));
}

std::string StringField(const json& h, const char* field) {
  auto it = h.find(field);
  if (it == h.end()) return {};
  if (!it->is_string()) throw BadField(std::string("\"") + field + "\" must be a string");
  return it->get<std::string>();
}

bool BoolField(const json& h, const char* field) {
  auto it = h.find(field);
  if (it == h.end()) return false;
  if (!it->is_boolean()) throw BadField(std::string("\"") + field + "\" must be true or false");
  return it->get<bool>();
}

json EntryJson(const ObjectEntry& e) {
  return json::array({e.name, ChecksumHex(e.checksum), e.size, e.ts});
}

ObjectEntry EntryFrom(const json& j) {
  if (!j.is_array() || j.size() != 4)
    throw std::invalid_argument("an entry is [name, hex, size, ts]");
  ObjectEntry e;
  if (!j.at(0).is_string() || !j.at(1).is_string())
    throw std::invalid_argument("an entry's name and checksum are strings");
  e.name = j.at(0).get<std::string>();
  auto sum = ParseHex(j.at(1).get<std::string>());
  if (!sum) throw std::invalid_argument("bad checksum in entry");
  e.checksum = *sum;
  e.size = Unsigned(j.at(2), "size", kMaxPayloadBytes);
  e.ts = Signed(j.at(3), "ts");
  return e;
}

// The header as a JSON object, refused past kMaxJsonDepth levels of nesting (bounded_json.h).
Result<json> ParseHeader(std::string_view text) {
  std::optional<json> parsed = ParseJsonWithin(text, kMaxJsonDepth);
  if (!parsed)
    return Status::Error(ErrorCode::kBadMessage, "the header nests deeper than " +
                                                     std::to_string(kMaxJsonDepth) + " levels");
  json header = std::move(*parsed);
  if (!header.is_object())
    return Status::Error(ErrorCode::kBadMessage, "the header is not a JSON object");
  return header;
}

// Checks the magic and the frame count; returns the parsed header.
Result<json> OpenFrames(const std::vector<std::string_view>& frames, size_t max_header) {
  if (frames.empty() || frames[0].size() != 3 || frames[0].substr(0, 2) != "ZF")
    return Status::Error(ErrorCode::kBadMessage, "frame 0 is not the ZF protocol magic");
  if (frames[0] != kProtocolMagic)
    return Status::Error(ErrorCode::kUnsupportedVersion,
                         "protocol version '" + std::string(frames[0].substr(2)) +
                             "' is not supported (this node speaks 1)");
  if (frames.size() < 2 || frames.size() > 3)
    return Status::Error(
        ErrorCode::kBadMessage,
        "expected 2 or 3 frames (magic, header[, payload]), got " + std::to_string(frames.size()));
  if (frames[1].size() > max_header)
    return Status::Error(
        ErrorCode::kTooLarge,
        "header frame of " + std::to_string(frames[1].size()) + " bytes exceeds the limit");
  if (frames.size() == 3 && frames[2].size() > kMaxPayloadBytes)
    return Status::Error(ErrorCode::kTooLarge, "payload of " + std::to_string(frames[2].size()) +
                                                   " bytes exceeds the 64 MiB limit");
  return ParseHeader(frames[1]);
}

}  // namespace

const char* OpName(Op op) { return NameIn(kOps, op, "?").data(); }

std::optional<Op> ParseOp(std::string_view name) { return ValueIn<Op>(kOps, name); }

Status CheckObjectName(std::string_view name) {
  if (name.empty() || name.size() > kMaxNameBytes)
    return Status::Error(ErrorCode::kInvalidArgument,
                         "an object name is 1 to 1024 bytes, got " + std::to_string(name.size()));
  try {
    (void)json(std::string(name)).dump();  // throws on invalid UTF-8
  } catch (const json::exception&) {
    return Status::Error(ErrorCode::kInvalidArgument, "an object name must be valid UTF-8");
  }
  return Status::Ok();
}

Status CheckDeletePrefix(std::string_view prefix) {
  ZF_RETURN_IF_ERROR(CheckObjectName(prefix));
  if (prefix.size() >= 2 && prefix.back() == '#') return Status::Ok();  // one object's parts
  constexpr std::string_view kJobs = "jobs/";
  if (prefix.substr(0, kJobs.size()) == kJobs && prefix.size() > kJobs.size() + 1 &&
      prefix.back() == '/') {
    const std::string_view id = prefix.substr(kJobs.size(), prefix.size() - kJobs.size() - 1);
    const bool plain = std::all_of(id.begin(), id.end(), [](char c) {
      return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             c == '_' || c == '-' || c == '.';
    });
    if (plain && id != "." && id != ".." && id.size() <= 128) return Status::Ok();
  }
  return Status::Error(ErrorCode::kInvalidArgument,
                       "a delete by prefix covers one job (\"jobs/<id>/\") or one object's parts "
                       "(\"<name>#\"), not '" +
                           std::string(prefix) + "'");
}

Status Reply::ToStatus() const { return ok() ? Status::Ok() : Status::Error(*code, message); }

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
    if (r.light) h["light"] = true;
  }
  if (r.ring_hash != 0) h["ring"] = ChecksumHex(r.ring_hash);
  if (r.op == Op::kTaskInput) {
    h["input_offset"] = r.input_offset;
    if (r.input_end) h["input_end"] = true;
    if (r.input_failed) h["input_failed"] = true;
  }
  if (r.output_from) h["output_from"] = *r.output_from;
  std::vector<std::string> frames = {std::string(kProtocolMagic),
                                     h.dump(-1, ' ', false, json::error_handler_t::replace)};
  if (r.op == Op::kPut || (r.op == Op::kTaskInput && !r.payload.empty()))
    frames.push_back(r.payload);
  return frames;
}

std::vector<std::string> EncodeReply(const Reply& r) {
  json h = {{"id", r.id}, {"code", r.code_name()}};
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
    h["load"] = {{"queued", r.load->queued},           {"max_queue", r.load->max_queue},
                 {"workers", r.load->request_threads}, {"active", r.load->active},
                 {"task_slots", r.load->task_slots},   {"tasks_running", r.load->tasks_running},
                 {"disk_full", r.load->disk_full},     {"disk_free", r.load->disk_free}};
  if (!r.stats.empty()) h["stats"] = r.stats;
  if (r.task_state) h["task_state"] = TaskStateName(*r.task_state);
  if (!r.task_result.empty()) h["task_result"] = r.task_result;
  if (r.ring_hash != 0) h["ring"] = ChecksumHex(r.ring_hash);
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
      return Status::Error(ErrorCode::kBadMessage, "the header has no \"op\"");
    auto op = ParseOp(op_it->get<std::string>());
    if (!op)
      return Status::Error(ErrorCode::kUnknownOp, "unknown op '" + op_it->get<std::string>() + "'");
    r.op = *op;
    r.id = UnsignedField<uint64_t>(h, "id", 0);
    r.timeout_ms = UnsignedField<uint32_t>(h, "timeout_ms", 5000);
    if (r.timeout_ms > kMaxTimeoutMs)
      return Status::Error(ErrorCode::kBadMessage,
                           "\"timeout_ms\" is " + std::to_string(r.timeout_ms) +
                               ", above the limit " + std::to_string(kMaxTimeoutMs));
    r.name = StringField(h, "name");
    r.prefix = StringField(h, "prefix");
    r.partition = UnsignedField<uint32_t>(h, "partition", 0);
    r.hash_only = BoolField(h, "hash_only");
    if (auto it = h.find("ts"); it != h.end()) r.ts = Signed(*it, "ts");
    r.handoff_for = StringField(h, "handoff_for");
    r.task_id = StringField(h, "task_id");
    // The task spec travels as a string (JSON text, opaque to the node).
    r.task = StringField(h, "task");
    r.rerun = BoolField(h, "rerun");
    r.light = BoolField(h, "light");
    r.input_offset = UnsignedField<uint64_t>(h, "input_offset", 0);
    r.input_end = BoolField(h, "input_end");
    r.input_failed = BoolField(h, "input_failed");
    if (h.contains("output_from")) r.output_from = UnsignedField<uint64_t>(h, "output_from", 0);
    if (h.contains("ring")) {
      auto ring = ParseHex(StringField(h, "ring"));
      if (!ring) return Status::Error(ErrorCode::kBadMessage, "\"ring\" is a 16-digit hex hash");
      r.ring_hash = *ring;
    }
    if (r.handoff_for.size() > kMaxNameBytes)
      return Status::Error(ErrorCode::kBadMessage, "a handoff_for endpoint is at most 1024 bytes");
    if (r.task.size() > kMaxTaskSpecBytes)
      return Status::Error(ErrorCode::kTooLarge, "a task spec is at most " +
                                                     std::to_string(kMaxTaskSpecBytes) + " bytes");
    if (r.op == Op::kPut) {
      auto sum = ParseHex(h.value("checksum", std::string()));
      if (!sum)
        return Status::Error(ErrorCode::kBadMessage, "PUT needs \"checksum\": 16 hex digits");
      r.checksum = *sum;
      if (frames.size() != 3)
        return Status::Error(ErrorCode::kBadMessage, "PUT needs a payload frame");
      r.payload.assign(frames[2]);
    }
    if (r.op == Op::kTaskInput && frames.size() == 3) r.payload.assign(frames[2]);
    if (r.name.size() > kMaxNameBytes || r.prefix.size() > kMaxNameBytes)
      return Status::Error(ErrorCode::kBadMessage, "names and prefixes are at most 1024 bytes");
    const bool needs_name = r.op == Op::kPut || r.op == Op::kGet || r.op == Op::kHead;
    if (needs_name && r.name.empty())
      return Status::Error(ErrorCode::kBadMessage, std::string(OpName(r.op)) + " needs a \"name\"");
    if (r.op == Op::kDelete && r.name.empty() && r.prefix.empty())
      return Status::Error(ErrorCode::kBadMessage, "DELETE needs a \"name\" or a \"prefix\"");
    if (IsTaskOp(r.op) && r.task_id.empty())
      return Status::Error(ErrorCode::kBadMessage,
                           std::string(OpName(r.op)) + " needs a \"task_id\"");
    if (r.task_id.size() > kMaxNameBytes)
      return Status::Error(ErrorCode::kBadMessage, "a task_id is at most 1024 bytes");
    if (r.op == Op::kRunTask && r.task.empty())
      return Status::Error(ErrorCode::kBadMessage, "RUN_TASK needs a \"task\" (a string)");
    if ((r.op == Op::kPut || r.op == Op::kDelete) && r.ts <= 0)
      return Status::Error(ErrorCode::kBadMessage,
                           std::string(OpName(r.op)) + " needs a \"ts\" > 0");
    return r;
  } catch (const std::exception& e) {
    return Status::Error(ErrorCode::kBadMessage, std::string("malformed header: ") + e.what());
  }
}

Result<Reply> DecodeReply(const std::vector<std::string_view>& frames) {
  auto header = OpenFrames(frames, kMaxPayloadBytes);
  if (!header.ok()) return header.status();
  const json& h = *header;
  try {
    Reply r;
    r.id = UnsignedField<uint64_t>(h, "id", 0);
    const std::string code = StringField(h, "code");
    if (code.empty()) return Status::Error(ErrorCode::kBadMessage, "the reply has no \"code\"");
    if (code != "ok") {
      r.code = ErrorCodeFromName(code);
      if (!r.code)
        return Status::Error(ErrorCode::kBadMessage, "unknown reply code '" + code + "'");
    }
    r.message = StringField(h, "message");
    r.node = StringField(h, "node");
    if (auto it = h.find("object"); it != h.end()) r.object = EntryFrom(*it);
    if (auto it = h.find("entries"); it != h.end()) {
      if (!it->is_array())
        return Status::Error(ErrorCode::kBadMessage, "\"entries\" must be an array");
      for (const auto& e : *it) r.entries.push_back(EntryFrom(e));
    }
    if (auto it = h.find("list_hash"); it != h.end()) {
      auto sum = ParseHex(StringField(h, "list_hash"));
      if (!sum) return Status::Error(ErrorCode::kBadMessage, "bad list_hash");
      r.list_hash = *sum;
    }
    if (auto it = h.find("load"); it != h.end()) {
      if (!it->is_object())
        return Status::Error(ErrorCode::kBadMessage, "\"load\" must be an object");
      NodeLoad load;
      load.queued = UnsignedField<uint32_t>(*it, "queued", 0);
      load.max_queue = UnsignedField<uint32_t>(*it, "max_queue", 0);
      load.request_threads = UnsignedField<uint32_t>(*it, "workers", 0);
      load.active = UnsignedField<uint32_t>(*it, "active", 0);
      load.task_slots = UnsignedField<uint32_t>(*it, "task_slots", 0);
      load.tasks_running = UnsignedField<uint32_t>(*it, "tasks_running", 0);
      load.disk_full = BoolField(*it, "disk_full");
      load.disk_free = UnsignedField<uint64_t>(*it, "disk_free", 0);
      r.load = load;
    }
    if (auto it = h.find("stats"); it != h.end()) {
      if (!it->is_object())
        return Status::Error(ErrorCode::kBadMessage, "\"stats\" must be an object");
      for (const auto& [key, value] : it->items())
        r.stats[key] = Unsigned(value, "stats", std::numeric_limits<uint64_t>::max());
    }
    if (h.contains("task_state")) {
      r.task_state = ParseTaskState(StringField(h, "task_state"));
      if (!r.task_state)
        return Status::Error(ErrorCode::kBadMessage, "\"task_state\" is not a task state");
    }
    r.task_result = StringField(h, "task_result");
    if (h.contains("ring")) {
      auto ring = ParseHex(StringField(h, "ring"));
      if (!ring) return Status::Error(ErrorCode::kBadMessage, "\"ring\" is a 16-digit hex hash");
      r.ring_hash = *ring;
    }
    if (frames.size() == 3) r.payload.assign(frames[2]);
    return r;
  } catch (const std::exception& e) {
    return Status::Error(ErrorCode::kBadMessage, std::string("malformed reply: ") + e.what());
  }
}

uint64_t PeekRequestId(const std::vector<std::string_view>& frames) {
  if (frames.size() < 2 || frames[1].size() > kMaxHeaderBytes) return 0;
  auto parsed = ParseHeader(frames[1]);
  if (!parsed.ok()) return 0;
  const json& h = *parsed;
  auto it = h.find("id");
  return it != h.end() && it->is_number_unsigned() ? it->get<uint64_t>() : 0;
}

}  // namespace zerofarm::storage
