// ParseBoundedJson, JsonBodySink (json_body.h).
#include "json_body.h"

#include "zerofarm/base/bounded_json.h"

namespace zerofarm::api {

using json = nlohmann::json;

json ParseBoundedJson(std::string_view text, int max_depth) {
  return ParseJsonWithin(text, max_depth).value_or(json(json::value_t::discarded));
}

Status JsonBodySink::Consume(std::span<const std::byte> bytes) {
  body_.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  return Status::Ok();
}

Response JsonBodySink::Finish() {
  json j = body_.empty() ? json::object() : ParseBoundedJson(body_);
  if (j.is_discarded() || !j.is_object())
    return ErrorResponse(400, ErrorCode::kBadRequest,
                         "the body is not a JSON object (of at most " +
                             std::to_string(kMaxRequestJsonDepth) + " levels)");
  return handle_(j);
}

Response JsonBodySink::Fail(const Status& why) {
  Response r = FromStatus(why);
  r.close = true;
  return r;
}

}  // namespace zerofarm::api
