// Test helpers for the cluster tests (cluster_support.h).
#include "cluster_support.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <rocksdb/db.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>
#include <thread>
#include <zmq_addon.hpp>

#include "run_command.h"
#include "zerofarm/storage/store.h"

namespace zerofarm::test {

namespace fs = std::filesystem;

namespace {

ScratchDir MakeScratch(const std::string& label) {
  auto dir = ScratchDir::Create(label);
  REQUIRE(dir.ok());
  return std::move(*dir);
}

}  // namespace

int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  socklen_t len = sizeof(addr);
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  ::close(fd);
  return ntohs(addr.sin_port);
}

std::string NodeProcess::Start() {
  std::vector<std::string> argv = {
      ZF_ZEROFARM_BIN, "node",   "--data",       data_.string(),         "--bind",
      endpoint_,       "--ring", ring_.string(), "--replicate-interval", "0",
      "--audit-rate",  "0"};
  argv.insert(argv.end(), extra_.begin(), extra_.end());
  return process_.Start(
      argv, [](const std::string& text) { return text.find("listening on") != std::string::npos; },
      std::chrono::seconds(30));
}

TestCluster::TestCluster(const std::string& label, int nodes, int replicas,
                         std::vector<std::string> node_args)
    : scratch_(MakeScratch(label)) {
  if (std::find(node_args.begin(), node_args.end(), "--insecure") == node_args.end()) {
    key_path_ = scratch_.path() / "farm.key";
    auto made = RunCommand({ZF_ZEROFARM_BIN, "key", "create", "-o", key_path_.string()},
                           std::chrono::seconds(30));
    INFO(made.out << made.err);
    REQUIRE(made.succeeded());
    auto key = storage::FarmKey::Load(key_path_.string());
    INFO(key.status().ToString());
    REQUIRE(key.ok());
    key_ = std::move(*key);
    node_args.push_back("--key");
    node_args.push_back(key_path_.string());
  }
  std::vector<std::string> endpoints;
  for (int i = 0; i < nodes; ++i)
    endpoints.push_back("tcp://127.0.0.1:" + std::to_string(FreePort()));
  const fs::path ring_path = scratch_.path() / "ring.txt";
  std::vector<std::string> argv = {ZF_ZEROFARM_BIN,          "ring",         "build", "--replicas",
                                   std::to_string(replicas), "--part-power", "4",     "-o",
                                   ring_path.string()};
  for (size_t i = 0; i < endpoints.size(); ++i)
    argv.push_back(endpoints[i] + ",zone=z" + std::to_string(i));
  auto built = RunCommand(argv, std::chrono::seconds(60));
  INFO(built.out << built.err);
  REQUIRE(built.succeeded());
  auto ring = storage::Ring::Load(ring_path.string());
  REQUIRE(ring.ok());
  ring_ = std::move(*ring);
  for (int i = 0; i < nodes; ++i) {
    nodes_.push_back(std::make_unique<NodeProcess>(endpoints[static_cast<size_t>(i)],
                                                   scratch_.path() / ("node" + std::to_string(i)),
                                                   ring_path, node_args));
    const std::string error = nodes_.back()->Start();
    INFO(error);
    REQUIRE(error.empty());
  }
}

std::unique_ptr<storage::ClusterClient> TestCluster::Client(
    bool heartbeats, std::chrono::milliseconds request_timeout) {
  storage::ClusterOptions options;
  options.heartbeats = heartbeats;
  options.request_timeout = request_timeout;
  options.key = key_;
  auto client = storage::ClusterClient::Create(*ring_, options);
  REQUIRE(client.ok());
  return std::move(*client);
}

std::vector<std::string> TestCluster::KeyArgs() const {
  if (!key_) return {"--insecure"};
  return {"--key", key_path_.string()};
}

storage::Reply TestCluster::Call(uint32_t node, storage::Request request,
                                 std::chrono::milliseconds timeout) {
  if (!caller_) caller_ = Client(/*heartbeats=*/false);
  // A node that was just restarted may take a moment to accept the reconnection.
  auto reply = caller_->Call(node, request, timeout);
  for (int i = 0; i < 20 && !reply.ok() && reply.status().code() == ErrorCode::kUnavailable; ++i)
    reply = caller_->Call(node, request, timeout);
  INFO(reply.status().ToString());
  REQUIRE(reply.ok());
  return std::move(*reply);
}

void TestCluster::AwaitAllReplicas(const std::string& name) {
  for (uint32_t n : ring_->NodesOf(ring_->PartitionOf(name))) {
    storage::Request head;
    head.op = storage::Op::kHead;
    head.name = name;
    INFO("waiting for " << name << " on node " << n);
    REQUIRE(WaitFor([&] { return Call(n, head).ok(); }, std::chrono::seconds(10)));
  }
}

RawDealer::RawDealer(const std::string& endpoint, const storage::FarmKey* key,
                     const storage::CurveKeyPair* identity)
    : socket_(context_, zmq::socket_type::dealer) {
  if (key) {
    const storage::CurveKeyPair& me = identity ? *identity : key->primary();
    socket_.set(zmq::sockopt::curve_serverkey, key->primary().public_key);
    socket_.set(zmq::sockopt::curve_publickey, me.public_key);
    socket_.set(zmq::sockopt::curve_secretkey, me.secret_key);
  }
  socket_.set(zmq::sockopt::linger, 0);
  // A connection the node refuses (no key, another key) leaves nowhere to queue a message.
  socket_.set(zmq::sockopt::sndtimeo, 3000);
  socket_.connect(endpoint);
}

bool RawDealer::Send(const std::vector<std::string>& frames) {
  std::vector<zmq::message_t> parts;
  for (const auto& f : frames) parts.emplace_back(f.data(), f.size());
  try {
    return zmq::send_multipart(socket_, parts).has_value();
  } catch (const zmq::error_t&) {
    return false;
  }
}

std::optional<std::vector<std::string>> RawDealer::Receive(std::chrono::milliseconds wait) {
  zmq::pollitem_t item{static_cast<void*>(socket_), 0, ZMQ_POLLIN, 0};
  if (zmq::poll(&item, 1, wait) <= 0) return std::nullopt;
  std::vector<zmq::message_t> parts;
  if (!zmq::recv_multipart(socket_, std::back_inserter(parts))) return std::nullopt;
  std::vector<std::string> out;
  for (auto& p : parts)
    if (!(out.empty() && p.size() == 0)) out.push_back(p.to_string());
  return out;
}

size_t CorruptEveryBlock(const fs::path& store_dir) {
  std::vector<std::string> names;
  rocksdb::Options options;
  REQUIRE(rocksdb::DB::ListColumnFamilies(options, store_dir.string(), &names).ok());
  std::vector<rocksdb::ColumnFamilyDescriptor> families;
  for (const auto& n : names) families.emplace_back(n, rocksdb::ColumnFamilyOptions());
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  REQUIRE(rocksdb::DB::Open(options, store_dir.string(), families, &handles, &raw).ok());
  std::unique_ptr<rocksdb::DB> db(raw);
  size_t damaged = 0;
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i] != "chunks") continue;
    std::vector<std::pair<std::string, std::string>> blocks;
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions(), handles[i]));
    for (it->SeekToFirst(); it->Valid(); it->Next())
      blocks.emplace_back(it->key().ToString(), it->value().ToString());
    REQUIRE(it->status().ok());
    rocksdb::WriteOptions sync;
    sync.sync = true;
    for (auto& [key, value] : blocks) {
      REQUIRE(value.size() > 8);
      value[value.size() / 2] = static_cast<char>(value[value.size() / 2] ^ 0x5a);
      REQUIRE(db->Put(sync, handles[i], key, value).ok());
      ++damaged;
    }
  }
  for (auto* h : handles) REQUIRE(db->DestroyColumnFamilyHandle(h).ok());
  REQUIRE(db->Close().ok());

  // Block files: DIR/blocks/<shard>/<id>, blocks of Options::block_size back to back.
  const uint64_t block_size = storage::Options().block_size;
  const fs::path blocks = store_dir / "blocks";
  if (!fs::exists(blocks)) return damaged;
  for (const auto& entry : fs::recursive_directory_iterator(blocks)) {
    if (!entry.is_regular_file()) continue;
    const uint64_t size = entry.file_size();
    std::fstream file(entry.path(), std::ios::in | std::ios::out | std::ios::binary);
    REQUIRE(file);
    for (uint64_t start = 0; start < size; start += block_size) {
      const uint64_t at = start + (std::min(block_size, size - start)) / 2;
      char byte = 0;
      file.seekg(static_cast<std::streamoff>(at));
      REQUIRE(file.get(byte));
      file.seekp(static_cast<std::streamoff>(at));
      REQUIRE(file.put(static_cast<char>(byte ^ 0x5a)));
      ++damaged;
    }
    file.flush();
    REQUIRE(file);
  }
  return damaged;
}

}  // namespace zerofarm::test
