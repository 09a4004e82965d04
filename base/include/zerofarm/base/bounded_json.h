// JSON from outside (a client, a peer) parsed with a bound on nesting: the parser stops at the
// first value that goes deeper, so no deep tree is ever built and no later walk over the tree
// (dump, destruction, lookups) can recurse deeply. Header-only (nlohmann); pure.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string_view>

namespace zerofarm {

// `text` parsed, nesting at most `max_depth` levels; nullopt when it nests deeper, a discarded
// value (is_discarded()) when it is not JSON.
inline std::optional<nlohmann::json> ParseJsonWithin(std::string_view text, int max_depth) {
  struct TooDeep {};
  using json = nlohmann::json;
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
    return std::nullopt;
  }
}

}  // namespace zerofarm
