// Router: maps a request head to a response, or to a BodySink that takes the request body as
// it streams (uploads). Runs on the handler pool (it may block on the store or the disk).
// Thread safety: Route may be called from many threads at once; a BodySink is used by one
// connection at a time.
#pragma once

#include <atomic>
#include <boost/beast/http.hpp>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "file_cache.h"
#include "objects.h"
#include "playback.h"
#include "zerofarm/api/server.h"
#include "zerofarm/base/unique_fd.h"

namespace zerofarm::api {

namespace http = boost::beast::http;
using Request = http::request<http::empty_body>;

// One piece of a response body: literal bytes, `length` bytes of `file` from `offset`, or the
// next `length` bytes of a store object's `reader` (already at its offset; read on the pool).
// `fd`, when set, is `file` opened when the answer was made (the file its ETag describes, even
// if a new one is renamed over the path meanwhile); pieces of one file may share it.
struct Piece {
  std::string literal;
  std::filesystem::path file;
  uint64_t offset = 0;
  uint64_t length = 0;
  std::shared_ptr<storage::ObjectReader> reader;
  std::shared_ptr<const UniqueFd> fd;
  uint64_t size() const { return file.empty() && !reader ? literal.size() : length; }
};

struct Response {
  unsigned status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::vector<Piece> body;
  bool head = false;   // HEAD: announce the length, send no body
  bool close = false;  // close the connection after sending
  uint64_t size() const;
  void Header(std::string name, std::string value) {
    headers.emplace_back(std::move(name), std::move(value));
  }
};

// The JSON error body of the API: {"error": {"code": ..., "message": ...}}.
Response ErrorResponse(unsigned status, ErrorCode code, const std::string& message);
// A JSON document `body` (one line) with `status`; "no-store" for bodies that hold a secret.
Response JsonResponse(unsigned status, const std::string& body,
                      const char* cache_control = "no-cache");
// The HTTP status of an error code: not_found/not_ready 404, forbidden/expired 403,
// conflict/too_many 409, invalid_argument/bad_multipart/bad_request/bad_container_name/
// bad_object_name 400, body_limit 413,
// timeout 408, too_many_uploads 429, unavailable 503, anything else 500.
unsigned StatusForCode(ErrorCode code);
// The error response of `s` (StatusForCode), with Retry-After on 503.
Response FromStatus(const Status& s);
// 204 No Content when `s` is ok (a DELETE that worked), else its error response (FromStatus).
Response NoContentOr(const Status& s);

class BodySink {
 public:
  virtual ~BodySink() = default;
  // The most bytes this body may have; more is answered 413.
  virtual uint64_t limit() const = 0;
  virtual Status Consume(std::span<const std::byte> bytes) = 0;
  // The body arrived whole.
  virtual Response Finish() = 0;
  // The body will not arrive whole (connection lost, timeout, limit, a Consume error):
  // keeps what can be kept and returns what to answer if the connection still allows.
  virtual Response Fail(const Status& why) = 0;
};

struct Routed {
  Response response;
  std::unique_ptr<BodySink> sink;  // when set, the body goes there and it answers
};

// Process-wide counters of the HTTP layer for /metrics.
struct HttpCounters {
  std::atomic<uint64_t> bytes_in{0};
  std::atomic<uint64_t> bytes_out{0};
  std::atomic<uint64_t> connections{0};
  std::mutex mu;
  std::map<unsigned, uint64_t> responses;      // by status
  std::map<std::string, uint64_t> rejections;  // by reason
  void CountResponse(unsigned status);
  void CountRejection(const std::string& reason);
};

class Webhooks;
class ExecJobs;

class Router {
 public:
  // Also opens the tenants' webhooks (webhooks.h) over the service's store and listens to the
  // service's video events for them until destroyed.
  Router(const ServerOptions& options, scheduler::VideoService& videos, TokenStore& tokens,
         HttpCounters& counters);
  ~Router();
  Router(const Router&) = delete;
  Router& operator=(const Router&) = delete;
  Routed Route(const Request& req);
  // Whether `req` is a playback read (a GET or HEAD of a playlist, segment, MP4 or thumbnail):
  // answered from memory and the file system without waiting on the store or a job, so the
  // connection's own thread may route it (no hand-off to the handler pool). These are the
  // GET and HEAD routes of the table behind a media token or a playback id.
  static bool IsPlaybackRead(const Request& req);

  // Every (method, path template) the router answers, in the order of its table (for the
  // OpenAPI check).
  static const std::vector<std::pair<std::string, std::string>>& Routes();

 private:
  friend class UploadSink;
  friend class PatchSink;
  friend class ObjectSink;

  // The route table (router.cc): every (method, path template) once, with what the caller must
  // show and the member function that answers it. Matching, the 405/Allow answers, Routes()
  // and IsPlaybackRead all read it.
  enum class Gate {
    kOpen,        // no token: the web UI, health and metrics
    kToken,       // the API token, as Authorization: Bearer
    kMediaToken,  // the API token, also as ?access_token= (a player that cannot set headers)
    kPlaybackId,  // no token: the playback id of the path grants the read
  };
  struct Call;
  using Handler = Routed (Router::*)(const Call&);
  struct Endpoint {
    std::string_view method;
    // Placeholders in braces; "{rung}.mp4" is a segment ending in .mp4; "{name}" ends a template
    // and takes the rest of the path, slashes included (an object name).
    std::string_view tmpl;
    Gate gate;
    Handler handler;  // null for OPTIONS, answered for every route before any handler
  };
  static const std::vector<Endpoint>& Table();
  // The template of the first route of the table whose shape `segs` has, "" when none; a path
  // outside /v1 with no route is a static web file, "static".
  static std::string_view TemplateOf(const std::vector<std::string>& segs);
  // Binds the parameters of the path to `call` and checks them with their validators: returns
  // the answer to an invalid {id} or {upload_id}. Invalid media names ({rung}, {file}) are
  // kept in call.bad_file, for the handler to answer once the video itself is found.
  static std::optional<Response> BindParams(Call& call);

  Routed RouteUnguarded(const Request& req);
  // The checks every route has before its handler, in this order: the caller's token (by the
  // route's gate), the tus version of the tus routes, the path's ids (BindParams).
  Routed Dispatch(const Endpoint& route, Call& call);
  // The handlers of the table.
  Routed GetIndex(const Call& c);
  Routed GetHealth(const Call& c);
  Routed GetMetrics(const Call& c);
  Routed GetReady(const Call& c);
  Routed ListVideos(const Call& c);
  Routed CreateVideo(const Call& c);
  Routed GetVideo(const Call& c);
  Routed DeleteVideo(const Call& c);
  Routed UpdateVideo(const Call& c);
  Routed GetVideoFile(const Call& c);
  Routed GetPlayFile(const Call& c);
  Routed ListSigningKeys(const Call& c);
  Routed CreateSigningKey(const Call& c);
  Routed RetireSigningKey(const Call& c);
  Routed CreateUpload(const Call& c);
  Routed GetUploadOffset(const Call& c);
  Routed PatchUpload(const Call& c);
  Routed DeleteUpload(const Call& c);
  Routed Webhook(const Call& c);
  Routed PutObject(const Call& c);
  Routed GetObject(const Call& c);
  Routed DeleteObject(const Call& c);
  Routed ListObjects(const Call& c);
  Routed CreateJob(const Call& c);
  Routed GetJob(const Call& c);
  Routed ListJobs(const Call& c);
  Routed CancelJob(const Call& c);
  // The tus upload {upload_id} when it is the caller's, else "not_found".
  Result<scheduler::VideoService::UploadState> FindOwnUpload(const Call& c);
  // /v1/webhooks... (webhook_routes.cc).
  Routed RouteWebhooks(const Request& req, const std::string& tmpl,
                       const std::vector<std::string>& segs,
                       const std::map<std::string, std::string>& query, const std::string& tenant);
  // The video object as the API answers it: the service's record plus its `playback` URLs
  // (signed for `expires_in` seconds when the policy is signed) under `base` ("" or
  // "http://host:port", see BaseUrl).
  std::string Decorate(const std::string& base, const std::string& tenant,
                       const scheduler::Video& video, int64_t expires_in);
  std::string DecorateList(const std::string& base, const std::string& tenant,
                           const scheduler::VideoPage& page);
  Response ServeFile(const Request& req, const std::filesystem::path& path,
                     const std::string& cache_control);
  Response Ready();
  Response ServePlaylist(const Request& req, const std::filesystem::path& path,
                         const std::map<std::string, std::string>& query);
  Response ServeStatic(const Request& req, const std::vector<std::string>& segs);
  Response Metrics();
  std::optional<std::string> Tenant(const Request& req,
                                    const std::map<std::string, std::string>& query,
                                    bool allow_query_token);
  bool LockUpload(const std::string& id);
  void UnlockUpload(const std::string& id);

  const ServerOptions& opt_;
  scheduler::VideoService& videos_;
  TokenStore& tokens_;
  HttpCounters& counters_;
  PlaybackSigner signer_;
  SmallFileCache small_files_{64 * 1024, 32 * 1024 * 1024};  // playlists, thumbnails
  std::mutex uploads_mu_;
  std::set<std::string> busy_uploads_;  // tus uploads with a PATCH in flight
  std::unique_ptr<Webhooks> webhooks_;  // null when its store could not be read (answers 503)
  TenantObjects objects_;               // /v1/objects, over the service's store
  std::unique_ptr<ExecJobs> jobs_;      // /v1/jobs
};

}  // namespace zerofarm::api
