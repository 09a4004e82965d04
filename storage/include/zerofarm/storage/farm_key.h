// FarmKey: the CURVE key material every process of a farm shares (`zerofarm key create`).
// Every ZeroMQ connection between farm processes is authenticated and encrypted with libzmq's
// CURVE mechanism: a node serves with the primary key's secret, and its ZAP handler admits
// only clients whose public key is one of the file's keys; every client (proxy, node peers)
// connects with the primary key as its own identity and knows the nodes by the keys' publics.
//
// The file is text, mode 0600, one key per line (a line starting with "#" is a comment):
//   zerofarm-farm-key 1
//   key <public, Z85, 40 chars> <secret, Z85, 40 chars>
//   key ...                      further keys are accepted too (a rotation in progress)
// Rotation without downtime (README "Rotating the farm key"): roll out [old, new], then
// [new, old], then [new], restarting one process at a time: at every step each pair of
// processes shares a key the server side serves with and the client side tries.
// Thread safety: a FarmKey is an immutable value; share it freely.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "zerofarm/base/status.h"

namespace zerofarm::storage {

struct CurveKeyPair {
  std::string public_key;  // Z85, 40 characters
  std::string secret_key;  // Z85, 40 characters
  bool operator==(const CurveKeyPair&) const = default;
};

class FarmKey {
 public:
  // A fresh key pair from zmq_curve_keypair ("unsupported" when libzmq lacks CURVE).
  static Result<FarmKey> Generate();
  // Parses the text form; "invalid_argument" says which line is wrong.
  static Result<FarmKey> Parse(std::string_view text);
  // Reads a key file; refuses one that others than its owner may read ("insecure_key_file").
  static Result<FarmKey> Load(const std::string& path);
  std::string ToText() const;
  // Written with mode 0600 to a temporary file, synced, renamed; refuses to overwrite.
  Status Save(const std::string& path) const;

  // First the primary key, then the others; never empty.
  const std::vector<CurveKeyPair>& keys() const { return keys_; }
  const CurveKeyPair& primary() const { return keys_.front(); }
  // Whether a client's public key (Z85) is one of the farm's.
  bool Admits(std::string_view public_key_z85) const;

 private:
  std::vector<CurveKeyPair> keys_;
};

}  // namespace zerofarm::storage
