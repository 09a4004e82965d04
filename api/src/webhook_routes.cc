// The router's webhook routes and its webhook lifetime:
//   POST   /v1/webhooks                  {"url": "http://...", "events": [...]} -> 201, secret once
//   GET    /v1/webhooks                  {"webhooks": [...]}
//   DELETE /v1/webhooks/{id}             204
//   GET    /v1/webhooks/{id}/deliveries  {"deliveries": [...]} newest first (?limit=, <= 200)
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "exec_jobs.h"
#include "json_body.h"
#include "router.h"
#include "webhooks.h"

namespace zerofarm::api {
namespace {

using json = nlohmann::json;

constexpr uint64_t kMaxJsonBody = 16 * 1024;

// Endpoint records hold their signing secret: never kept by a cache.
Response Json(unsigned status, const json& body) {
  return JsonResponse(status, body.dump(), "no-store");
}

// The operator's job limits (serve and proxy flags).
ExecJobBounds JobBounds(const ServerOptions& o) {
  ExecJobBounds b;
  b.defaults.memory_bytes = o.job_memory_bytes;
  b.defaults.timeout = o.job_timeout;
  b.caps.memory_bytes = o.job_max_memory_bytes;
  b.caps.timeout = o.job_max_timeout;
  b.caps.cpu_seconds = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::seconds>(o.job_max_timeout).count() * 64);
  return b;
}

}  // namespace

Router::Router(const ServerOptions& options, scheduler::VideoService& videos, TokenStore& tokens,
               HttpCounters& counters)
    : opt_(options),
      videos_(videos),
      tokens_(tokens),
      counters_(counters),
      signer_(videos.store()),
      objects_(videos.store()),
      jobs_(std::make_unique<ExecJobs>(videos, objects_, JobBounds(options))) {
  auto opened = Webhooks::Open(videos_.store());
  if (!opened.ok()) {
    std::fprintf(stderr, "zerofarm: webhooks are off: %s\n", opened.status().ToString().c_str());
    return;
  }
  webhooks_ = std::move(*opened);
  Webhooks* w = webhooks_.get();
  videos_.SetEventListener([w](const scheduler::VideoEvent& e) { w->OnEvent(e); });
}

Router::~Router() {
  videos_.SetEventListener(nullptr);  // before the webhooks it calls go away
}

Routed Router::RouteWebhooks(const Request& req, const std::string& tmpl,
                             const std::vector<std::string>& s,
                             const std::map<std::string, std::string>& query,
                             const std::string& tenant) {
  if (!webhooks_)
    return {ErrorResponse(503, ErrorCode::kUnavailable,
                          "webhooks are off on this server (see its log)"),
            nullptr};
  Webhooks& w = *webhooks_;
  const http::verb verb = req.method();
  for (const std::string& seg : s)
    if (!json::accept("\"" + seg + "\"") || seg.find('"') != std::string::npos)
      return {ErrorResponse(400, ErrorCode::kBadRequest, "the path is not valid UTF-8"), nullptr};
  if (tmpl == "/v1/webhooks" && verb == http::verb::post) {
    return {
        {},
        std::make_unique<JsonBodySink>(kMaxJsonBody, [&w, tenant](const json& body) -> Response {
          if (!body.contains("url") || !body["url"].is_string())
            return ErrorResponse(400, ErrorCode::kBadRequest, "\"url\" (a string) is required");
          std::vector<std::string> events;
          if (body.contains("events")) {
            if (!body["events"].is_array())
              return ErrorResponse(400, ErrorCode::kBadRequest, "\"events\" must be a list");
            for (const auto& e : body["events"]) {
              if (!e.is_string())
                return ErrorResponse(400, ErrorCode::kBadRequest, "\"events\" lists strings");
              events.push_back(e);
            }
          }
          auto created = w.Create(tenant, body["url"], events);
          if (!created.ok()) return FromStatus(created.status());
          Response r = Json(201, *created);
          r.Header("Location", "/v1/webhooks/" + (*created)["id"].get<std::string>());
          return r;
        })};
  }
  if (tmpl == "/v1/webhooks") return {Json(200, w.List(tenant)), nullptr};
  if (tmpl == "/v1/webhooks/{id}") {
    return {NoContentOr(w.Delete(tenant, s[2])), nullptr};
  }
  size_t limit = 50;
  if (auto it = query.find("limit"); it != query.end()) {
    const std::string& v = it->second;
    if (v.empty() || v.size() > 3 || v.find_first_not_of("0123456789") != std::string::npos ||
        std::stoul(v) == 0 || std::stoul(v) > 200)
      return {ErrorResponse(400, ErrorCode::kBadRequest, "limit must be 1-200"), nullptr};
    limit = std::stoul(v);
  }
  auto log = w.Deliveries(tenant, s[2], limit);
  if (!log.ok()) return {FromStatus(log.status()), nullptr};
  return {Json(200, *log), nullptr};
}

}  // namespace zerofarm::api
