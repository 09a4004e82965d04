// The node wire format on its own: round trips and refusals, no sockets.
#include "zerofarm/storage/node_protocol.h"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

namespace zerofarm::storage {
namespace {

std::vector<std::string_view> Views(const std::vector<std::string>& frames) {
  return {frames.begin(), frames.end()};
}

TEST_CASE("a request survives encoding and decoding with its payload and checksum",
          "[cluster][protocol]") {
  Request put;
  put.op = Op::kPut;
  put.id = 42;
  put.timeout_ms = 1234;
  put.name = "jobs/1/chunks/00007";
  put.payload = std::string("\0\1binary\xff", 10);
  put.checksum = Checksum(put.payload);
  put.ts = 1700000000123456789;
  put.handoff_for = "tcp://127.0.0.1:7001";
  const auto frames = EncodeRequest(put);
  REQUIRE(frames.size() == 3);
  CHECK(frames[0] == "ZF1");
  auto back = DecodeRequest(Views(frames));
  REQUIRE(back.ok());
  CHECK(back->op == Op::kPut);
  CHECK(back->id == 42);
  CHECK(back->timeout_ms == 1234);
  CHECK(back->name == put.name);
  CHECK(back->payload == put.payload);
  CHECK(back->checksum == put.checksum);
  CHECK(back->ts == put.ts);
  CHECK(back->handoff_for == put.handoff_for);
}

TEST_CASE("a reply survives encoding and decoding with entries, load and stats",
          "[cluster][protocol]") {
  Reply reply;
  reply.id = 9;
  reply.code = ErrorCode::kBusy;
  reply.message = "full";
  reply.entries = {{"a", 0xfedcba9876543210ull, 5, 7}, {"b/c", 1, 0, 8}};
  reply.list_hash = 77;
  reply.load = NodeLoad{3, 4, 2, 2};
  reply.stats = {{"pushed", 3}};
  reply.node = "tcp://x:1";
  reply.payload = "bytes";
  auto back = DecodeReply(Views(EncodeReply(reply)));
  REQUIRE(back.ok());
  CHECK(back->id == 9);
  CHECK(back->code == ErrorCode::kBusy);
  CHECK(back->message == "full");
  CHECK(back->entries == reply.entries);
  CHECK(back->list_hash == 77);
  REQUIRE(back->load);
  CHECK(back->load->queued == 3);
  CHECK(back->load->active == 2);
  CHECK(back->stats.at("pushed") == 3);
  CHECK(back->payload == "bytes");
  CHECK(back->ToStatus().code() == ErrorCode::kBusy);
}

TEST_CASE("task requests survive encoding and decoding with their id, spec, rerun and light flags",
          "[cluster][protocol]") {
  CHECK(std::string(OpName(Op::kRunTask)) == "RUN_TASK");
  CHECK(std::string(OpName(Op::kTaskStatus)) == "TASK_STATUS");
  CHECK(std::string(OpName(Op::kCancelTask)) == "CANCEL_TASK");
  for (Op op : {Op::kRunTask, Op::kTaskStatus, Op::kCancelTask}) CHECK(ParseOp(OpName(op)) == op);

  Request run;
  run.op = Op::kRunTask;
  run.id = 5;
  run.task_id = "job-1/seg-00003/720p";
  run.task = R"({"kind":"transcode","input":"jobs/1/chunks/00003","rungs":["720p"]})";
  run.rerun = true;
  const auto frames = EncodeRequest(run);
  REQUIRE(frames.size() == 2);  // the spec travels in the header, not as a payload
  auto back = DecodeRequest(Views(frames));
  REQUIRE(back.ok());
  CHECK(back->op == Op::kRunTask);
  CHECK(back->id == 5);
  CHECK(back->task_id == run.task_id);
  CHECK(back->task == run.task);
  CHECK(back->rerun);

  CHECK_FALSE(back->light);

  run.rerun = false;
  run.light = true;
  back = DecodeRequest(Views(EncodeRequest(run)));
  REQUIRE(back.ok());
  CHECK_FALSE(back->rerun);
  CHECK(back->light);

  Request status;
  status.op = Op::kTaskStatus;
  status.task_id = "t";
  back = DecodeRequest(Views(EncodeRequest(status)));
  REQUIRE(back.ok());
  CHECK(back->op == Op::kTaskStatus);
  CHECK(back->task_id == "t");
  CHECK(back->task.empty());

  // A spec is a string: a JSON value in its place is refused (never turned back into text).
  back = DecodeRequest(
      Views(std::vector<std::string>{"ZF1", R"({"op":"RUN_TASK","task_id":"x","task":{"a":1}})"}));
  CHECK(back.status().code() == ErrorCode::kBadMessage);
}

TEST_CASE(
    "a streamed task's input and output window survive encoding and decoding: payload, offset "
    "and end",
    "[cluster][protocol]") {
  CHECK(std::string(OpName(Op::kTaskInput)) == "TASK_INPUT");
  CHECK(ParseOp("TASK_INPUT") == Op::kTaskInput);
  Request input;
  input.op = Op::kTaskInput;
  input.task_id = "jobs/1/audio@ab";
  input.input_offset = 1 << 20;
  input.payload = std::string("\0aac\xff", 5);
  input.input_end = true;
  auto frames = EncodeRequest(input);
  REQUIRE(frames.size() == 3);  // the bytes travel as the payload frame
  auto back = DecodeRequest(Views(frames));
  REQUIRE(back.ok());
  CHECK(back->op == Op::kTaskInput);
  CHECK(back->task_id == input.task_id);
  CHECK(back->input_offset == input.input_offset);
  CHECK(back->payload == input.payload);
  CHECK(back->input_end);
  CHECK_FALSE(back->input_failed);

  // The end or a failure alone carries no payload frame.
  input.payload.clear();
  input.input_end = false;
  input.input_failed = true;
  frames = EncodeRequest(input);
  CHECK(frames.size() == 2);
  back = DecodeRequest(Views(frames));
  REQUIRE(back.ok());
  CHECK(back->input_failed);
  CHECK(back->payload.empty());

  Request status;
  status.op = Op::kTaskStatus;
  status.task_id = "t";
  back = DecodeRequest(Views(EncodeRequest(status)));
  REQUIRE(back.ok());
  CHECK_FALSE(back->output_from.has_value());
  status.output_from = 12345;
  back = DecodeRequest(Views(EncodeRequest(status)));
  REQUIRE(back.ok());
  CHECK(back->output_from == uint64_t{12345});

  // TASK_INPUT names its task like the other task ops.
  back = DecodeRequest(Views(std::vector<std::string>{"ZF1", R"({"op":"TASK_INPUT"})"}));
  CHECK(back.status().code() == ErrorCode::kBadMessage);
}

TEST_CASE("malformed task requests and oversized specs are refused", "[cluster][protocol]") {
  using F = std::vector<std::string>;
  auto code = [](const F& frames) { return DecodeRequest(Views(frames)).status().code_name(); };
  CHECK(code(F{"ZF1", R"({"op":"RUN_TASK","task":"{}"})"}) == "bad_message");
  CHECK(code(F{"ZF1", R"({"op":"RUN_TASK","task_id":"a"})"}) == "bad_message");
  CHECK(code(F{"ZF1", R"({"op":"TASK_STATUS"})"}) == "bad_message");
  CHECK(code(F{"ZF1", R"({"op":"CANCEL_TASK","task_id":""})"}) == "bad_message");
  CHECK(code(F{"ZF1", R"({"op":"CANCEL_TASK","task_id":7})"}) == "bad_message");
  CHECK(code(F{"ZF1", R"({"op":"RUN_TASK","task_id":"a","task":"{}","rerun":"yes"})"}) ==
        "bad_message");
  const std::string long_id = std::string(2000, 't');
  CHECK(code(F{"ZF1", R"({"op":"TASK_STATUS","task_id":")" + long_id + R"("})"}) == "bad_message");

  Request run;
  run.op = Op::kRunTask;
  run.task_id = "big";
  run.task = std::string(kMaxHeaderBytes, 's');  // plus the rest of the header: too big
  CHECK(DecodeRequest(Views(EncodeRequest(run))).status().code() == ErrorCode::kTooLarge);
  run.task = std::string(kMaxTaskSpecBytes + 1, 's');
  CHECK(DecodeRequest(Views(EncodeRequest(run))).status().code() == ErrorCode::kTooLarge);
  run.task = std::string(kMaxTaskSpecBytes, 's');
  CHECK(DecodeRequest(Views(EncodeRequest(run))).ok());
}

TEST_CASE("a deeply nested header is refused while it is parsed, request or reply",
          "[cluster][protocol]") {
  using F = std::vector<std::string>;
  // 100,000 nested arrays in a RUN_TASK's task: once a stack overflow of the node.
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  auto request = DecodeRequest(
      Views(F{"ZF1", R"({"op":"RUN_TASK","id":4,"task_id":"x","task":)" + deep + "}"}));
  CHECK(request.status().code() == ErrorCode::kBadMessage);
  CHECK_THAT(request.status().message(), Catch::Contains("deeper than"));
  CHECK(PeekRequestId(Views(F{"ZF1", R"({"id":4,"x":)" + deep + "}"})) == 0);
  auto reply = DecodeReply(Views(F{"ZF1", R"({"id":4,"code":"ok","stats":)" + deep + "}"}));
  CHECK(reply.status().code() == ErrorCode::kBadMessage);
  // Nesting within the bound still parses (the depth of a LIST reply's entries is 3).
  std::string nested = "{\"op\":\"PING\",\"x\":";
  for (int i = 1; i < kMaxJsonDepth; ++i) nested += "[";
  for (int i = 1; i < kMaxJsonDepth; ++i) nested += "]";
  CHECK(DecodeRequest(Views(F{"ZF1", nested + "}"})).ok());
  CHECK(DecodeRequest(Views(F{"ZF1", std::string(nested).insert(nested.size(), "[]") + "}"}))
            .status()
            .code() == ErrorCode::kBadMessage);
}

TEST_CASE("integers out of their field's range are refused, never truncated",
          "[cluster][protocol]") {
  using F = std::vector<std::string>;
  auto decode = [](const std::string& header) { return DecodeRequest(Views(F{"ZF1", header})); };
  // 4294967301 = 2^32 + 5: once read as partition 5.
  auto list = decode(R"({"op":"LIST","partition":4294967301})");
  CHECK(list.status().code() == ErrorCode::kBadMessage);
  CHECK_THAT(list.status().message(), Catch::Contains("partition"));
  CHECK(decode(R"({"op":"LIST","partition":4294967295})").ok());
  // A budget past 2^32 ms (once truncated to a few ms), or past the one-hour limit.
  CHECK(decode(R"({"op":"PING","timeout_ms":4294967297})").status().code() ==
        ErrorCode::kBadMessage);
  CHECK(decode(R"({"op":"PING","timeout_ms":3600001})").status().code() == ErrorCode::kBadMessage);
  CHECK(decode(R"({"op":"PING","timeout_ms":3600000})").ok());
  CHECK(decode(R"({"op":"PING","timeout_ms":1.5})").status().code() == ErrorCode::kBadMessage);
  // ts is a signed 64-bit count of nanoseconds: 2^63 does not fit; writes need one > 0.
  CHECK(decode(R"({"op":"DELETE","name":"a","ts":9223372036854775808})").status().code() ==
        ErrorCode::kBadMessage);
  CHECK(decode(R"({"op":"DELETE","name":"a","ts":9223372036854775807})").ok());
  CHECK(decode(R"({"op":"DELETE","name":"a"})").status().code() == ErrorCode::kBadMessage);
  CHECK(decode(R"({"op":"DELETE","name":"a","ts":-5})").status().code() == ErrorCode::kBadMessage);
  CHECK(decode(R"({"op":"PING","id":-1})").status().code() == ErrorCode::kBadMessage);
  CHECK(decode(R"({"op":"GET","name":7})").status().code() == ErrorCode::kBadMessage);
  // Replies: a load past 2^32 or a size past the payload limit.
  auto reply = [](const std::string& header) { return DecodeReply(Views(F{"ZF1", header})); };
  CHECK(reply(R"({"code":"ok","load":{"queued":4294967296}})").status().code() ==
        ErrorCode::kBadMessage);
  CHECK(reply(R"({"code":"ok","object":["a","0000000000000001",1e3,5]})").status().code() ==
        ErrorCode::kBadMessage);
  CHECK(reply(R"({"code":"ok","stats":{"x":-1}})").status().code() == ErrorCode::kBadMessage);
  // Reply codes: only "ok" and the ErrorCode names; any other text is a malformed reply.
  CHECK(reply(R"({"code":"ok"})")->ok());
  CHECK(reply(R"({"code":"busy"})")->code == ErrorCode::kBusy);
  CHECK(reply(R"({"code":"busy"})")->code_name() == "busy");
  CHECK(reply(R"({"code":"no_such_code"})").status().code() == ErrorCode::kBadMessage);
  CHECK(reply(R"({"code":"BUSY"})").status().code() == ErrorCode::kBadMessage);
}

TEST_CASE("a delete by prefix covers one job or one object's parts, never more",
          "[cluster][protocol]") {
  CHECK(CheckDeletePrefix("jobs/abc123/").ok());
  CHECK(CheckDeletePrefix("jobs/u_0f3a-b.c/").ok());
  CHECK(CheckDeletePrefix("jobs/1/chunks/00001#").ok());
  CHECK(CheckDeletePrefix("jobs/1/chunks/00001#out/720p#").ok());
  for (const char* broad : {"jobs/", "jobs", "j", "", "/", "#", "jobs//", "jobs/../", "jobs/a/b/",
                            "jobs/./", "other/1/"}) {
    INFO(broad);
    CHECK(CheckDeletePrefix(broad).code() == ErrorCode::kInvalidArgument);
  }
}

TEST_CASE("task replies survive encoding and decoding with state, result and task load",
          "[cluster][protocol]") {
  Reply reply;
  reply.id = 3;
  reply.task_state = storage::TaskState::kDone;
  reply.task_result = R"({"outputs":["jobs/1/out/720p/00003"],"cpu_seconds":1.5})";
  reply.load = NodeLoad{0, 64, 4, 1, 2, 1};
  auto back = DecodeReply(Views(EncodeReply(reply)));
  REQUIRE(back.ok());
  CHECK(back->ok());
  CHECK(back->task_state == storage::TaskState::kDone);
  CHECK(back->task_result == reply.task_result);
  REQUIRE(back->load);
  CHECK(back->load->task_slots == 2);
  CHECK(back->load->tasks_running == 1);
  CHECK(back->load->request_threads == 4);

  Reply failed;
  failed.task_state = storage::TaskState::kFailed;
  failed.task_result = R"({"error":{"code":"boom","message":"it broke"}})";
  back = DecodeReply(Views(EncodeReply(failed)));
  REQUIRE(back.ok());
  CHECK(back->task_state == storage::TaskState::kFailed);
  CHECK(back->task_result == failed.task_result);

  back = DecodeReply(Views(EncodeReply(Reply{})));  // nothing task-related: fields stay empty
  REQUIRE(back.ok());
  CHECK_FALSE(back->task_state.has_value());
  CHECK(back->task_result.empty());
  CHECK_FALSE(back->load);

  // A state the protocol does not know is a malformed reply, not an empty one.
  std::vector<std::string> frames = EncodeReply(reply);
  bool replaced = false;
  for (std::string& f : frames) {
    const size_t at = f.find(R"("task_state":"done")");
    if (at == std::string::npos) continue;
    f.replace(at, 19, R"("task_state":"gone")");
    replaced = true;
  }
  REQUIRE(replaced);
  back = DecodeReply(Views(frames));
  REQUIRE_FALSE(back.ok());
  CHECK(back.status().code() == ErrorCode::kBadMessage);
}

TEST_CASE("malformed requests are refused with a code, never an exception", "[cluster][protocol]") {
  using F = std::vector<std::string>;
  auto code = [](const F& frames) { return DecodeRequest(Views(frames)).status().code_name(); };
  CHECK(code(F{}) == "bad_message");
  CHECK(code(F{"ZF"}) == "bad_message");
  CHECK(code(F{"ZF2", "{}"}) == "unsupported_version");
  CHECK(code(F{"ZF1"}) == "bad_message");
  CHECK(code(F{"ZF1", "\xff\xfe"}) == "bad_message");
  CHECK(code(F{"ZF1", "{\"op\":7}"}) == "bad_message");
  CHECK(code(F{"ZF1", "{\"op\":\"ZAP\"}"}) == "unknown_op");
  CHECK(code(F{"ZF1", "{\"op\":\"PUT\",\"name\":\"a\",\"checksum\":\"00\"}"}) == "bad_message");
  CHECK(code(F{"ZF1", "{\"op\":\"DELETE\"}"}) == "bad_message");
  CHECK(code(F{"ZF1", "{\"op\":\"GET\",\"name\":\"" + std::string(2000, 'n') + "\"}"}) ==
        "bad_message");
  CHECK(code(F{"ZF1", "{\"op\":\"LIST\",\"partition\":-1}"}) == "bad_message");
  CHECK(DecodeRequest(Views(F{"ZF1", "{\"op\":\"PING\"}"})).ok());
  CHECK(PeekRequestId(Views(F{"ZF1", "{\"op\":\"ZAP\",\"id\":12}"})) == 12);
  CHECK(PeekRequestId(Views(F{"junk"})) == 0);
}

TEST_CASE("object names must be short valid UTF-8", "[cluster][protocol]") {
  CHECK(CheckObjectName("jobs/1/chunks/00001").ok());
  CHECK(CheckObjectName("vidéo/ü").ok());
  CHECK(CheckObjectName("").code() == ErrorCode::kInvalidArgument);
  CHECK(CheckObjectName(std::string(1025, 'a')).code() == ErrorCode::kInvalidArgument);
  CHECK(CheckObjectName("bad\xff").code() == ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace zerofarm::storage
