// Test helpers for the cluster tests: real `zerofarm node` processes on free loopback ports, a
// ring built by `zerofarm ring build`, a raw DEALER for hand-made frames, and damage done to a
// stopped node's RocksDB files. Thread-compatible; one test uses one TestCluster at a time.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "corpus.h"
#include "daemon_process.h"
#include "test_bytes.h"
#include "wait_for.h"
#include "zerofarm/storage/cluster_client.h"
#include "zerofarm/storage/farm_key.h"
#include "zerofarm/storage/node_protocol.h"
#include "zerofarm/storage/ring.h"

namespace zerofarm::test {

// A loopback TCP port nobody listens on right now.
int FreePort();

// A running `zerofarm node`; killed (SIGKILL) on destruction.
class NodeProcess {
 public:
  NodeProcess(std::string endpoint, std::filesystem::path data, std::filesystem::path ring,
              std::vector<std::string> extra_args)
      : endpoint_(std::move(endpoint)),
        data_(std::move(data)),
        ring_(std::move(ring)),
        extra_(std::move(extra_args)),
        process_(data_.string() + ".log") {}

  // Starts it and waits for "listening on"; an error text, empty on success.
  std::string Start();
  void Kill9() { process_.Kill9(); }
  // SIGTERM, wait; the exit status (-1 when it had to be killed)
  int Stop() { return process_.Stop(std::chrono::seconds(30)); }
  // e.g. SIGSTOP / SIGCONT to freeze a node without closing its sockets
  void Signal(int sig) { process_.Signal(sig); }
  bool running() const { return process_.running(); }
  pid_t pid() const { return process_.pid(); }
  const std::string& endpoint() const { return endpoint_; }
  // Arguments added to the node's command line from its next Start() on.
  void AddArgs(const std::vector<std::string>& args) {
    extra_.insert(extra_.end(), args.begin(), args.end());
  }
  const std::filesystem::path& data() const { return data_; }
  // The ring file given from its next Start() on (the node follows the file it was given).
  void set_ring(std::filesystem::path ring) { ring_ = std::move(ring); }
  std::string log() const { return process_.log(); }

 private:
  std::string endpoint_;
  std::filesystem::path data_;
  std::filesystem::path ring_;
  std::vector<std::string> extra_;
  DaemonProcess process_;
};

// N nodes on 127.0.0.1 with a ring of `replicas` over them (part power 4), started. The nodes
// and every client of the cluster use a farm key made by `zerofarm key create` (CURVE), unless
// node_args holds "--insecure".
class TestCluster {
 public:
  // REQUIREs that the ring builds and every node starts.
  TestCluster(const std::string& label, int nodes, int replicas,
              std::vector<std::string> node_args = {});

  storage::Ring& ring() { return *ring_; }
  // The farm key (none for an --insecure cluster) and its file.
  const std::optional<storage::FarmKey>& key() const { return key_; }
  const std::filesystem::path& key_path() const { return key_path_; }
  // "--key FILE" (or "--insecure") for another process of this farm.
  std::vector<std::string> KeyArgs() const;
  NodeProcess& node(uint32_t id) { return *nodes_[id]; }
  size_t size() const { return nodes_.size(); }
  const std::filesystem::path& dir() const { return scratch_.path(); }
  // A client of this cluster (heartbeats on unless said otherwise).
  std::unique_ptr<storage::ClusterClient> Client(
      bool heartbeats = true, std::chrono::milliseconds request_timeout = std::chrono::seconds(10));
  // One request to one node through a client without heartbeats.
  storage::Reply Call(uint32_t node, storage::Request request,
                      std::chrono::milliseconds timeout = std::chrono::seconds(30));
  // Waits until every replica node of `name` has it (a Put returns at a majority; the last
  // replica may still be syncing). REQUIREs success within 10 s.
  void AwaitAllReplicas(const std::string& name);

 private:
  ScratchDir scratch_;
  std::optional<storage::FarmKey> key_;
  std::filesystem::path key_path_;
  std::optional<storage::Ring> ring_;
  std::vector<std::unique_ptr<NodeProcess>> nodes_;
  std::unique_ptr<storage::ClusterClient> caller_;
};

// A DEALER for hand-made messages to one endpoint: plaintext, or CURVE with `key` (the node
// is expected to serve key->primary(); the dealer's identity is `identity`, by default the
// key's primary).
class RawDealer {
 public:
  explicit RawDealer(const std::string& endpoint, const storage::FarmKey* key = nullptr,
                     const storage::CurveKeyPair* identity = nullptr);
  // False when the message could not be queued within 3 s (no connection the node accepts).
  bool Send(const std::vector<std::string>& frames);
  // The frames of the next message (delimiter removed), or nullopt after `wait`.
  std::optional<std::vector<std::string>> Receive(std::chrono::milliseconds wait);

 private:
  zmq::context_t context_{1};
  zmq::socket_t socket_;
};

// Flips one byte in every stored block of the (stopped) node's store, in RocksDB and in block
// files (whose blocks are the store's default 4 MiB); returns how many.
size_t CorruptEveryBlock(const std::filesystem::path& store_dir);

}  // namespace zerofarm::test
