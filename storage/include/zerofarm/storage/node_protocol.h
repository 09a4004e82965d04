// The storage-node wire protocol (version 1), spoken over ZeroMQ between a client (DEALER) and
// `zerofarm node` (ROUTER). A message is a multipart ZeroMQ message:
//   frame 0  "ZF1"          magic "ZF" + protocol version "1"
//   frame 1  JSON header    {"op": "PUT", "id": 7, "timeout_ms": 5000, "name": ..., ...}
//   frame 2  payload        optional: the object bytes of a PUT request or a GET reply
// Clients put an empty delimiter frame before frame 0 (REQ-style envelope); a node answers
// with the envelope it received followed by a reply in the same format. Limits: a payload is
// at most kMaxPayloadBytes (chunk objects are a few MiB), a header at most kMaxHeaderBytes;
// the node rejects bigger frames. Checksums are XXH64 (seed 0) of the whole object, sent as
// 16 lower-case hex digits. Deadlines travel as a relative budget (timeout_ms): the node
// starts the clock when the request arrives, so clocks need not agree between machines.
// Encode/Decode are pure functions over byte strings: thread-safe, no sockets involved.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "zerofarm/base/status.h"
#include "zerofarm/storage/task_state.h"

namespace zerofarm::storage {

inline constexpr std::string_view kProtocolMagic = "ZF1";
inline constexpr size_t kMaxPayloadBytes = size_t{64} << 20;  // 64 MiB per object message
inline constexpr size_t kMaxHeaderBytes = size_t{1} << 20;    // requests; LIST replies may grow
// A header is a flat object (a reply's entries nest three levels): anything nested deeper than
// this is refused while it is parsed, before any tree of it exists.
inline constexpr int kMaxJsonDepth = 8;
inline constexpr uint32_t kMaxTimeoutMs = 3600 * 1000;           // a request's budget: one hour
inline constexpr size_t kMaxTaskSpecBytes = size_t{512} << 10;   // RUN_TASK's spec text
inline constexpr size_t kMaxStreamReplyBytes = size_t{4} << 20;  // TASK_STATUS's output window

enum class Op {
  kPing,       // heartbeat; the reply carries the node's load
  kPut,        // name + payload + checksum + ts [+ handoff_for]: verify, store synced, then ack
  kGet,        // name: payload + checksum, verified by the node before it answers
  kHead,       // name: checksum, size, ts without the bytes
  kDelete,     // name (exact) or prefix, with ts: removes and leaves a tombstone
  kList,       // partition: entries (or only their hash with hash_only), for the replicator
  kReplicate,  // run one replication pass now; the reply's stats say what moved
  kAudit,      // run one audit pass now; the reply's stats say what was scanned and repaired
  // Tasks: a node runs a program next to its objects (NodeOptions::task_handler).
  kRunTask,     // task_id + task (an opaque spec): start it, or attach to the same task_id when
                // it is running or has succeeded (unless rerun); answers at once with its state
  kTaskStatus,  // task_id: the task's state and, once finished, its result; "not_found" when
                // the node does not know it (e.g. it restarted)
  kCancelTask,  // task_id: stop it (its handler sees the cancel flag); state as kTaskStatus
  // A streamed task's input while it runs: task_id + payload (the bytes from input_offset on)
  // [+ input_end | input_failed]. A resend of bytes the node has is skipped; a gap is refused
  // ("invalid_argument"); "busy" while the task has not read what it holds. The reply's stats
  // say "input_bytes" received in all. State as kTaskStatus.
  kTaskInput,
};

const char* OpName(Op op);
std::optional<Op> ParseOp(std::string_view name);

struct Request {
  Op op = Op::kPing;
  uint64_t id = 0;
  uint32_t timeout_ms = 5000;  // budget from arrival; the node drops it when exceeded
  std::string name;            // GET/HEAD/PUT/DELETE
  std::string prefix;          // DELETE of every name starting with prefix (name empty)
  uint32_t partition = 0;      // LIST
  bool hash_only = false;      // LIST: only the hash of the listing
  uint64_t checksum = 0;       // PUT: XXH64 of payload
  int64_t ts = 0;              // PUT/DELETE: the write's timestamp (ns since epoch); newer wins
  std::string handoff_for;     // PUT: endpoint of the primary this copy stands in for
  std::string payload;         // PUT
  std::string task_id;         // the task ops: the caller's name for the task
  std::string task;            // RUN_TASK: the task spec, opaque to the node (JSON)
  bool rerun = false;          // RUN_TASK: start afresh even if a finished run of task_id succeeded
  // RUN_TASK: a light task (a video's audio track, a small fraction of a segment's CPU that
  // every published segment waits for): it runs in the node's one light slot, beside full task
  // slots, instead of queueing behind them.
  bool light = false;
  uint64_t ring_hash = 0;  // PING: the sender's Ring::ContentHash (0: not said)
  // TASK_INPUT: where payload starts in the task's input stream, and whether the stream ends
  // after it (input_end) or failed at the sender (input_failed: the task's read fails).
  uint64_t input_offset = 0;
  bool input_end = false;
  bool input_failed = false;
  // TASK_STATUS of a task whose output 0 is streamed: the caller has its bytes up to here; the
  // reply's payload holds what follows (at most kMaxStreamReplyBytes) and its stats say
  // "output_bytes" written in all.
  std::optional<uint64_t> output_from;
};

// One stored object as LIST and HEAD describe it.
struct ObjectEntry {
  std::string name;
  uint64_t checksum = 0;
  uint64_t size = 0;
  int64_t ts = 0;
  bool operator==(const ObjectEntry&) const = default;
};

struct NodeLoad {
  uint32_t queued = 0;           // requests waiting for a request thread
  uint32_t max_queue = 0;        // the bound; past it the node answers "busy"
  uint32_t request_threads = 0;  // threads answering requests ("workers" on the wire)
  uint32_t active = 0;           // of those, busy now
  uint32_t task_slots = 0;       // tasks the node runs at once (0: it runs none)
  uint32_t tasks_running = 0;    // tasks running now
  bool disk_full = false;        // the volume is below the node's free-space reserve: no writes
  uint64_t disk_free = 0;        // free bytes on the node's volume (0: not measured)
};

// Reply codes (ErrorCode wire names; "ok" on the wire when `code` is empty): "busy",
// "deadline_exceeded", "bad_message", "unsupported_version", "unknown_op", "too_large",
// "not_found", "corrupt", "checksum_mismatch", "superseded" (a newer copy is stored; nothing
// stored), "deleted" (a tombstone newer than this PUT covers the name; nothing stored), "io_error",
// "unsupported" (RUN_TASK & co. on a node without task slots), "clock_skew" (a PUT or DELETE whose
// ts lies further in the future than the node's clock-skew allowance; nothing stored),
// "invalid_argument" (a DELETE prefix CheckDeletePrefix refuses), "disk_full" (the node's volume is
// below its free-space reserve: it takes no writes until space returns; reads go on).
struct Reply {
  uint64_t id = 0;
  std::optional<ErrorCode> code;  // empty: "ok"
  std::string message;
  std::optional<ObjectEntry> object;      // GET/HEAD/PUT
  std::vector<ObjectEntry> entries;       // LIST (empty with hash_only)
  uint64_t list_hash = 0;                 // LIST: XXH64 over the sorted entries
  std::optional<NodeLoad> load;           // PING (and "busy")
  std::map<std::string, uint64_t> stats;  // REPLICATE/AUDIT/DELETE counters
  std::string node;                       // the answering node's endpoint
  std::string payload;                    // GET; TASK_STATUS with output_from
  // Tasks: kRunning, kDone (the handler returned a result) or kFailed (it returned an error:
  // task_result is {"error": {"code", "message"}}); the result JSON once finished.
  std::optional<TaskState> task_state;
  std::string task_result;
  uint64_t ring_hash = 0;  // PING: the answering node's Ring::ContentHash

  bool ok() const { return !code.has_value(); }
  // The code as the wire says it: "ok", or the ErrorCode's name.
  std::string_view code_name() const { return code ? ErrorCodeName(*code) : "ok"; }
  Status ToStatus() const;  // ok, or Error(code, message)
};

// Frames after the envelope. Encode never fails; Decode* never throws and reports malformed
// input as "bad_message", another version as "unsupported_version", an unknown op as
// "unknown_op" and oversized frames as "too_large" (the Status's message says what). Decoding
// is bounded: headers nest at most kMaxJsonDepth levels, every integer is range-checked against
// its field (a partition or timeout_ms past 2^32, a ts past 2^63 are refused, never truncated),
// every field has its JSON type (RUN_TASK's task is a string), PUT and DELETE carry a ts > 0.
std::vector<std::string> EncodeRequest(const Request& request);
std::vector<std::string> EncodeReply(const Reply& reply);
Result<Request> DecodeRequest(const std::vector<std::string_view>& frames);
Result<Reply> DecodeReply(const std::vector<std::string_view>& frames);

// The best-effort request id of a message that failed to decode (0 when unreadable), so an
// error reply can still be matched by the client.
uint64_t PeekRequestId(const std::vector<std::string_view>& frames);

// Object names travel in the JSON header: 1..kMaxNameBytes bytes of valid UTF-8.
inline constexpr size_t kMaxNameBytes = 1024;
Status CheckObjectName(std::string_view name);

// What a DELETE by prefix may cover: one job's objects ("jobs/<id>/", the id one path segment
// of [A-Za-z0-9_.-], not "." or "..") or one object's parts ("<name>#", name non-empty). A
// broader prefix ("jobs/", "", "j") is refused ("invalid_argument"): a prefix tombstone blocks
// every later write under it, so it must never cover more than one video.
Status CheckDeletePrefix(std::string_view prefix);

// XXH64(bytes, seed 0), and its 16-digit hex form.
uint64_t Checksum(std::string_view bytes);
std::string ChecksumHex(uint64_t checksum);

}  // namespace zerofarm::storage
