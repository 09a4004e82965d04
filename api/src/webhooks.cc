#include "webhooks.h"

#include <algorithm>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "playback.h"
#include "zerofarm/base/hex.h"
#include "zerofarm/scheduler/video_json.h"

namespace zerofarm::api {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using json = nlohmann::json;
using Clock = std::chrono::system_clock;

// Metadata keys: one record per endpoint, one per delivery (sequence numbers sort in order).
constexpr const char* kEndpointPrefix = "webhooks/endpoint/";
constexpr const char* kDeliveryPrefix = "webhooks/delivery/";
constexpr size_t kMaxUrlBytes = 2048;

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch())
      .count();
}

std::string Iso8601(int64_t ms) {
  const std::time_t t = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

struct Url {
  std::string host;
  std::string port = "80";
  std::string target = "/";
};

// http://host[:port][/path]: what the delivery client speaks. Other schemes are refused with
// the reason; the host is looked up when a delivery is sent.
Result<Url> ParseUrl(const std::string& url) {
  if (url.size() > kMaxUrlBytes)
    return Status::Error(ErrorCode::kInvalidArgument, "the URL is too long");
  for (char c : url)
    if (static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) >= 0x7f)
      return Status::Error(ErrorCode::kInvalidArgument, "the URL holds spaces or non-ASCII bytes");
  if (url.rfind("https://", 0) == 0)
    return Status::Error(ErrorCode::kInvalidArgument,
                         "https:// endpoints are not supported yet; use http:// (behind a "
                         "TLS-terminating proxy of yours if the receiver is remote)");
  if (url.rfind("http://", 0) != 0)
    return Status::Error(ErrorCode::kInvalidArgument, "the URL must start with http://");
  Url u;
  std::string rest = url.substr(7);
  const size_t slash = rest.find('/');
  std::string authority = rest.substr(0, slash);
  if (slash != std::string::npos) u.target = rest.substr(slash);
  if (authority.find('@') != std::string::npos)
    return Status::Error(ErrorCode::kInvalidArgument, "the URL must not carry credentials");
  if (!authority.empty() && authority.front() == '[') {  // [v6]:port
    const size_t close = authority.find(']');
    if (close == std::string::npos)
      return Status::Error(ErrorCode::kInvalidArgument, "bad IPv6 host");
    u.host = authority.substr(1, close - 1);
    if (close + 1 < authority.size()) {
      if (authority[close + 1] != ':')
        return Status::Error(ErrorCode::kInvalidArgument, "bad host");
      u.port = authority.substr(close + 2);
    }
  } else {
    const size_t colon = authority.rfind(':');
    u.host = authority.substr(0, colon);
    if (colon != std::string::npos) u.port = authority.substr(colon + 1);
  }
  if (u.host.empty()) return Status::Error(ErrorCode::kInvalidArgument, "the URL names no host");
  if (u.port.empty() || u.port.size() > 5 ||
      !std::all_of(u.port.begin(), u.port.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
      std::stoi(u.port) == 0 || std::stoi(u.port) > 65535)
    return Status::Error(ErrorCode::kInvalidArgument, "the URL's port must be 1-65535");
  return u;
}

// One POST; the answer's status code, or an error ("timeout", "connect", ...).
Result<unsigned> Post(const Url& url, const std::string& body,
                      const std::vector<std::pair<std::string, std::string>>& headers,
                      std::chrono::milliseconds timeout) {
  net::io_context ioc;
  net::ip::tcp::resolver resolver(ioc);
  beast::error_code ec;
  auto endpoints = resolver.resolve(url.host, url.port, ec);
  if (ec)
    return Status::Error(ErrorCode::kUnreachable,
                         "cannot resolve " + url.host + ": " + ec.message());
  beast::tcp_stream stream(ioc);
  http::request<http::string_body> req{http::verb::post, url.target, 11};
  req.set(http::field::host, url.port == "80" ? url.host : url.host + ":" + url.port);
  req.set(http::field::user_agent, "zerofarm-webhooks/1");
  req.set(http::field::content_type, "application/json");
  for (const auto& [k, v] : headers) req.set(k, v);
  req.body() = body;
  req.keep_alive(false);
  req.prepare_payload();
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(64 * 1024);  // the answer's body is not used; a huge one is not read
  beast::error_code result = net::error::timed_out;
  std::string step = "connect";
  stream.expires_after(timeout);
  stream.async_connect(endpoints, [&](beast::error_code e, const auto&) {
    if (e) {
      result = e;
      return;
    }
    step = "send";
    http::async_write(stream, req, [&](beast::error_code e2, size_t) {
      if (e2) {
        result = e2;
        return;
      }
      step = "answer";
      http::async_read(stream, buffer, parser, [&](beast::error_code e3, size_t) { result = e3; });
    });
  });
  ioc.run();
  if (result == beast::error::timeout || result == net::error::timed_out)
    return Status::Error(
        ErrorCode::kTimeout,
        "no answer within " + std::to_string(timeout.count()) + " ms (" + step + ")");
  if (result && !parser.is_header_done())
    return Status::Error(ErrorCode::kUnreachable, step + ": " + result.message());
  return parser.get().result_int();
}

class WebhooksImpl final : public Webhooks {
 public:
  WebhooksImpl(storage::Store& store, const WebhookOptions& o) : store_(store), opt_(o) {}

  ~WebhooksImpl() override {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

  Status Load() {
    auto endpoints = store_.ListMeta(kEndpointPrefix);
    if (!endpoints.ok()) return endpoints.status();
    for (const auto& [key, value] : *endpoints) {
      json e = json::parse(value, nullptr, false);
      if (e.is_object()) endpoints_[e.value("id", "")] = e;
    }
    auto deliveries = store_.ListMeta(kDeliveryPrefix);
    if (!deliveries.ok()) return deliveries.status();
    for (const auto& [key, value] : *deliveries) {
      json d = json::parse(value, nullptr, false);
      if (!d.is_object()) continue;
      next_seq_ = std::max(next_seq_, d.value("seq", uint64_t{0}) + 1);
      if (d.value("status", "") == "pending") pending_[key] = d;
    }
    thread_ = std::thread([this] { DeliveryLoop(); });
    return Status::Ok();
  }

  Result<json> Create(const std::string& tenant, const std::string& url,
                      const std::vector<std::string>& events) override {
    auto parsed = ParseUrl(url);
    if (!parsed.ok()) return parsed.status();
    for (const auto& e : events)
      if (std::find(WebhookEventTypes().begin(), WebhookEventTypes().end(), e) ==
          WebhookEventTypes().end())
        return Status::Error(ErrorCode::kInvalidArgument, "unknown event type '" + e + "'");
    const std::string id = RandomHex(8);
    const std::string secret = RandomHex(24);
    json e = {{"id", "wh_" + id},
              {"tenant", tenant},
              {"url", url},
              {"events", events},
              {"secret", "whsec_" + secret},
              {"created_at", Iso8601(NowMs())}};
    std::lock_guard lock(mu_);
    size_t mine = 0;
    for (const auto& [k, v] : endpoints_) mine += v.value("tenant", "") == tenant;
    if (mine >= opt_.max_endpoints_per_tenant)
      return Status::Error(ErrorCode::kTooMany, "a tenant has at most " +
                                                    std::to_string(opt_.max_endpoints_per_tenant) +
                                                    " webhook endpoints");
    ZF_RETURN_IF_ERROR(store_.PutMeta(kEndpointPrefix + e["id"].get<std::string>(), e.dump()));
    endpoints_[e["id"]] = e;
    json shown = Public(e);
    shown["secret"] = e["secret"];  // this once
    return shown;
  }

  json List(const std::string& tenant) override {
    std::lock_guard lock(mu_);
    json list = json::array();
    for (const auto& [id, e] : endpoints_)
      if (e.value("tenant", "") == tenant) list.push_back(Public(e));
    return {{"webhooks", list}};
  }

  Status Delete(const std::string& tenant, const std::string& id) override {
    std::lock_guard lock(mu_);
    auto it = endpoints_.find(id);
    if (it == endpoints_.end() || it->second.value("tenant", "") != tenant)
      return Status::Error(ErrorCode::kNotFound, "no webhook " + id);
    ZF_RETURN_IF_ERROR(store_.DeleteMeta(kEndpointPrefix + id));
    endpoints_.erase(it);
    const std::string prefix = std::string(kDeliveryPrefix) + id + "/";
    auto log = store_.ListMeta(prefix);
    if (log.ok())
      for (const auto& [key, value] : *log) (void)store_.DeleteMeta(key);
    for (auto p = pending_.begin(); p != pending_.end();)
      p = p->first.rfind(prefix, 0) == 0 ? pending_.erase(p) : std::next(p);
    return Status::Ok();
  }

  Result<json> Deliveries(const std::string& tenant, const std::string& id, size_t limit) override {
    {
      std::lock_guard lock(mu_);
      auto it = endpoints_.find(id);
      if (it == endpoints_.end() || it->second.value("tenant", "") != tenant)
        return Status::Error(ErrorCode::kNotFound, "no webhook " + id);
    }
    auto log = store_.ListMeta(std::string(kDeliveryPrefix) + id + "/");
    if (!log.ok()) return log.status();
    json list = json::array();
    for (auto it = log->rbegin(); it != log->rend() && list.size() < limit; ++it) {
      json d = json::parse(it->second, nullptr, false);
      if (!d.is_object()) continue;
      d.erase("body");
      d.erase("endpoint");
      d.erase("seq");
      d.erase("next_at_ms");
      list.push_back(std::move(d));
    }
    return json{{"deliveries", list}};
  }

  void OnEvent(const scheduler::VideoEvent& event) override {
    std::lock_guard lock(mu_);
    const json video = scheduler::VideoJson(event.video, /*with_chunks=*/false);
    for (const auto& [id, e] : endpoints_) {
      if (e.value("tenant", "") != event.tenant) continue;
      const auto wanted = e.value("events", std::vector<std::string>{});
      if (!wanted.empty() && std::find(wanted.begin(), wanted.end(), event.type) == wanted.end())
        continue;
      const std::string evt = RandomHex(12);
      const int64_t now = NowMs();
      const json payload = {{"id", "evt_" + evt},
                            {"type", event.type},
                            {"created_at", Iso8601(now)},
                            {"data", {{"video", video}}}};
      const uint64_t seq = next_seq_++;
      char seq_text[24];
      std::snprintf(seq_text, sizeof(seq_text), "%016llx", static_cast<unsigned long long>(seq));
      json d = {{"id", "dlv_" + std::string(seq_text)},
                {"seq", seq},
                {"endpoint", id},
                {"event", event.type},
                {"event_id", payload["id"]},
                {"video_id", event.video_id},
                {"status", "pending"},
                {"attempts", 0},
                {"created_at", Iso8601(now)},
                {"next_at_ms", now},
                {"body", payload.dump()}};
      const std::string key = std::string(kDeliveryPrefix) + id + "/" + seq_text;
      (void)store_.PutMeta(key, d.dump());  // pending survives a restart
      pending_[key] = std::move(d);
    }
    cv_.notify_all();
  }

 private:
  static json Public(const json& e) {
    json p = e;
    p.erase("tenant");
    p.erase("secret");
    return p;
  }

  // Sends each pending delivery when it is due, one at a time, oldest first.
  void DeliveryLoop() {
    std::unique_lock lock(mu_);
    while (!stop_) {
      std::optional<std::string> due;
      int64_t wake = INT64_MAX;
      const int64_t now = NowMs();
      for (const auto& [key, d] : pending_) {
        const int64_t at = d.value("next_at_ms", int64_t{0});
        if (at <= now) {
          due = key;
          break;
        }
        wake = std::min(wake, at);
      }
      if (!due) {
        if (wake == INT64_MAX) {
          cv_.wait(lock);
        } else {
          cv_.wait_for(lock, std::chrono::milliseconds(wake - now));
        }
        continue;
      }
      json d = pending_[*due];
      auto endpoint = endpoints_.find(d.value("endpoint", ""));
      if (endpoint == endpoints_.end()) {  // deleted meanwhile
        pending_.erase(*due);
        continue;
      }
      const std::string url = endpoint->second.value("url", "");
      const std::string secret = endpoint->second.value("secret", "");
      lock.unlock();
      Attempt(d, url, secret);
      lock.lock();
      if (!pending_.count(*due)) continue;  // the endpoint went away during the attempt
      (void)store_.PutMeta(*due, d.dump());
      if (d["status"] == "pending") {
        pending_[*due] = d;
      } else {
        pending_.erase(*due);
        Trim(d.value("endpoint", ""));
      }
    }
  }

  // One attempt: updates the delivery's status, attempts, last answer and next time.
  void Attempt(json& d, const std::string& url, const std::string& secret) {
    const std::string body = d.value("body", "");
    const int64_t now = NowMs();
    const int64_t t = now / 1000;
    d["attempts"] = d.value("attempts", 0) + 1;
    d["last_attempt_at"] = Iso8601(now);
    auto parsed = ParseUrl(url);
    Result<unsigned> answer = parsed.ok()
                                  ? Post(*parsed, body,
                                         {{"Zerofarm-Signature", WebhookSignature(secret, t, body)},
                                          {"Zerofarm-Event", d.value("event", "")},
                                          {"Zerofarm-Delivery", d.value("id", "")}},
                                         opt_.timeout)
                                  : Result<unsigned>(parsed.status());
    if (answer.ok()) {
      d["last_status_code"] = *answer;
      d.erase("last_error");
    } else {
      d["last_error"] = answer.status().message();
      d.erase("last_status_code");
    }
    if (answer.ok() && *answer >= 200 && *answer < 300) {
      d["status"] = "delivered";
      d["delivered_at"] = Iso8601(NowMs());
      d.erase("next_attempt_at");
      return;
    }
    if (d["attempts"].get<int>() >= opt_.max_attempts) {
      d["status"] = "failed";
      d.erase("next_attempt_at");
      return;
    }
    // Exponential backoff: first_retry, 2x, 4x, ... up to max_retry.
    const int n = d["attempts"].get<int>() - 1;
    const int64_t wait =
        std::min<int64_t>(opt_.max_retry.count(), opt_.first_retry.count() << std::min(n, 30));
    d["next_at_ms"] = NowMs() + wait;
    d["next_attempt_at"] = Iso8601(d["next_at_ms"].get<int64_t>());
  }

  // Forgets the oldest finished deliveries of an endpoint beyond kept_deliveries (holds mu_).
  void Trim(const std::string& endpoint) {
    auto log = store_.ListMeta(std::string(kDeliveryPrefix) + endpoint + "/");
    if (!log.ok() || log->size() <= opt_.kept_deliveries) return;
    size_t extra = log->size() - opt_.kept_deliveries;
    for (const auto& [key, value] : *log) {
      if (extra == 0) break;
      if (pending_.count(key)) continue;
      (void)store_.DeleteMeta(key);
      --extra;
    }
  }

  storage::Store& store_;
  const WebhookOptions opt_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::map<std::string, json> endpoints_;  // by id
  std::map<std::string, json> pending_;    // by metadata key (oldest first)
  uint64_t next_seq_ = 0;
  std::thread thread_;
};

}  // namespace

const std::vector<std::string>& WebhookEventTypes() {
  static const std::vector<std::string> kTypes = {"video.ready", "video.failed", "video.deleted"};
  return kTypes;
}

std::string WebhookSignature(const std::string& secret, int64_t unix_seconds,
                             const std::string& body) {
  return "t=" + std::to_string(unix_seconds) +
         ",v1=" + HmacSha256Hex(secret, std::to_string(unix_seconds) + "." + body);
}

Result<std::unique_ptr<Webhooks>> Webhooks::Open(storage::Store& store,
                                                 const WebhookOptions& options) {
  auto w = std::make_unique<WebhooksImpl>(store, options);
  ZF_RETURN_IF_ERROR(w->Load());
  return std::unique_ptr<Webhooks>(std::move(w));
}

}  // namespace zerofarm::api
