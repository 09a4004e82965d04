// Small ZeroMQ helpers shared by the node server and the cluster client. Private to storage/.
// A socket is used by one thread at a time; these functions keep no state.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "zerofarm/storage/farm_key.h"
#include "zerofarm/storage/node_protocol.h"

namespace zerofarm::storage {

// A DEALER connected to `endpoint`: linger 0, messages only to completed connections
// (ZMQ_IMMEDIATE, so a send to a down node fails instead of queueing), frames capped at the
// protocol's limit, quick reconnects.
// With `curve`, the connection is CURVE-authenticated and encrypted: the client's identity is
// `curve->identity`, and the node is expected to serve with the secret key of `server_public`
// (a node serving another key, or refusing the identity, completes no connection).
struct CurveClient {
  CurveKeyPair identity;
  std::string server_public;
};

inline std::unique_ptr<zmq::socket_t> MakeDealer(zmq::context_t& context,
                                                 const std::string& endpoint,
                                                 const CurveClient* curve = nullptr) {
  auto s = std::make_unique<zmq::socket_t>(context, zmq::socket_type::dealer);
  if (curve) {
    s->set(zmq::sockopt::curve_serverkey, curve->server_public);
    s->set(zmq::sockopt::curve_publickey, curve->identity.public_key);
    s->set(zmq::sockopt::curve_secretkey, curve->identity.secret_key);
  }
  s->set(zmq::sockopt::linger, 0);
  s->set(zmq::sockopt::immediate, true);
  s->set(zmq::sockopt::sndtimeo, 250);  // a fresh connection gets this long to complete
  s->set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(kMaxPayloadBytes + kMaxHeaderBytes));
  s->set(zmq::sockopt::reconnect_ivl, 100);
  s->set(zmq::sockopt::reconnect_ivl_max, 500);
  s->connect(endpoint);
  return s;
}

// Sends the frames (after an empty delimiter when asked, and followed by `payload` when given)
// as one message. False when the message could not be queued (no connected peer within the
// send timeout, or an error).
inline bool SendFrames(zmq::socket_t& s, const std::vector<std::string>& frames, bool delimiter,
                       bool blocking = true,
                       std::optional<std::string_view> payload = std::nullopt) {
  const zmq::send_flags base = blocking ? zmq::send_flags::none : zmq::send_flags::dontwait;
  try {
    if (delimiter && !s.send(zmq::message_t(), base | zmq::send_flags::sndmore)) return false;
    for (size_t i = 0; i < frames.size(); ++i) {
      const bool last = i + 1 == frames.size() && !payload;
      if (!s.send(zmq::buffer(frames[i]), last ? zmq::send_flags::none : zmq::send_flags::sndmore))
        return false;
    }
    if (payload && !s.send(zmq::buffer(payload->data(), payload->size()), zmq::send_flags::none))
      return false;
  } catch (const zmq::error_t&) {
    return false;
  }
  return true;
}

// One waiting message of a DEALER, decoded (an empty optional when none is waiting or it is
// not a readable reply). Adds the size of every frame taken off the socket to *received_bytes
// when given, readable or not.
inline std::optional<Reply> ReceiveReply(zmq::socket_t& s, uint64_t* received_bytes = nullptr) {
  std::vector<zmq::message_t> parts;
  try {
    if (!zmq::recv_multipart(s, std::back_inserter(parts), zmq::recv_flags::dontwait))
      return std::nullopt;
  } catch (const zmq::error_t&) {
    return std::nullopt;
  }
  if (received_bytes)
    for (const auto& p : parts) *received_bytes += p.size();
  std::vector<std::string_view> frames;
  size_t first = 0;
  while (first < parts.size() && parts[first].size() == 0) ++first;  // the delimiter
  for (size_t i = first; i < parts.size(); ++i) frames.push_back(parts[i].to_string_view());
  auto reply = DecodeReply(frames);
  if (!reply.ok()) return std::nullopt;
  return std::move(*reply);
}

}  // namespace zerofarm::storage
