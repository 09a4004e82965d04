// Fuzzes the parsers of single request fields, each on its own so that short inputs reach deep:
// the first byte picks one, the rest is its input. Request targets, query strings, Range (with
// its invariants checked), tus Upload-Metadata (checked to round-trip), Transfer-Encoding
// lists, decimal headers, UTF-8, and JSON bodies with the error body that quotes them.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "http_util.h"

namespace {

using namespace zerofarm::api;

std::string Base64(std::string_view in) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const uint32_t v = static_cast<uint32_t>(static_cast<unsigned char>(in[i]) << 16 |
                                             static_cast<unsigned char>(in[i + 1]) << 8 |
                                             static_cast<unsigned char>(in[i + 2]));
    for (int k = 18; k >= 0; k -= 6) out += kAlphabet[(v >> k) & 63];
  }
  if (i + 1 == in.size()) {
    const uint32_t v = static_cast<uint32_t>(static_cast<unsigned char>(in[i]) << 16);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    const uint32_t v = static_cast<uint32_t>(static_cast<unsigned char>(in[i]) << 16 |
                                             static_cast<unsigned char>(in[i + 1]) << 8);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

void Target(std::string_view in) {
  std::vector<std::string> segments;
  std::string query;
  if (SplitTarget(in, segments, query))
    for (const auto& s : segments)
      if (s == "." || s == ".." || s.find('/') != std::string::npos) __builtin_trap();
}

void Range(std::string_view in) {
  uint64_t size = 0;
  for (size_t i = 0; i < 8 && i < in.size(); ++i)
    size = size << 8 | static_cast<unsigned char>(in[i]);
  in.remove_prefix(std::min<size_t>(8, in.size()));
  std::vector<ByteRange> out;
  if (ParseRange(in, size, out) == RangeParse::kSatisfiable) {
    if (out.empty() || out.size() > 16) __builtin_trap();
    for (const auto& r : out)
      if (r.first > r.last || r.last >= size) __builtin_trap();
  }
}

void Metadata(std::string_view in) {
  auto parsed = ParseUploadMetadata(in);
  if (!parsed.ok()) return;
  std::string again;
  for (const auto& [k, v] : *parsed) again += (again.empty() ? "" : ",") + k + " " + Base64(v);
  auto reparsed = ParseUploadMetadata(again);
  if (!reparsed.ok() || *reparsed != *parsed) __builtin_trap();
}

void Framing(std::string_view in) {
  std::vector<std::string_view> fields;
  const unsigned version = in.empty() ? 11 : (static_cast<unsigned char>(in[0]) & 1 ? 11 : 10);
  const size_t lengths = in.empty() ? 0 : (static_cast<unsigned char>(in[0]) >> 1) & 1;
  if (!in.empty()) in.remove_prefix(1);
  while (!in.empty()) {
    const size_t nl = in.find('\n');
    fields.push_back(in.substr(0, nl));
    if (nl == std::string_view::npos) break;
    in.remove_prefix(nl + 1);
  }
  const zerofarm::Status s = CheckFraming(version, fields, lengths);
  // Whatever passes is exactly one chunked coding, in HTTP/1.1, without a Content-Length.
  if (s.ok() && !fields.empty() && (lengths || version < 11)) __builtin_trap();
}

void Json(std::string_view in) {
  const auto j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  const std::string body = ErrorJson("bad_request", in);
  if (nlohmann::json::parse(body, nullptr, false).is_discarded()) __builtin_trap();
  if (!j.is_discarded()) (void)j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void Decimal(std::string_view in) {
  uint64_t n;
  if (!ParseU64(in, n)) return;
  if (in.empty() || in.size() > 19 || in.find_first_not_of("0123456789") != std::string::npos ||
      n != std::stoull(std::string(in)))
    __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 8) {
    case 0:
      Target(in);
      break;
    case 1:
      for (const auto& [k, v] : ParseQuery(in)) (void)(IsValidUtf8(k) && IsValidUtf8(v));
      break;
    case 2:
      Range(in);
      break;
    case 3:
      Metadata(in);
      break;
    case 4:
      Framing(in);
      break;
    case 5:
      Json(in);
      break;
    case 6:
      Decimal(in);
      break;
    default:
      (void)IsValidUtf8(in);
      (void)HttpDate(static_cast<int64_t>(in.size()) << 20);
      break;
  }
  return 0;
}
