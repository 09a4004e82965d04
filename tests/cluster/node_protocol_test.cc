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
  reply.code = "busy";
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
  CHECK(back->code == "busy");
  CHECK(back->message == "full");
  CHECK(back->entries == reply.entries);
  CHECK(back->list_hash == 77);
  REQUIRE(back->load);
  CHECK(back->load->queued == 3);
  CHECK(back->load->active == 2);
  CHECK(back->stats.at("pushed") == 3);
  CHECK(back->payload == "bytes");
  CHECK(back->ToStatus().code() == "busy");
}

TEST_CASE("malformed requests are refused with a code, never an exception", "[cluster][protocol]") {
  using F = std::vector<std::string>;
  auto code = [](const F& frames) { return DecodeRequest(Views(frames)).status().code(); };
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
  CHECK(CheckObjectName("").code() == "invalid_argument");
  CHECK(CheckObjectName(std::string(1025, 'a')).code() == "invalid_argument");
  CHECK(CheckObjectName("bad\xff").code() == "invalid_argument");
}

}  // namespace
}  // namespace zerofarm::storage
