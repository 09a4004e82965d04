// Small JSON request bodies (PATCH of a video, POST of a webhook), read whole and parsed with a
// bounded depth. Single-owner; thread-compatible.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "router.h"

namespace zerofarm::api {

// The most levels of nesting any JSON the API reads from a client may have.
inline constexpr int kMaxRequestJsonDepth = 16;

// `text` as JSON nesting at most `max_depth` levels; a discarded value (is_discarded()) when it
// is malformed or deeper. The parser stops at the first level too deep, so a body of nested
// brackets costs no more than its length.
nlohmann::json ParseBoundedJson(std::string_view text, int max_depth = kMaxRequestJsonDepth);

// Collects at most `limit` bytes of body, then answers with `handle(object)`. An empty body is
// the empty object; anything else but a JSON object of bounded depth is 400 bad_request; a
// body past the limit or cut short is answered by FromStatus, with the connection closed.
class JsonBodySink final : public BodySink {
 public:
  using Handler = std::function<Response(const nlohmann::json&)>;
  JsonBodySink(uint64_t limit, Handler handle) : limit_(limit), handle_(std::move(handle)) {}
  uint64_t limit() const override { return limit_; }
  Status Consume(std::span<const std::byte> bytes) override;
  Response Finish() override;
  Response Fail(const Status& why) override;

 private:
  uint64_t limit_;
  Handler handle_;
  std::string body_;
};

}  // namespace zerofarm::api
