// ParseBoundedJson, JsonBodySink (json_body.h).
#include "json_body.h"

namespace zerofarm::api {

using json = nlohmann::json;

namespace {
struct TooDeep {};
}  // namespace

json ParseBoundedJson(std::string_view text, int max_depth) {
  try {
    return json::parse(
        text,
        [max_depth](int depth, json::parse_event_t event, json&) {
          // Thrown, not returned: returning false would only drop the value and read on.
          if (depth > max_depth ||
              (depth == max_depth && (event == json::parse_event_t::object_start ||
                                      event == json::parse_event_t::array_start)))
            throw TooDeep{};
          return true;
        },
        /*allow_exceptions=*/false);
  } catch (const TooDeep&) {
    return json(json::value_t::discarded);
  }
}

Status JsonBodySink::Consume(std::span<const std::byte> bytes) {
  body_.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  return Status::Ok();
}

Response JsonBodySink::Finish() {
  json j = body_.empty() ? json::object() : ParseBoundedJson(body_);
  if (j.is_discarded() || !j.is_object())
    return ErrorResponse(400, "bad_request",
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
