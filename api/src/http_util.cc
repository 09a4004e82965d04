// HTTP helpers (http_util.h).
#include "http_util.h"

#include <algorithm>
#include <boost/beast/http/status.hpp>
#include <cctype>
#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>

namespace zerofarm::api {
namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Percent-decodes; false on a bad escape. `plus_is_space` for query strings.
bool Decode(std::string_view in, std::string& out, bool plus_is_space) {
  out.clear();
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%') {
      if (i + 2 >= in.size()) return false;
      int hi = HexValue(in[i + 1]), lo = HexValue(in[i + 2]);
      if (hi < 0 || lo < 0) return false;
      out += static_cast<char>(hi * 16 + lo);
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return true;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// The value of `param` in a header like `form-data; name="file"; filename="a.mp4"`.
std::optional<std::string> HeaderParam(std::string_view header, std::string_view param) {
  const std::string lower = Lower(header);
  size_t pos = 0;
  const std::string key = std::string(param) + "=";
  while ((pos = lower.find(key, pos)) != std::string::npos) {
    if (pos == 0 || lower[pos - 1] == ' ' || lower[pos - 1] == ';' || lower[pos - 1] == '\t') {
      std::string_view rest = header.substr(pos + key.size());
      if (!rest.empty() && rest.front() == '"') {
        size_t end = rest.find('"', 1);
        if (end == std::string_view::npos) return std::nullopt;
        return std::string(rest.substr(1, end - 1));
      }
      size_t end = rest.find_first_of("; \t");
      return std::string(rest.substr(0, end));
    }
    pos += key.size();
  }
  return std::nullopt;
}

}  // namespace

Status CheckFraming(unsigned version, const std::vector<std::string_view>& transfer_encodings,
                    size_t content_lengths) {
  if (transfer_encodings.empty()) return Status::Ok();
  if (version < 11)
    return Status::Error(ErrorCode::kBadFraming,
                         "Transfer-Encoding is not allowed in an HTTP/1.0 request");
  if (content_lengths > 0)
    return Status::Error(ErrorCode::kBadFraming,
                         "a request may not carry both Transfer-Encoding and Content-Length");
  // Every coding of every field, in order; empty list elements are allowed and skipped.
  std::vector<std::string> codings;
  for (std::string_view field : transfer_encodings) {
    while (true) {
      const size_t comma = field.find(',');
      std::string_view item = Trim(field.substr(0, comma));
      if (!item.empty()) codings.push_back(Lower(item));
      if (comma == std::string_view::npos) break;
      field.remove_prefix(comma + 1);
    }
  }
  if (codings.empty())
    return Status::Error(ErrorCode::kBadFraming, "Transfer-Encoding names no transfer coding");
  if (codings.back() != "chunked")
    return Status::Error(ErrorCode::kBadFraming,
                         "the final transfer coding must be chunked (the body length cannot "
                         "be determined otherwise)");
  if (std::count(codings.begin(), codings.end(), "chunked") > 1)
    return Status::Error(ErrorCode::kBadFraming, "chunked may be applied only once");
  if (codings.size() > 1) {
    std::string first = codings.front();
    if (first.size() > 40) first = first.substr(0, 40) + "...";
    std::string printable;
    for (char c : first) printable += (c >= 0x20 && c < 0x7f) ? c : '?';
    return Status::Error(ErrorCode::kNotImplemented, "the transfer coding '" + printable +
                                                         "' is not implemented; only chunked is");
  }
  return Status::Ok();
}

Status CheckFraming(unsigned version, const boost::beast::http::fields& head) {
  namespace http = boost::beast::http;
  std::vector<std::string_view> te;
  for (auto [it, end] = head.equal_range(http::field::transfer_encoding); it != end; ++it)
    te.emplace_back(it->value().data(), it->value().size());
  return CheckFraming(version, te, head.count(http::field::content_length));
}

bool IsValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t n;
    uint32_t cp, min;
    if ((c & 0xe0) == 0xc0) {
      n = 1, cp = c & 0x1f, min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
      n = 2, cp = c & 0x0f, min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
      n = 3, cp = c & 0x07, min = 0x10000;
    } else {
      return false;
    }
    if (s.size() - i <= n) return false;
    for (size_t k = 1; k <= n; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += n + 1;
  }
  return true;
}

namespace {

// Strict base64 (RFC 4648 alphabet); padding optional, but when present it must be right.
std::optional<std::string> Base64Decode(std::string_view in) {
  static constexpr std::string_view kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t pad = 0;
  while (!in.empty() && in.back() == '=' && pad < 2) {
    in.remove_suffix(1);
    ++pad;
  }
  if (pad && (in.size() + pad) % 4 != 0) return std::nullopt;
  if (in.size() % 4 == 1) return std::nullopt;
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    const size_t v = kAlphabet.find(c);
    if (v == std::string_view::npos) return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  if (bits && (acc & ((1u << bits) - 1)) != 0) return std::nullopt;  // non-canonical tail
  return out;
}

}  // namespace

Result<std::map<std::string, std::string>> ParseUploadMetadata(std::string_view header) {
  std::map<std::string, std::string> out;
  header = Trim(header);
  if (header.empty()) return out;
  while (true) {
    const size_t comma = header.find(',');
    std::string_view pair = Trim(header.substr(0, comma));
    if (pair.empty()) {  // an empty list element
      if (comma == std::string_view::npos) break;
      header.remove_prefix(comma + 1);
      continue;
    }
    const size_t space = pair.find(' ');
    const std::string_view key = pair.substr(0, space);
    if (key.empty() || !std::all_of(key.begin(), key.end(),
                                    [](char c) { return c > 0x20 && c < 0x7f && c != ','; }))
      return Status::Error(ErrorCode::kInvalidArgument,
                           "Upload-Metadata: a key is empty or not printable ASCII");
    std::string value;
    if (space != std::string_view::npos) {
      auto decoded = Base64Decode(Trim(pair.substr(space + 1)));
      if (!decoded)
        return Status::Error(
            ErrorCode::kInvalidArgument,
            "Upload-Metadata: the value of '" + std::string(key) + "' is not valid base64");
      value = std::move(*decoded);
    }
    if (!out.emplace(std::string(key), std::move(value)).second)
      return Status::Error(ErrorCode::kInvalidArgument,
                           "Upload-Metadata: the key '" + std::string(key) + "' is repeated");
    if (out.size() > 64)
      return Status::Error(ErrorCode::kInvalidArgument, "Upload-Metadata: too many keys");
    if (comma == std::string_view::npos) break;
    header.remove_prefix(comma + 1);
  }
  return out;
}

std::string ErrorJson(std::string_view code, std::string_view message) {
  const nlohmann::json j = {{"error", {{"code", code}, {"message", message}}}};
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string HttpDate(int64_t t) {
  const std::time_t tt = static_cast<std::time_t>(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  static const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%s, %02d %s %04d %02d:%02d:%02d GMT", kDays[tm.tm_wday % 7],
                tm.tm_mday, kMonths[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                tm.tm_sec);
  return buf;
}

bool ParseU64(std::string_view s, uint64_t& v) {
  if (s.empty() || s.size() > 19) return false;
  v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  return true;
}

// An object name (1024 bytes) has at most 513 segments; the head's size limit bounds the rest.
constexpr size_t kMaxSegments = 3 + 513;

bool SplitTarget(std::string_view target, std::vector<std::string>& segments, std::string& query) {
  segments.clear();
  query.clear();
  if (target.empty() || target.front() != '/') return false;
  if (size_t q = target.find('?'); q != std::string_view::npos) {
    query = std::string(target.substr(q + 1));
    target = target.substr(0, q);
  }
  if (size_t h = target.find('#'); h != std::string_view::npos) return false;
  target.remove_prefix(1);
  if (target.empty()) return true;  // "/"
  size_t start = 0;
  while (true) {
    size_t slash = target.find('/', start);
    std::string_view raw = target.substr(
        start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    std::string seg;
    if (!Decode(raw, seg, false)) return false;
    if (seg == "." || seg == ".." ||
        seg.find_first_of(std::string_view("/\\\0", 3)) != std::string::npos)
      return false;
    segments.push_back(std::move(seg));
    if (segments.size() > kMaxSegments) return false;
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return true;
}

std::map<std::string, std::string> ParseQuery(std::string_view query) {
  std::map<std::string, std::string> out;
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    size_t eq = pair.find('=');
    std::string key, value;
    if (Decode(pair.substr(0, eq), key, true) &&
        (eq == std::string_view::npos || Decode(pair.substr(eq + 1), value, true)) && !key.empty())
      out[key] = value;
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return out;
}

std::string FormatResponseHead(unsigned status,
                               const std::vector<std::pair<std::string, std::string>>& fields,
                               std::optional<uint64_t> content_length, bool close) {
  namespace http = boost::beast::http;
  auto same = [](std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
             return std::tolower(static_cast<unsigned char>(x)) ==
                    std::tolower(static_cast<unsigned char>(y));
           });
  };
  auto append_clean = [](std::string& out, std::string_view v) {
    const size_t at = out.size();
    out.append(v);
    for (size_t i = at; i < out.size(); ++i)
      if (out[i] == '\r' || out[i] == '\n') out[i] = ' ';
  };
  std::string head;
  head.reserve(512);
  head.append("HTTP/1.1 ").append(std::to_string(status)).push_back(' ');
  const auto reason = http::obsolete_reason(http::int_to_status(status));
  head.append(reason.data(), reason.size()).append("\r\n");
  for (size_t i = 0; i < fields.size(); ++i) {
    const auto& [name, value] = fields[i];
    if (same(name, "Content-Length") || same(name, "Connection")) continue;  // set below
    bool replaced = false;
    for (size_t j = i + 1; j < fields.size() && !replaced; ++j)
      replaced = same(fields[j].first, name);
    if (replaced) continue;
    append_clean(head, name);
    head.append(": ");
    append_clean(head, value);
    head.append("\r\n");
  }
  if (content_length) head.append("Content-Length: ").append(std::to_string(*content_length));
  if (content_length) head.append("\r\n");
  if (close) head.append("Connection: close\r\n");
  head.append("\r\n");
  return head;
}

RangeParse ParseRange(std::string_view header, uint64_t size, std::vector<ByteRange>& out) {
  out.clear();
  header = Trim(header);
  if (header.substr(0, 6) != "bytes=") return RangeParse::kNone;
  header.remove_prefix(6);
  constexpr size_t kMaxRanges = 16;
  size_t specs = 0;
  while (!header.empty()) {
    size_t comma = header.find(',');
    std::string_view spec = Trim(header.substr(0, comma));
    header = comma == std::string_view::npos ? std::string_view() : header.substr(comma + 1);
    if (spec.empty()) continue;
    if (++specs > kMaxRanges) return RangeParse::kNone;
    size_t dash = spec.find('-');
    if (dash == std::string_view::npos) return RangeParse::kNone;
    std::string_view a = Trim(spec.substr(0, dash)), b = Trim(spec.substr(dash + 1));
    uint64_t first, last;
    if (a.empty()) {  // suffix: the last N bytes
      uint64_t n;
      if (!ParseU64(b, n)) return RangeParse::kNone;
      if (n == 0 || size == 0) continue;
      first = n >= size ? 0 : size - n;
      last = size - 1;
    } else {
      if (!ParseU64(a, first)) return RangeParse::kNone;
      if (b.empty()) {
        last = size ? size - 1 : 0;
      } else {
        if (!ParseU64(b, last) || last < first) return RangeParse::kNone;
        if (size) last = std::min(last, size - 1);
      }
      if (first >= size) continue;  // unsatisfiable on its own
    }
    out.push_back({first, last});
  }
  if (specs == 0) return RangeParse::kNone;
  return out.empty() ? RangeParse::kUnsatisfiable : RangeParse::kSatisfiable;
}

std::string_view ContentTypeFor(std::string_view name) {
  struct Entry {
    std::string_view ext, type;
  };
  static constexpr Entry kTypes[] = {
      {".m3u8", "application/vnd.apple.mpegurl"},
      {".ts", "video/mp2t"},
      {".mp4", "video/mp4"},
      {".m4s", "video/iso.segment"},
      {".jpg", "image/jpeg"},
      {".jpeg", "image/jpeg"},
      {".png", "image/png"},
      {".svg", "image/svg+xml"},
      {".ico", "image/x-icon"},
      {".html", "text/html; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"},
      {".mjs", "text/javascript; charset=utf-8"},
      {".map", "application/json"},
      {".json", "application/json"},
      {".txt", "text/plain; charset=utf-8"},
      {".woff2", "font/woff2"},
      {".wasm", "application/wasm"},
  };
  for (const auto& e : kTypes)
    if (name.size() >= e.ext.size() && name.substr(name.size() - e.ext.size()) == e.ext)
      return e.type;
  return "application/octet-stream";
}

std::optional<MultipartReader> MultipartReader::ForContentType(std::string_view content_type) {
  if (Lower(content_type).find("multipart/form-data") != 0) return std::nullopt;
  auto boundary = HeaderParam(content_type, "boundary");
  if (!boundary || boundary->empty() || boundary->size() > 70) return std::nullopt;
  return MultipartReader("--" + *boundary);
}

Status MultipartReader::Feed(std::span<const std::byte> data, const Sink& sink) {
  buf_.append(reinterpret_cast<const char*>(data.data()), data.size());
  auto emit = [&](size_t n) -> Status {
    if (n == 0 || !taking_) return Status::Ok();
    file_started_ = true;
    return sink(filename_, std::as_bytes(std::span(buf_.data(), n)));
  };
  while (true) {
    switch (state_) {
      case State::kPreamble: {
        size_t at = buf_.find(delim_);
        if (at == std::string::npos) {
          if (buf_.size() > delim_.size()) buf_.erase(0, buf_.size() - delim_.size());
          return Status::Ok();
        }
        buf_.erase(0, at + delim_.size());
        state_ = State::kAfterDelimiter;
        break;
      }
      case State::kAfterDelimiter: {
        if (buf_.size() < 2) return Status::Ok();
        if (buf_.compare(0, 2, "--") == 0) {
          state_ = State::kEnd;
          break;
        }
        // The limits hold however the body was cut into reads.
        size_t eol = buf_.find("\r\n");
        if (eol == std::string::npos ? buf_.size() > 257 : eol > 256)
          return Status::Error(ErrorCode::kBadMultipart, "bad multipart boundary line");
        if (eol == std::string::npos) return Status::Ok();
        buf_.erase(0, eol + 2);
        state_ = State::kHeaders;
        break;
      }
      case State::kHeaders: {
        size_t end = buf_.find("\r\n\r\n");
        if (buf_.compare(0, 2, "\r\n") == 0) end = 0;  // a part without headers
        if (end == std::string::npos ? buf_.size() > 16387 : end > 16384)
          return Status::Error(ErrorCode::kBadMultipart, "multipart part headers too large");
        if (end == std::string::npos) return Status::Ok();
        std::string_view headers(buf_.data(), end);
        taking_ = false;
        size_t pos = 0;
        while (pos < headers.size()) {
          size_t eol = headers.find("\r\n", pos);
          std::string_view line = headers.substr(
              pos, eol == std::string_view::npos ? std::string_view::npos : eol - pos);
          if (Lower(line.substr(0, 20)) == "content-disposition:") {
            auto name = HeaderParam(line, "name");
            auto filename = HeaderParam(line, "filename");
            if (!file_done_ && ((name && *name == "file") || filename)) {
              taking_ = true;
              filename_ = filename.value_or("");
            }
          }
          if (eol == std::string_view::npos) break;
          pos = eol + 2;
        }
        buf_.erase(0, end == 0 ? 2 : end + 4);
        state_ = State::kBody;
        break;
      }
      case State::kBody: {
        const std::string marker = "\r\n" + delim_;
        size_t at = buf_.find(marker);
        if (at == std::string::npos) {
          size_t safe = buf_.size() > marker.size() ? buf_.size() - marker.size() : 0;
          ZF_RETURN_IF_ERROR(emit(safe));
          buf_.erase(0, safe);
          return Status::Ok();
        }
        ZF_RETURN_IF_ERROR(emit(at));
        buf_.erase(0, at + marker.size());
        if (taking_) {
          file_done_ = true;
          taking_ = false;
        }
        state_ = State::kAfterDelimiter;
        break;
      }
      case State::kEnd:
        buf_.clear();
        return Status::Ok();
    }
  }
}

}  // namespace zerofarm::api
