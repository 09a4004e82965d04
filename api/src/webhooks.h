// Webhooks: per-tenant HTTP endpoints that hear of their videos' state changes
// ("video.ready", "video.failed", "video.deleted"), as Mux and Stripe deliver them: a POST of
// {"id", "type", "created_at", "data": {"video": ...}} signed with the endpoint's secret
// (header Zerofarm-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">), retried
// with exponential backoff until the endpoint answers 2xx or the attempts run out. Endpoints
// and every delivery (with its attempts) are kept in the store's metadata, so a restart
// resumes the deliveries still pending and the log stays readable through the API.
// Thread safety: every member may be called from many threads. OnEvent only queues.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "zerofarm/base/status.h"
#include "zerofarm/scheduler/video_service.h"
#include "zerofarm/storage/store.h"

namespace zerofarm::api {

struct WebhookOptions {
  int max_attempts = 8;                              // then the delivery is "failed"
  std::chrono::milliseconds first_retry{1000};       // doubled after each failed attempt
  std::chrono::milliseconds max_retry{10 * 60'000};  // the longest wait between attempts
  std::chrono::milliseconds timeout{10'000};         // connect + send + answer, per attempt
  size_t max_endpoints_per_tenant = 16;
  size_t kept_deliveries = 200;  // per endpoint; older finished ones are forgotten
};

class Webhooks {
 public:
  // Loads the endpoints and pending deliveries from `store` (which must outlive this) and
  // starts delivering.
  static Result<std::unique_ptr<Webhooks>> Open(storage::Store& store,
                                                const WebhookOptions& options = {});
  virtual ~Webhooks() = default;

  // A new endpoint for `tenant`: `url` is http://host[:port]/path; `events` names the event
  // types it wants (empty: all). The answer carries the signing secret, shown this once.
  // Errors: "invalid_argument" (URL, events), "too_many" (the tenant's limit).
  virtual Result<nlohmann::json> Create(const std::string& tenant, const std::string& url,
                                        const std::vector<std::string>& events) = 0;
  // {"webhooks": [...]} of the tenant, without secrets.
  virtual nlohmann::json List(const std::string& tenant) = 0;
  // Removes the endpoint and its delivery log. "not_found" for another tenant's id.
  virtual Status Delete(const std::string& tenant, const std::string& id) = 0;
  // {"deliveries": [...]}, newest first: event, video, status (pending|delivered|failed),
  // attempts, the last answer or error, when it was delivered or is tried next.
  virtual Result<nlohmann::json> Deliveries(const std::string& tenant, const std::string& id,
                                            size_t limit) = 0;
  // Queues the event for every endpoint of its tenant that wants it.
  virtual void OnEvent(const scheduler::VideoEvent& event) = 0;
};

// The event types an endpoint may ask for.
const std::vector<std::string>& WebhookEventTypes();

// "t=<unix>,v1=<hex>" for `body` sent at `unix_seconds` with `secret` (also used by tests).
std::string WebhookSignature(const std::string& secret, int64_t unix_seconds,
                             const std::string& body);

}  // namespace zerofarm::api
