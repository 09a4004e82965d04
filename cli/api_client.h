// ApiClient: the CLI's HTTP client of a zerofarm server's API (zerofarm object, zerofarm job):
// one plain-HTTP/1.1 connection (Boost.Beast) with the bearer token on every request; bodies
// stream both ways so memory stays at one buffer whatever an object's size.
// Single-owner; blocking.
#pragma once

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cstdio>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "cli/flags.h"

namespace zerofarm::cli {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

struct ApiTarget {
  std::string host;
  std::string port;
  std::string token;
};

// "http://HOST[:PORT][/]" -> host and port; false for anything else.
inline bool ParseUrl(std::string url, std::string& host, std::string& port) {
  if (url.rfind("http://", 0) != 0) return false;
  url.erase(0, 7);
  if (!url.empty() && url.back() == '/') url.pop_back();
  if (url.empty() || url.find('/') != std::string::npos) return false;
  const size_t colon = url.rfind(':');
  if (colon != std::string::npos && url.find(']', colon) == std::string::npos) {
    host = url.substr(0, colon);
    port = url.substr(colon + 1);
  } else {
    host = url;
    port = "80";
  }
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  return !host.empty() && ParseInteger(port, 1, 65535).has_value();
}

// Percent-encodes all but unreserved characters and, with keep_slash, '/'.
inline std::string Escape(const std::string& s, bool keep_slash) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '_' || c == '.' || c == '~' || (keep_slash && c == '/')) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

// One connection to the server; each call sends a request and reads its answer.
class ApiClient {
 public:
  ApiClient(ApiTarget target, std::string agent)
      : o_(std::move(target)), agent_(std::move(agent)), stream_(ioc_) {}

  bool Connect(std::string& error) {
    beast::error_code ec;
    tcp::resolver resolver(ioc_);
    auto found = resolver.resolve(o_.host, o_.port, ec);
    if (!ec) stream_.connect(found, ec);
    if (ec) error = "cannot connect to " + o_.host + ":" + o_.port + ": " + ec.message();
    return !ec;
  }

  template <class Body>
  void Prepare(http::request<Body>& req) {
    req.set(http::field::host, o_.host + ":" + o_.port);
    req.set(http::field::authorization, "Bearer " + o_.token);
    req.set(http::field::user_agent, agent_);
  }

  // A request without a body; the whole answer in `res`.
  bool Simple(http::verb verb, const std::string& target, http::response<http::string_body>& res,
              std::string& error) {
    http::request<http::empty_body> req{verb, target, 11};
    Prepare(req);
    beast::error_code ec;
    http::write(stream_, req, ec);
    if (!ec) http::read(stream_, buffer_, res, ec);
    if (ec) error = "the request failed: " + ec.message();
    return !ec;
  }

  // A request with a small body (JSON); the whole answer in `res`.
  bool Send(http::verb verb, const std::string& target, const std::string& body,
            http::response<http::string_body>& res, std::string& error) {
    http::request<http::string_body> req{verb, target, 11};
    Prepare(req);
    req.set(http::field::content_type, "application/json");
    req.body() = body;
    req.prepare_payload();
    beast::error_code ec;
    http::write(stream_, req, ec);
    if (!ec) http::read(stream_, buffer_, res, ec);
    if (ec) error = "the request failed: " + ec.message();
    return !ec;
  }

  // PUT with the bytes of `in` (size known) streamed as the body.
  bool Put(const std::string& target, std::FILE* in, std::optional<uint64_t> size,
           http::response<http::string_body>& res, std::string& error) {
    http::request<http::buffer_body> req{http::verb::put, target, 11};
    Prepare(req);
    req.set(http::field::content_type, "application/octet-stream");
    if (size)
      req.content_length(*size);
    else
      req.chunked(true);
    req.body().data = nullptr;
    req.body().more = true;
    http::request_serializer<http::buffer_body> sr{req};
    beast::error_code ec;
    http::write_header(stream_, sr, ec);
    std::vector<char> buf(1 << 20);
    while (!ec) {
      const size_t n = std::fread(buf.data(), 1, buf.size(), in);
      if (n == 0 && std::ferror(in)) {
        error = "cannot read the file";
        return false;
      }
      req.body().data = n ? buf.data() : nullptr;
      req.body().size = n;
      req.body().more = n > 0;
      http::write(stream_, sr, ec);
      if (ec == http::error::need_buffer) ec = {};
      if (n == 0) break;
    }
    // The server may answer (413) before taking the whole body: read its answer in any case.
    beast::error_code read_ec;
    http::read(stream_, buffer_, res, read_ec);
    if (read_ec) error = "the upload failed: " + (ec ? ec : read_ec).message();
    return !read_ec;
  }

  // GET: a 200 body streamed to `out`; any other answer whole in `res`.
  bool Get(const std::string& target, std::FILE* out, unsigned& status, std::string& body,
           std::string& error) {
    http::request<http::empty_body> req{http::verb::get, target, 11};
    Prepare(req);
    beast::error_code ec;
    http::write(stream_, req, ec);
    http::response_parser<http::buffer_body> p;
    p.body_limit(std::numeric_limits<uint64_t>::max());
    if (!ec) http::read_header(stream_, buffer_, p, ec);
    if (ec) {
      error = "the request failed: " + ec.message();
      return false;
    }
    status = p.get().result_int();
    std::optional<uint64_t> expected;
    if (p.content_length()) expected = *p.content_length();
    uint64_t got = 0;
    std::vector<char> buf(1 << 20);
    while (!p.is_done()) {
      p.get().body().data = buf.data();
      p.get().body().size = buf.size();
      http::read(stream_, buffer_, p, ec);
      if (ec == http::error::need_buffer) ec = {};
      if (ec) {
        error = "the download stopped after " + std::to_string(got) + " bytes: " + ec.message();
        return false;
      }
      const size_t n = buf.size() - p.get().body().size;
      got += n;
      if (status != 200) {
        if (body.size() < 65536) body.append(buf.data(), n);
      } else if (n && std::fwrite(buf.data(), 1, n, out) != n) {
        error = "cannot write the output";
        return false;
      }
    }
    if (status == 200 && expected && got != *expected) {
      error = "the download ended after " + std::to_string(got) + " of " +
              std::to_string(*expected) + " bytes";
      return false;
    }
    return true;
  }

 private:
  const ApiTarget o_;
  const std::string agent_;
  net::io_context ioc_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
};

// "404 not_found: no object c/x" from an API error answer.
inline std::string ApiError(unsigned status, const std::string& body) {
  nlohmann::json j = nlohmann::json::parse(body, nullptr, false);
  if (j.is_object() && j.contains("error") && j["error"].is_object())
    return std::to_string(status) + " " + j["error"].value("code", "") + ": " +
           j["error"].value("message", "");
  return "the server answered " + std::to_string(status);
}

}  // namespace zerofarm::cli
