// Small HTTP helpers of the API: request-target parsing, byte ranges, content types and a
// streaming multipart/form-data reader. Pure functions and single-owner objects; thread-compatible.
#pragma once

#include <boost/beast/http/fields.hpp>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "zerofarm/base/status.h"

namespace zerofarm::api {

// Splits an origin-form target ("/a/b%20c?x=1") into percent-decoded path segments and the raw
// query. Refuses (returns false) anything that could name a file outside the tree: a segment
// that decodes to "." or "..", or holds '/', '\\' or NUL after decoding, bad %-escapes, a
// target not starting with '/', or more than 516 segments (/v1/objects/{container}/ and a
// 1024-byte object name).
bool SplitTarget(std::string_view target, std::vector<std::string>& segments, std::string& query);

// Message framing of a request head (RFC 9112 section 6): `transfer_encodings` holds every
// Transfer-Encoding field value in order, `content_lengths` how many Content-Length fields came.
// The only transfer coding implemented is chunked, once and last. Errors (each answered with
// the connection closed, so no byte of the body is ever read as another request):
// "bad_framing" (400): chunked missing, not final or repeated, a Transfer-Encoding beside a
// Content-Length, or in an HTTP/1.0 request; "not_implemented" (501): any other coding.
Status CheckFraming(unsigned version, const std::vector<std::string_view>& transfer_encodings,
                    size_t content_lengths);
// The same for a parsed head.
Status CheckFraming(unsigned version, const boost::beast::http::fields& head);

// Well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF).
bool IsValidUtf8(std::string_view s);

// tus Upload-Metadata ("key base64,key2 base64,key3"): decoded values by key. Errors
// ("invalid_argument"): a key that is empty, repeated or not printable ASCII, a value that is
// not valid base64 (RFC 4648, padding optional), more than 64 pairs.
Result<std::map<std::string, std::string>> ParseUploadMetadata(std::string_view header);

// The API's error body {"error": {"code": ..., "message": ...}}. Never throws: bytes that are
// not UTF-8 (a message may quote what a client sent) become U+FFFD.
std::string ErrorJson(std::string_view code, std::string_view message);

// An HTTP-date (RFC 9110 IMF-fixdate, "Sun, 06 Nov 1994 08:49:37 GMT") of Unix time `t`.
std::string HttpDate(int64_t t);

// A decimal header value of at most 19 digits (no sign, no spaces); false otherwise.
bool ParseU64(std::string_view s, uint64_t& v);

// Decoded key/value pairs of a query string ("a=1&b=%20"); later keys win.
std::map<std::string, std::string> ParseQuery(std::string_view query);

struct ByteRange {
  uint64_t first = 0;
  uint64_t last = 0;  // inclusive
};
enum class RangeParse { kNone, kSatisfiable, kUnsatisfiable };
// Parses a Range header ("bytes=0-99,200-,-50") against a representation of `size` bytes.
// kNone: no usable header (absent, other unit, malformed, or too many ranges) -> serve 200.
RangeParse ParseRange(std::string_view header, uint64_t size, std::vector<ByteRange>& out);

// The head of an HTTP/1.1 answer: status line, `fields` in order (a name given again replaces
// the earlier value, compared without case; CR and LF in names and values become spaces, so no
// value can end the head early), then Content-Length when `content_length` is set and
// "Connection: close" when `close`, then the empty line.
std::string FormatResponseHead(unsigned status,
                               const std::vector<std::pair<std::string, std::string>>& fields,
                               std::optional<uint64_t> content_length, bool close);

// "video/mp2t" for ".ts" and so on; application/octet-stream when unknown.
std::string_view ContentTypeFor(std::string_view filename);

// Reads the first file part of a multipart/form-data body as it streams: the bytes of the part
// named "file" (or the first part with a filename) are passed to `sink`, the rest skipped.
// Memory stays at one input piece plus the boundary.
class MultipartReader {
 public:
  // From the Content-Type header; nullopt when it has no usable boundary.
  static std::optional<MultipartReader> ForContentType(std::string_view content_type);
  using Sink = std::function<Status(std::string_view filename, std::span<const std::byte>)>;
  // Feeds body bytes; the sink's error or "bad_multipart" stops it.
  Status Feed(std::span<const std::byte> data, const Sink& sink);
  // True once the whole file part has been passed on.
  bool file_done() const { return file_done_; }
  bool file_started() const { return file_started_; }
  const std::string& filename() const { return filename_; }

 private:
  explicit MultipartReader(std::string delimiter) : delim_(std::move(delimiter)) {}
  enum class State { kPreamble, kAfterDelimiter, kHeaders, kBody, kEnd };
  std::string delim_;  // "--" + boundary
  std::string buf_;
  State state_ = State::kPreamble;
  bool taking_ = false;
  bool file_started_ = false;
  bool file_done_ = false;
  std::string filename_;
};

}  // namespace zerofarm::api
