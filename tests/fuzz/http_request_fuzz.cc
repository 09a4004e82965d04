// Fuzzes the HTTP request path without sockets, as a connection meets it: pipelined requests
// parsed by Beast's parsers with the server's limits (request line, headers, Content-Length or
// chunked bodies), then every check and parser the server and the router apply to them:
// framing (Transfer-Encoding/Content-Length), the request target and its UTF-8, the query,
// Range, the tus headers, and a multipart/form-data body as it streams.
#include <boost/asio/buffer.hpp>
#include <boost/beast/http.hpp>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "http_util.h"

namespace {

namespace http = boost::beast::http;
using zerofarm::api::ByteRange;

// False when the server would answer and close (ambiguous framing): nothing after it is read.
bool CheckHead(const http::request_header<>& h, std::optional<zerofarm::api::MultipartReader>& mp) {
  using namespace zerofarm::api;
  if (!CheckFraming(h.version(), h).ok()) return false;
  std::vector<std::string> segments;
  std::string query;
  const auto target = h.target();
  if (SplitTarget(std::string_view(target.data(), target.size()), segments, query)) {
    for (const auto& s : segments) (void)IsValidUtf8(s);
    for (const auto& [k, v] : ParseQuery(query)) (void)(IsValidUtf8(k) && IsValidUtf8(v));
  }
  auto field = [&](auto name) {
    auto v = h[name];
    return std::string_view(v.data(), v.size());
  };
  std::vector<ByteRange> ranges;
  for (uint64_t size : {uint64_t{0}, uint64_t{1}, uint64_t{1000}, ~uint64_t{0}}) {
    const RangeParse p = ParseRange(field(http::field::range), size, ranges);
    if (p == RangeParse::kSatisfiable)
      for (const auto& r : ranges)
        if (r.first > r.last || r.last >= size) __builtin_trap();  // a range outside the file
  }
  uint64_t n;
  (void)ParseU64(field("Upload-Offset"), n);
  (void)ParseU64(field("Upload-Length"), n);
  (void)ParseU64(field(http::field::content_length), n);
  (void)ParseUploadMetadata(field("Upload-Metadata"));
  mp = MultipartReader::ForContentType(field(http::field::content_type));
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  boost::asio::const_buffer in(data, size);
  static char body[64 * 1024];
  for (int request = 0; request < 8 && in.size() > 0; ++request) {
    http::request_parser<http::empty_body> head;
    head.header_limit(16 * 1024);
    head.body_limit(std::numeric_limits<std::uint64_t>::max());
    boost::beast::error_code ec;
    while (!head.is_header_done() && in.size() > 0) {
      const size_t used = head.put(in, ec);
      in += used;
      if (ec || used == 0) break;
    }
    if (ec || !head.is_header_done()) return 0;
    std::optional<zerofarm::api::MultipartReader> multipart;
    if (!CheckHead(head.get(), multipart)) return 0;
    if (head.is_done()) continue;
    http::request_parser<http::buffer_body> reader(std::move(head));
    reader.body_limit(20 << 20);
    while (!reader.is_done() && in.size() > 0) {
      reader.get().body().data = body;
      reader.get().body().size = sizeof(body);
      const size_t used = reader.put(in, ec);
      in += used;
      if (ec == http::error::need_buffer) ec = {};
      if (ec) return 0;
      const size_t got = sizeof(body) - reader.get().body().size;
      if (multipart && got)
        (void)multipart->Feed(
            std::as_bytes(std::span(body, got)),
            [](std::string_view, std::span<const std::byte>) { return zerofarm::Status::Ok(); });
      if (used == 0 && got == 0) return 0;
    }
    if (!reader.is_done()) return 0;
  }
  return 0;
}
