// Router (router.h): every route of the API.
#include "router.h"

#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>

#include "http_util.h"
#include "json_body.h"
#include "zerofarm/base/process_memory.h"
#include "zerofarm/transcode/ladder.h"

namespace zerofarm::api {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// Cache rules per kind of access. Media of a public video may sit in shared caches for good
// (its URLs never change meaning); anything fetched with the API token or a signed playback id
// stays in the browser's own cache (private), never in a shared one.
constexpr const char* kImmutable = "public, max-age=31536000, immutable";
constexpr const char* kPrivateMedia = "private, max-age=86400";
constexpr const char* kPublicPlaylist = "public, max-age=60";
constexpr const char* kPrivatePlaylist = "private, no-cache";
constexpr const char* kGrowingPlaylist = "public, no-cache";
constexpr const char* kNoCache = "no-cache";

// Bounds of the free-form fields of a video (bytes of their JSON / text).
constexpr size_t kMaxMetadataBytes = 4096;
constexpr size_t kMaxMetadataKeys = 64;
constexpr size_t kMaxPassthroughBytes = 1024;
// Lifetimes of signed playback ids: the default, and the most one may ask for.
constexpr int64_t kDefaultPlaybackSeconds = 3600;
constexpr int64_t kMaxPlaybackSeconds = 7 * 24 * 3600;

// tus expiration: when an unfinished upload is removed.
void AddUploadExpires(Response& r, const std::optional<int64_t>& expires) {
  if (expires) r.Header("Upload-Expires", HttpDate(*expires));
}

bool IsRung(std::string_view s) {
  if (s == "audio") return true;
  if (s.size() < 2 || s.size() > 6 || s.back() != 'p') return false;
  return std::all_of(s.begin(), s.end() - 1, [](char c) { return c >= '0' && c <= '9'; });
}

bool IsMediaFile(std::string_view s) {
  size_t dot = s.rfind('.');
  if (dot == std::string_view::npos || dot == 0 || dot > 40) return false;
  std::string_view ext = s.substr(dot + 1);
  if (ext != "ts" && ext != "m3u8" && ext != "m4s" && ext != "aac") return false;
  return std::all_of(s.begin(), s.begin() + static_cast<long>(dot), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  });
}

bool IsStaticName(std::string_view s) {
  if (s.empty() || s.front() == '.' || s.size() > 128) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
  });
}

std::string Hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "%llx", static_cast<unsigned long long>(v));
  return buf;
}

std::string SafeFilename(std::string name) {
  if (size_t slash = name.find_last_of("/\\"); slash != std::string::npos) name.erase(0, slash + 1);
  std::string out;
  for (char c : name)
    if (static_cast<unsigned char>(c) >= 0x20 && c != 0x7f) out += c;
  if (out.size() > 200) {  // cut at a character boundary: the name stays valid UTF-8
    size_t cut = 200;
    while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xc0) == 0x80) --cut;
    out.resize(cut);
  }
  return out;
}

// Free-form metadata: a JSON object of strings, bounded in keys and bytes.
Status CheckMetadata(const json& m, std::map<std::string, std::string>& out) {
  if (!m.is_object())
    return Status::Error(ErrorCode::kInvalidArgument, "metadata is a JSON object of strings");
  if (m.size() > kMaxMetadataKeys || m.dump().size() > kMaxMetadataBytes)
    return Status::Error(ErrorCode::kInvalidArgument,
                         "metadata holds more than " + std::to_string(kMaxMetadataKeys) +
                             " keys or " + std::to_string(kMaxMetadataBytes) + " bytes");
  out.clear();
  for (const auto& [k, val] : m.items()) {
    if (!val.is_string())
      return Status::Error(ErrorCode::kInvalidArgument,
                           "metadata value of \"" + k + "\" is not a string");
    out[k] = val.get<std::string>();
  }
  return Status::Ok();
}

Status CheckOptions(const std::map<std::string, std::string>& query, scheduler::NewVideo& v) {
  for (const char* key : {"ladder", "preset", "filename"})
    if (auto it = query.find(key); it != query.end() && !IsValidUtf8(it->second))
      return Status::Error(ErrorCode::kInvalidArgument, std::string(key) + " is not valid UTF-8");
  if (auto it = query.find("ladder"); it != query.end() && !it->second.empty()) {
    auto ladder = transcode::ParseLadder(it->second);
    if (!ladder.ok()) return Status::Error(ErrorCode::kInvalidArgument, ladder.status().message());
    v.ladder = *ladder;
  }
  if (auto it = query.find("preset"); it != query.end() && !it->second.empty()) {
    if (!transcode::IsX264Preset(it->second))
      return Status::Error(ErrorCode::kInvalidArgument, "unknown x264 preset '" + it->second + "'");
    v.preset = it->second;
  }
  if (auto it = query.find("filename"); it != query.end()) v.filename = SafeFilename(it->second);
  if (auto it = query.find("playback_policy"); it != query.end()) {
    if (it->second != "public" && it->second != "signed")
      return Status::Error(ErrorCode::kInvalidArgument,
                           "playback_policy is \"public\" or \"signed\"");
    v.playback_policy = it->second;
  }
  if (auto it = query.find("passthrough"); it != query.end()) {
    if (it->second.size() > kMaxPassthroughBytes)
      return Status::Error(
          ErrorCode::kInvalidArgument,
          "passthrough is longer than " + std::to_string(kMaxPassthroughBytes) + " bytes");
    v.passthrough = it->second;
  }
  if (auto it = query.find("metadata"); it != query.end()) {
    json m = ParseBoundedJson(it->second);
    ZF_RETURN_IF_ERROR(CheckMetadata(m, v.metadata));
  }
  return Status::Ok();
}

// Every route the server answers, once: its template (placeholders in braces; "{rung}.mp4"
// matches a segment that ends in ".mp4") and its methods. TemplateOf and Routes() both read it.
struct RouteSpec {
  std::string_view tmpl;
  std::vector<std::string_view> methods;
  std::vector<std::string_view> segments;  // the template split on '/'
};

const std::vector<RouteSpec>& RouteTable() {
  static const std::vector<RouteSpec> kTable = [] {
    std::vector<RouteSpec> t = {
        {"/", {"GET", "HEAD"}, {}},
        {"/healthz", {"GET", "HEAD"}, {}},
        {"/metrics", {"GET", "HEAD"}, {}},
        {"/readyz", {"GET", "HEAD"}, {}},
        {"/v1/videos", {"GET", "HEAD", "POST"}, {}},
        {"/v1/videos/{id}", {"GET", "HEAD", "DELETE", "PATCH"}, {}},
        {"/v1/videos/{id}/hls/master.m3u8", {"GET", "HEAD"}, {}},
        {"/v1/videos/{id}/hls/{rung}/{file}", {"GET", "HEAD"}, {}},
        {"/v1/videos/{id}/mp4/{rung}.mp4", {"GET", "HEAD"}, {}},
        {"/v1/videos/{id}/thumbnail.jpg", {"GET", "HEAD"}, {}},
        {"/v1/play/{playback_id}/hls/master.m3u8", {"GET", "HEAD"}, {}},
        {"/v1/play/{playback_id}/hls/{rung}/{file}", {"GET", "HEAD"}, {}},
        {"/v1/play/{playback_id}/mp4/{rung}.mp4", {"GET", "HEAD"}, {}},
        {"/v1/play/{playback_id}/thumbnail.jpg", {"GET", "HEAD"}, {}},
        {"/v1/signing-keys", {"GET", "POST"}, {}},
        {"/v1/signing-keys/{key_id}", {"DELETE"}, {}},
        {"/v1/uploads", {"OPTIONS", "POST"}, {}},
        {"/v1/uploads/{upload_id}", {"HEAD", "PATCH", "DELETE"}, {}},
        {"/v1/webhooks", {"GET", "POST"}, {}},
        {"/v1/webhooks/{id}", {"DELETE"}, {}},
        {"/v1/webhooks/{id}/deliveries", {"GET"}, {}},
    };
    for (RouteSpec& r : t) {
      std::string_view rest = r.tmpl.substr(1);
      while (!rest.empty()) {
        const size_t slash = rest.find('/');
        r.segments.push_back(rest.substr(0, slash));
        rest = slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);
      }
    }
    return t;
  }();
  return kTable;
}

bool SegmentMatches(std::string_view pattern, const std::string& segment) {
  if (pattern.empty() || pattern.front() != '{') return pattern == segment;
  const std::string_view suffix = pattern.substr(pattern.find('}') + 1);
  return segment.size() > suffix.size() && segment.ends_with(suffix);
}

// The route template a path has, "" when none; static web files are "static".
std::string TemplateOf(const std::vector<std::string>& s) {
  for (const RouteSpec& r : RouteTable()) {
    if (r.segments.size() != s.size()) continue;
    bool match = true;
    for (size_t i = 0; i < s.size() && match; ++i) match = SegmentMatches(r.segments[i], s[i]);
    if (match) return std::string(r.tmpl);
  }
  return !s.empty() && s[0] != "v1" ? "static" : "";
}

// "http://host:port" from the request's Host (and X-Forwarded-Proto), "" without a usable one:
// playback URLs are then absolute, ready to hand to a player elsewhere.
std::string BaseUrl(const Request& req) {
  std::string_view host = req[http::field::host];
  if (host.empty() || host.size() > 255) return "";
  for (char c : host)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
          c == '-' || c == ':' || c == '[' || c == ']'))
      return "";
  const bool https = req["X-Forwarded-Proto"] == "https";
  return std::string(https ? "https://" : "http://") + std::string(host);
}

int64_t NowSeconds() { return static_cast<int64_t>(std::time(nullptr)); }

std::string IsoTime(int64_t t) {
  std::time_t tt = static_cast<std::time_t>(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace

uint64_t Response::size() const {
  uint64_t n = 0;
  for (const auto& p : body) n += p.size();
  return n;
}

Response JsonResponse(unsigned status, const std::string& body, const char* cache_control) {
  Response r;
  r.status = status;
  r.Header("Content-Type", "application/json");
  r.Header("Cache-Control", cache_control);
  r.body.push_back({body + "\n", {}, 0, 0});
  return r;
}

unsigned StatusForCode(ErrorCode code) {
  if (code == ErrorCode::kNotFound || code == ErrorCode::kNotReady) return 404;
  if (code == ErrorCode::kForbidden || code == ErrorCode::kExpired) return 403;
  if (code == ErrorCode::kConflict || code == ErrorCode::kTooMany) return 409;
  if (code == ErrorCode::kInvalidArgument || code == ErrorCode::kBadMultipart ||
      code == ErrorCode::kBadRequest)
    return 400;
  if (code == ErrorCode::kBodyLimit) return 413;
  if (code == ErrorCode::kTimeout) return 408;
  if (code == ErrorCode::kTooManyUploads) return 429;
  if (code == ErrorCode::kUnavailable) return 503;
  return 500;
}

Response FromStatus(const Status& s) {
  Response r = ErrorResponse(StatusForCode(s.code()), s.code(), s.message());
  if (r.status == 503) r.Header("Retry-After", "5");
  return r;
}

Response ErrorResponse(unsigned status, ErrorCode code, const std::string& message) {
  return JsonResponse(status, ErrorJson(ErrorCodeName(code), message));
}

void HttpCounters::CountResponse(unsigned status) {
  std::lock_guard lock(mu);
  ++responses[status];
}
void HttpCounters::CountRejection(const std::string& reason) {
  std::lock_guard lock(mu);
  ++rejections[reason];
}

const std::vector<std::pair<std::string, std::string>>& Router::Routes() {
  static const std::vector<std::pair<std::string, std::string>> kRoutes = [] {
    std::vector<std::pair<std::string, std::string>> routes;
    for (const RouteSpec& r : RouteTable())
      for (std::string_view m : r.methods) routes.emplace_back(m, r.tmpl);
    return routes;
  }();
  return kRoutes;
}

// How long the answer to a finished one-shot upload waits for the source to be probed.
constexpr std::chrono::milliseconds kProbeWait{5000};

// A one-shot upload: POST /v1/videos with a raw or multipart body.
class UploadSink final : public BodySink {
 public:
  UploadSink(Router& r, scheduler::NewVideo v, std::optional<MultipartReader> multipart,
             uint64_t limit, std::string base)
      : r_(r),
        v_(std::move(v)),
        multipart_(std::move(multipart)),
        limit_(limit),
        base_(std::move(base)) {}
  uint64_t limit() const override { return limit_; }

  Status Consume(std::span<const std::byte> bytes) override {
    if (!multipart_) {
      ZF_RETURN_IF_ERROR(EnsureCreated());
      return r_.videos_.Append(id_, bytes);
    }
    return multipart_->Feed(
        bytes, [this](std::string_view filename, std::span<const std::byte> data) -> Status {
          ZF_RETURN_IF_ERROR(CheckPartFilename(filename));
          if (v_.filename.empty()) v_.filename = SafeFilename(std::string(filename));
          ZF_RETURN_IF_ERROR(EnsureCreated());
          return r_.videos_.Append(id_, data);
        });
  }

  Response Finish() override {
    if (multipart_ && !multipart_->file_done()) {
      if (!id_.empty())
        r_.videos_.AbortUpload(id_, ErrorCode::kBadRequest,
                               "the multipart body ended inside the file");
      return ErrorResponse(400, ErrorCode::kBadMultipart,
                           "the multipart/form-data body has no complete \"file\" part");
    }
    if (multipart_)
      if (Status s = CheckPartFilename(multipart_->filename()); !s.ok()) return FromStatus(s);
    if (Status s = EnsureCreated(); !s.ok()) return FromStatus(s);
    auto committed = r_.videos_.Commit(id_, /*final=*/true);
    if (!committed.ok()) return FromStatus(committed.status());
    // The whole body is here: the answer says "failed" at once for one that is not media.
    r_.videos_.AwaitProbe(id_, kProbeWait);
    auto video = r_.videos_.Get(v_.tenant, id_);
    if (!video.ok()) return FromStatus(video.status());
    Response resp =
        JsonResponse(201, r_.Decorate(base_, v_.tenant, *video, kDefaultPlaybackSeconds));
    resp.Header("Location", "/v1/videos/" + id_);
    return resp;
  }

  Response Fail(const Status& why) override {
    if (!id_.empty()) {
      if (why.code() == ErrorCode::kBodyLimit)
        r_.videos_.AbortUpload(id_, ErrorCode::kTooLarge,
                               "the upload passed the server's size limit");
      else
        r_.videos_.AbortUpload(id_, ErrorCode::kUploadIncomplete,
                               "the upload stopped before its end (" + why.message() + ")");
    }
    Response resp = FromStatus(why);
    resp.close = true;
    return resp;
  }

 private:
  static Status CheckPartFilename(std::string_view filename) {
    if (IsValidUtf8(filename)) return Status::Ok();
    return Status::Error(ErrorCode::kInvalidArgument, "the multipart filename is not valid UTF-8");
  }
  Status EnsureCreated() {
    if (!id_.empty()) return Status::Ok();
    auto created = r_.videos_.Create(v_);
    if (!created.ok()) return created.status();
    id_ = json::parse(*created).at("id").get<std::string>();
    return Status::Ok();
  }

  Router& r_;
  scheduler::NewVideo v_;
  std::optional<MultipartReader> multipart_;
  uint64_t limit_;
  std::string base_;
  std::string id_;
};

// A tus PATCH: the bytes from Upload-Offset on.
class PatchSink final : public BodySink {
 public:
  PatchSink(Router& r, scheduler::VideoService::UploadState st, std::string upload_id)
      : r_(r), st_(std::move(st)), upload_id_(std::move(upload_id)) {}
  ~PatchSink() override { r_.UnlockUpload(upload_id_); }
  uint64_t limit() const override { return st_.length ? *st_.length - st_.offset : 0; }

  Status Consume(std::span<const std::byte> bytes) override {
    return r_.videos_.Append(st_.video_id, bytes);
  }
  Response Finish() override {
    auto offset = r_.videos_.Commit(st_.video_id, false);
    if (!offset.ok()) return Tus(FromStatus(offset.status()));
    if (st_.length && *offset == *st_.length) {
      offset = r_.videos_.Commit(st_.video_id, true);
      if (!offset.ok()) return Tus(FromStatus(offset.status()));
    }
    Response resp;
    resp.status = 204;
    resp.Header("Upload-Offset", std::to_string(*offset));
    if (auto st = r_.videos_.FindUpload(upload_id_); st.ok()) AddUploadExpires(resp, st->expires);
    return Tus(std::move(resp));
  }
  Response Fail(const Status& why) override {
    // tus keeps the bytes that arrived: the client asks HEAD and resumes from there.
    (void)r_.videos_.Commit(st_.video_id, false);
    Response resp = Tus(FromStatus(why));
    resp.close = true;
    return resp;
  }

 private:
  static Response Tus(Response r) {
    r.Header("Tus-Resumable", "1.0.0");
    return r;
  }
  Router& r_;
  scheduler::VideoService::UploadState st_;
  std::string upload_id_;
};

const std::vector<std::pair<std::string, std::string>>& Server::Routes() {
  return Router::Routes();
}

bool Router::LockUpload(const std::string& id) {
  std::lock_guard lock(uploads_mu_);
  return busy_uploads_.insert(id).second;
}
void Router::UnlockUpload(const std::string& id) {
  std::lock_guard lock(uploads_mu_);
  busy_uploads_.erase(id);
}

std::optional<std::string> Router::Tenant(const Request& req,
                                          const std::map<std::string, std::string>& query,
                                          bool allow_query_token) {
  std::string_view auth = req[http::field::authorization];
  if (auth.size() > 7 && (auth.substr(0, 7) == "Bearer " || auth.substr(0, 7) == "bearer "))
    return tokens_.Lookup(auth.substr(7));
  if (allow_query_token)
    if (auto it = query.find("access_token"); it != query.end()) return tokens_.Lookup(it->second);
  return std::nullopt;
}

bool Router::IsPlaybackRead(const Request& req) {
  if (req.method() != http::verb::get && req.method() != http::verb::head) return false;
  std::string_view t = req.target();
  t = t.substr(0, t.find('?'));
  if (t.starts_with("/v1/play/")) return true;
  if (!t.starts_with("/v1/videos/")) return false;
  return t.find("/hls/") != std::string_view::npos || t.find("/mp4/") != std::string_view::npos ||
         t.ends_with("/thumbnail.jpg");
}

Routed Router::Route(const Request& req) {
  try {
    return RouteUnguarded(req);
  } catch (const std::exception& e) {
    return {ErrorResponse(500, ErrorCode::kInternal, std::string("internal error: ") + e.what()),
            nullptr};
  }
}

Routed Router::RouteUnguarded(const Request& req) {
  std::vector<std::string> segs;
  std::string raw_query;
  if (!SplitTarget(req.target(), segs, raw_query))
    return {ErrorResponse(400, ErrorCode::kBadPath, "the request path is not acceptable"), nullptr};
  for (const auto& seg : segs)
    if (!IsValidUtf8(seg))
      return {ErrorResponse(400, ErrorCode::kBadPath, "the request path is not valid UTF-8"),
              nullptr};
  const auto query = ParseQuery(raw_query);
  for (const auto& [key, value] : query)
    if (!IsValidUtf8(key) || !IsValidUtf8(value))
      return {
          ErrorResponse(400, ErrorCode::kInvalidArgument, "the query string is not valid UTF-8"),
          nullptr};
  const std::string tmpl = TemplateOf(segs);
  std::string method(req.method_string());
  const bool head = req.method() == http::verb::head;
  const bool tus = tmpl.starts_with("/v1/uploads");

  if (tmpl.empty())
    return {ErrorResponse(404, ErrorCode::kRouteNotFound, "no such route"), nullptr};
  if (tmpl == "static") {
    if (req.method() != http::verb::get && !head) {
      Response r = ErrorResponse(405, ErrorCode::kMethodNotAllowed, "only GET and HEAD here");
      r.Header("Allow", "GET, HEAD, OPTIONS");
      return {std::move(r), nullptr};
    }
    return {ServeStatic(req, segs), nullptr};
  }
  std::string allow;
  for (const auto& [m, t] : Routes())
    if (t == tmpl) allow += (allow.empty() ? "" : ", ") + m;
  allow += ", OPTIONS";
  if (req.method() == http::verb::options) {  // CORS preflight, tus discovery
    Response r;
    r.status = 204;
    r.Header("Allow", allow);
    r.Header("Access-Control-Allow-Methods", allow);
    r.Header("Access-Control-Max-Age", "600");
    if (tus) {
      r.Header("Tus-Resumable", "1.0.0");
      r.Header("Tus-Version", "1.0.0");
      r.Header("Tus-Extension", "creation,termination,expiration");
      r.Header("Tus-Max-Size", std::to_string(opt_.max_upload_bytes));
    }
    return {std::move(r), nullptr};
  }
  bool allowed = false;
  for (const auto& [m, t] : Routes()) allowed |= t == tmpl && m == method;
  if (!allowed) {
    Response r = ErrorResponse(405, ErrorCode::kMethodNotAllowed, method + " is not allowed here");
    r.Header("Allow", allow);
    return {std::move(r), nullptr};
  }

  Routed out;
  if (tmpl == "/") {
    out.response = ServeStatic(req, segs);
  } else if (tmpl == "/healthz") {
    // A proxy without a quorum of storage nodes cannot take writes (ClusterClient).
    out.response = videos_.Metrics().writes_possible
                       ? JsonResponse(200, R"({"status":"ok"})")
                       : ErrorResponse(503, ErrorCode::kNoQuorum,
                                       "too few storage nodes answer to store a write");
  } else if (tmpl == "/metrics") {
    out.response = Metrics();
  } else if (tmpl == "/readyz") {
    out.response = Ready();
  } else if (tmpl.starts_with("/v1/play/")) {
    out = RoutePlay(req, segs);
  } else {
    out = RouteV1(req, segs, query);
  }
  if (tus) {
    out.response.Header("Tus-Resumable", "1.0.0");
  }
  if (head) out.response.head = true;
  return out;
}

Routed Router::RouteV1(const Request& req, const std::vector<std::string>& s,
                       const std::map<std::string, std::string>& query) {
  const std::string tmpl = TemplateOf(s);
  const bool playback = tmpl.find("/hls/") != std::string::npos ||
                        tmpl.find("/mp4/") != std::string::npos || tmpl.ends_with(".jpg");
  const bool read = req.method() == http::verb::get || req.method() == http::verb::head;
  auto tenant = Tenant(req, query, playback && read);
  if (!tenant) {
    Response r = ErrorResponse(401, ErrorCode::kUnauthorized, "a valid bearer token is required");
    r.Header("WWW-Authenticate", "Bearer realm=\"zerofarm\"");
    return {std::move(r), nullptr};
  }
  const http::verb verb = req.method();
  if (tmpl.starts_with("/v1/webhooks")) return RouteWebhooks(req, tmpl, s, query, *tenant);

  if (tmpl == "/v1/videos" && verb == http::verb::post) {
    scheduler::NewVideo v;
    v.tenant = *tenant;
    if (Status s2 = CheckOptions(query, v); !s2.ok()) return {FromStatus(s2), nullptr};
    uint64_t declared = 0;
    const bool has_length = ParseU64(req[http::field::content_length], declared);
    if (has_length && declared > opt_.max_upload_bytes) {
      Response r = ErrorResponse(
          413, ErrorCode::kTooLarge,
          "the upload is larger than " + std::to_string(opt_.max_upload_bytes) + " bytes");
      r.close = true;
      return {std::move(r), nullptr};
    }
    std::optional<MultipartReader> multipart;
    std::string_view ct = req[http::field::content_type];
    if (ct.substr(0, 10) == "multipart/") {
      multipart = MultipartReader::ForContentType(ct);
      if (!multipart)
        return {
            ErrorResponse(400, ErrorCode::kBadMultipart, "multipart/form-data needs a boundary"),
            nullptr};
    } else if (has_length) {
      v.length = declared;
    }
    return {{},
            std::make_unique<UploadSink>(*this, std::move(v), std::move(multipart),
                                         opt_.max_upload_bytes, BaseUrl(req))};
  }
  if (tmpl == "/v1/videos") {
    scheduler::ListOptions page;
    if (auto it = query.find("limit"); it != query.end()) {
      uint64_t limit = 0;
      if (!ParseU64(it->second, limit) || limit < 1 || limit > 1000)
        return {ErrorResponse(400, ErrorCode::kInvalidArgument, "limit is a number from 1 to 1000"),
                nullptr};
      page.limit = static_cast<size_t>(limit);
    }
    if (auto it = query.find("cursor"); it != query.end()) page.cursor = it->second;
    auto list = videos_.List(*tenant, page);
    if (!list.ok()) return {FromStatus(list.status()), nullptr};
    return {JsonResponse(200, DecorateList(BaseUrl(req), *tenant, *list)), nullptr};
  }
  if (tmpl.starts_with("/v1/signing-keys")) return RouteSigningKeys(req, s, *tenant);
  if (tmpl == "/v1/uploads") {  // tus creation
    if (req["Tus-Resumable"] != "1.0.0") {
      Response r = ErrorResponse(412, ErrorCode::kTusVersion, "Tus-Resumable: 1.0.0 is required");
      r.Header("Tus-Version", "1.0.0");
      return {std::move(r), nullptr};
    }
    uint64_t length = 0;
    if (!ParseU64(req["Upload-Length"], length))
      return {ErrorResponse(400, ErrorCode::kBadRequest,
                            "Upload-Length is required (no deferred length)"),
              nullptr};
    if (length > opt_.max_upload_bytes)
      return {ErrorResponse(413, ErrorCode::kTooLarge,
                            "Upload-Length is above " + std::to_string(opt_.max_upload_bytes)),
              nullptr};
    auto parsed_meta = ParseUploadMetadata(req["Upload-Metadata"]);
    if (!parsed_meta.ok()) return {FromStatus(parsed_meta.status()), nullptr};
    auto& meta = *parsed_meta;
    scheduler::NewVideo v;
    v.tenant = *tenant;
    v.length = length;
    v.resumable = true;
    std::map<std::string, std::string> opts;
    for (const char* k :
         {"ladder", "preset", "filename", "playback_policy", "metadata", "passthrough"})
      if (meta.count(k)) opts[k] = meta[k];
    if (Status s2 = CheckOptions(opts, v); !s2.ok()) return {FromStatus(s2), nullptr};
    if (Status s2 = CheckOptions(query, v); !s2.ok()) return {FromStatus(s2), nullptr};
    auto created = videos_.Create(v);
    if (!created.ok()) return {FromStatus(created.status()), nullptr};
    json video = json::parse(*created);
    const std::string id = video["id"], uid = video["upload_id"];
    if (length == 0) {
      auto c = videos_.Commit(id, true);
      if (!c.ok()) return {FromStatus(c.status()), nullptr};
    }
    Response r = JsonResponse(201, video.dump());
    r.Header("Location", "/v1/uploads/" + uid);
    r.Header("Zerofarm-Video-Id", id);
    r.Header("Upload-Offset", "0");
    if (auto st = videos_.FindUpload(uid); st.ok()) AddUploadExpires(r, st->expires);
    return {std::move(r), nullptr};
  }
  if (tmpl == "/v1/uploads/{upload_id}") {
    if (verb != http::verb::head && req["Tus-Resumable"] != "1.0.0") {
      Response r = ErrorResponse(412, ErrorCode::kTusVersion, "Tus-Resumable: 1.0.0 is required");
      r.Header("Tus-Version", "1.0.0");
      return {std::move(r), nullptr};
    }
    const std::string& uid = s[2];
    auto st = scheduler::IsUploadId(uid)
                  ? videos_.FindUpload(uid)
                  : Result<scheduler::VideoService::UploadState>(
                        Status::Error(ErrorCode::kNotFound, "no upload " + uid));
    if (!st.ok() || st->tenant != *tenant)
      return {ErrorResponse(404, ErrorCode::kNotFound, "no upload " + uid), nullptr};
    if (verb == http::verb::head) {
      Response r;
      r.Header("Upload-Offset", std::to_string(st->offset));
      if (st->length) r.Header("Upload-Length", std::to_string(*st->length));
      AddUploadExpires(r, st->expires);
      r.Header("Cache-Control", "no-store");
      return {std::move(r), nullptr};
    }
    if (verb == http::verb::delete_) {
      Status d = videos_.Delete(*tenant, st->video_id);
      if (!d.ok()) return {FromStatus(d), nullptr};
      Response r;
      r.status = 204;
      return {std::move(r), nullptr};
    }
    // PATCH
    if (req[http::field::content_type] != "application/offset+octet-stream")
      return {ErrorResponse(415, ErrorCode::kUnsupportedMediaType,
                            "PATCH needs Content-Type: application/offset+octet-stream"),
              nullptr};
    uint64_t offset = 0;
    if (!ParseU64(req["Upload-Offset"], offset))
      return {ErrorResponse(400, ErrorCode::kBadRequest, "Upload-Offset is required"), nullptr};
    if (offset != st->offset || st->ended) {
      Response r = ErrorResponse(409, ErrorCode::kOffsetMismatch,
                                 "the upload is at offset " + std::to_string(st->offset));
      r.Header("Upload-Offset", std::to_string(st->offset));
      return {std::move(r), nullptr};
    }
    uint64_t declared = 0;
    if (ParseU64(req[http::field::content_length], declared) && st->length &&
        declared > *st->length - offset) {
      Response r = ErrorResponse(413, ErrorCode::kTooLarge, "the PATCH passes Upload-Length");
      r.close = true;
      return {std::move(r), nullptr};
    }
    if (!LockUpload(uid))
      return {
          ErrorResponse(409, ErrorCode::kUploadBusy, "another PATCH of this upload is in progress"),
          nullptr};
    return {{}, std::make_unique<PatchSink>(*this, *st, uid)};
  }

  // /v1/videos/{id}...
  const std::string& id = s[2];
  if (!scheduler::IsVideoId(id))
    return {ErrorResponse(404, ErrorCode::kNotFound, "no video " + id), nullptr};
  if (tmpl == "/v1/videos/{id}") {
    if (verb == http::verb::delete_) {
      Status d = videos_.Delete(*tenant, id);
      if (!d.ok()) return {FromStatus(d), nullptr};
      Response r;
      r.status = 204;
      return {std::move(r), nullptr};
    }
    if (verb == http::verb::patch) {
      const std::string t = *tenant, base = BaseUrl(req);
      auto handle = [this, t, id, base](const json& body) -> Response {
        scheduler::VideoUpdate u;
        for (const auto& [k, val] : body.items()) {
          if (k == "playback_policy") {
            if (val != "public" && val != "signed")
              return ErrorResponse(400, ErrorCode::kInvalidArgument,
                                   "playback_policy is \"public\" or \"signed\"");
            u.playback_policy = val.get<std::string>();
          } else if (k == "metadata") {
            std::map<std::string, std::string> m;
            if (Status st = CheckMetadata(val, m); !st.ok()) return FromStatus(st);
            u.metadata = std::move(m);
          } else if (k == "passthrough") {
            if (!val.is_string() || val.get<std::string>().size() > kMaxPassthroughBytes)
              return ErrorResponse(400, ErrorCode::kInvalidArgument,
                                   "passthrough is a string of at most " +
                                       std::to_string(kMaxPassthroughBytes) + " bytes");
            u.passthrough = val.get<std::string>();
          } else {
            return ErrorResponse(400, ErrorCode::kInvalidArgument,
                                 "\"" + k +
                                     "\" cannot be changed (playback_policy, metadata, "
                                     "passthrough can)");
          }
        }
        auto updated = videos_.Update(t, id, u);
        if (!updated.ok()) return FromStatus(updated.status());
        return JsonResponse(200, Decorate(base, t, *updated, kDefaultPlaybackSeconds));
      };
      return {{}, std::make_unique<JsonBodySink>(opt_.max_small_body_bytes, handle)};
    }
    int64_t expires_in = kDefaultPlaybackSeconds;
    if (auto it = query.find("expires_in"); it != query.end()) {
      uint64_t e = 0;
      if (!ParseU64(it->second, e) || e < 1 || e > static_cast<uint64_t>(kMaxPlaybackSeconds))
        return {ErrorResponse(400, ErrorCode::kInvalidArgument,
                              "expires_in is a number of seconds from 1 to " +
                                  std::to_string(kMaxPlaybackSeconds)),
                nullptr};
      expires_in = static_cast<int64_t>(e);
    }
    auto v = videos_.Get(*tenant, id);
    if (!v.ok()) return {FromStatus(v.status()), nullptr};
    return {JsonResponse(200, Decorate(BaseUrl(req), *tenant, *v, expires_in)), nullptr};
  }
  auto dir = videos_.OutputDir(*tenant, id);
  if (!dir.ok()) return {FromStatus(dir.status()), nullptr};
  if (tmpl == "/v1/videos/{id}/thumbnail.jpg")
    return {ServeFile(req, *dir / "thumbnail.jpg", kPrivateMedia), nullptr};
  if (tmpl == "/v1/videos/{id}/hls/master.m3u8")
    return {ServePlaylist(req, *dir / "master.m3u8", query), nullptr};
  if (tmpl == "/v1/videos/{id}/mp4/{rung}.mp4") {
    const std::string rung = s[4].substr(0, s[4].size() - 4);
    if (!IsRung(rung) || rung == "audio")
      return {ErrorResponse(404, ErrorCode::kNotFound, "no rendition " + rung), nullptr};
    return {ServeFile(req, *dir / (rung + ".mp4"), kPrivateMedia), nullptr};
  }
  // hls/{rung}/{file}
  if (!IsRung(s[4]) || !IsMediaFile(s[5]))
    return {ErrorResponse(404, ErrorCode::kNotFound, "no such file"), nullptr};
  const bool playlist = s[5].ends_with(".m3u8");
  if (playlist) return {ServePlaylist(req, *dir / s[4] / s[5], query), nullptr};
  return {ServeFile(req, *dir / s[4] / s[5], kPrivateMedia), nullptr};
}

// /v1/play/{playback_id}/...: no API token. The playback id is the video id of a public video,
// or a signed grant (playback.h) whose scope covers the file.
Routed Router::RoutePlay(const Request& req, const std::vector<std::string>& s) {
  const std::string& pid = s[2];
  std::string video_id = pid;
  std::optional<PlaybackGrant> grant;
  if (pid.find('.') != std::string::npos) {
    auto g = signer_.Verify(pid, NowSeconds());
    if (!g.ok()) return {FromStatus(g.status()), nullptr};
    grant = *g;
    video_id = grant->video_id;
  }
  if (!scheduler::IsVideoId(video_id))
    return {ErrorResponse(404, ErrorCode::kNotFound, "no video " + video_id), nullptr};
  auto target = videos_.Playback(video_id);
  if (!target.ok()) return {FromStatus(target.status()), nullptr};
  if (grant && grant->tenant != target->tenant)
    return {ErrorResponse(403, ErrorCode::kForbidden, "the playback signature is not valid"),
            nullptr};
  if (!grant && target->policy != "public")
    return {ErrorResponse(403, ErrorCode::kForbidden,
                          "this video's playback is signed: use the signed URL of its "
                          "\"playback\" object"),
            nullptr};
  const std::string& part = s[3];
  if (grant && grant->scope != "all" &&
      grant->scope != (part == "thumbnail.jpg" ? std::string("thumbnail") : part))
    return {ErrorResponse(403, ErrorCode::kForbidden, "the playback id does not cover this file"),
            nullptr};
  if (target->dir.empty())
    return {ErrorResponse(404, ErrorCode::kNotReady, "video " + video_id + " is not ready yet"),
            nullptr};
  // Signed media may be cached by the browser no longer than its grant lasts.
  // A video still being published has EVENT playlists that grow: never cached.
  std::string media = kImmutable,
              playlist = target->status == "ready" ? kPublicPlaylist : kGrowingPlaylist;
  if (grant && target->policy != "public") {
    const int64_t left = std::max<int64_t>(0, grant->expires - NowSeconds());
    media = "private, max-age=" + std::to_string(std::min<int64_t>(left, 86400));
    playlist = kPrivatePlaylist;
  }
  const std::filesystem::path& dir = target->dir;
  if (part == "thumbnail.jpg") return {ServeFile(req, dir / "thumbnail.jpg", media), nullptr};
  if (part == "mp4") {
    const std::string rung = s[4].substr(0, s[4].size() - 4);
    if (!IsRung(rung) || rung == "audio")
      return {ErrorResponse(404, ErrorCode::kNotFound, "no rendition " + rung), nullptr};
    return {ServeFile(req, dir / (rung + ".mp4"), media), nullptr};
  }
  if (s.size() == 5) return {ServeFile(req, dir / "master.m3u8", playlist), nullptr};
  if (!IsRung(s[4]) || !IsMediaFile(s[5]))
    return {ErrorResponse(404, ErrorCode::kNotFound, "no such file"), nullptr};
  return {ServeFile(req, dir / s[4] / s[5], s[5].ends_with(".m3u8") ? playlist : media), nullptr};
}

Routed Router::RouteSigningKeys(const Request& req, const std::vector<std::string>& s,
                                const std::string& tenant) {
  auto key_json = [](const SigningKey& k) {
    json j = {{"id", k.id}, {"created_at", IsoTime(k.created)}};
    if (!k.secret.empty()) j["secret"] = k.secret;
    return j;
  };
  if (s.size() == 3) {  // DELETE /v1/signing-keys/{key_id}
    Status st = signer_.RetireKey(tenant, s[2]);
    if (!st.ok()) return {FromStatus(st), nullptr};
    Response r;
    r.status = 204;
    return {std::move(r), nullptr};
  }
  if (req.method() == http::verb::post) {
    auto k = signer_.CreateKey(tenant);
    if (!k.ok()) return {FromStatus(k.status()), nullptr};
    Response r = JsonResponse(201, key_json(*k).dump());
    r.Header("Location", "/v1/signing-keys/" + k->id);
    return {std::move(r), nullptr};
  }
  auto keys = signer_.ListKeys(tenant);
  if (!keys.ok()) return {FromStatus(keys.status()), nullptr};
  json out = {{"signing_keys", json::array()}};
  for (const auto& k : *keys) out["signing_keys"].push_back(key_json(k));
  return {JsonResponse(200, out.dump()), nullptr};
}

std::string Router::Decorate(const std::string& base, const std::string& tenant,
                             const std::string& video, int64_t expires_in) {
  json v = json::parse(video, nullptr, false);
  // Playback URLs as soon as the video plays: its HLS head is published long before it is
  // ready (its MP4s come when it is).
  if (v.is_discarded() || !v.is_object() ||
      (v.value("status", "") != "ready" && !v.value("playable", false)))
    return video;
  const std::string id = v.value("id", "");
  const std::string policy = v.value("playback_policy", "signed");
  json p = {{"policy", policy}};
  std::string pid = id;
  if (policy != "public") {
    // Expiry rounded up (to the minute for long grants) so that polling the video returns the
    // same URLs for a while and a player is not reloaded for nothing.
    const int64_t grain = expires_in >= 600 ? 60 : 1;
    const int64_t expires = (NowSeconds() + expires_in + grain - 1) / grain * grain;
    auto signed_id = signer_.Sign(tenant, id, "all", expires);
    if (!signed_id.ok()) {
      v["playback"] = nullptr;
      return v.dump();
    }
    pid = *signed_id;
    p["expires_at"] = IsoTime(expires);
  }
  const std::string root = base + "/v1/play/" + pid;
  p["id"] = pid;
  p["hls"] = root + "/hls/master.m3u8";
  p["thumbnail"] = root + "/thumbnail.jpg";
  p["mp4"] = json::object();
  for (const auto& r : v.value("renditions", json::array()))
    if (r.contains("name"))
      p["mp4"][r["name"].get<std::string>()] =
          root + "/mp4/" + r["name"].get<std::string>() + ".mp4";
  p["share"] = base + "/embed.html?v=" + pid;
  p["embed"] = "<iframe src=\"" + base + "/embed.html?v=" + pid +
               "\" width=\"640\" height=\"360\" allow=\"autoplay; fullscreen\" "
               "allowfullscreen style=\"border:0\"></iframe>";
  v["playback"] = p;
  return v.dump();
}

std::string Router::DecorateList(const std::string& base, const std::string& tenant,
                                 const std::string& list) {
  json l = json::parse(list, nullptr, false);
  if (l.is_discarded() || !l.contains("videos")) return list;
  for (auto& v : l["videos"])
    v = json::parse(Decorate(base, tenant, v.dump(), kDefaultPlaybackSeconds));
  return l.dump();
}

Response Router::Ready() {
  // Ready to take work: the store answers, and in a cluster at least one node is up.
  json checks = json::object();
  bool ok = true;
  auto probe = videos_.store().GetMeta("readyz/probe");
  checks["store"] = probe.ok() ? "ok" : probe.status().ToString();
  ok &= probe.ok();
  const scheduler::ServiceMetrics m = videos_.Metrics();
  if (!m.nodes.empty()) {
    size_t up = 0;
    for (const auto& n : m.nodes) up += n.alive ? 1 : 0;
    checks["nodes"] = std::to_string(up) + " of " + std::to_string(m.nodes.size()) + " up";
    ok &= up > 0;
  }
  Response r = JsonResponse(
      ok ? 200 : 503, json{{"status", ok ? "ready" : "not_ready"}, {"checks", checks}}.dump());
  return r;
}

Response Router::ServeFile(const Request& req, const fs::path& path,
                           const std::string& cache_control) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
    return ErrorResponse(404, ErrorCode::kNotFound, "no such file");
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  const std::string etag = "\"" + Hex(size) + "-" +
                           Hex(static_cast<uint64_t>(st.st_mtim.tv_sec) * 1000000000ull +
                               static_cast<uint64_t>(st.st_mtim.tv_nsec)) +
                           "\"";
  const std::string type(ContentTypeFor(path.filename().string()));
  Response r;
  r.Header("ETag", etag);
  r.Header("Cache-Control", cache_control);
  r.Header("Accept-Ranges", "bytes");
  std::string_view inm = req[http::field::if_none_match];
  if (!inm.empty() && (inm.find(etag) != std::string_view::npos || inm == "*")) {
    r.status = 304;
    return r;
  }
  std::string_view range = req[http::field::range];
  std::string_view if_range = req[http::field::if_range];
  std::vector<ByteRange> ranges;
  RangeParse parsed = RangeParse::kNone;
  if (!range.empty() && (if_range.empty() || if_range == etag))
    parsed = ParseRange(range, size, ranges);
  if (parsed == RangeParse::kUnsatisfiable) {
    Response e =
        ErrorResponse(416, ErrorCode::kRangeNotSatisfiable, "the range is outside the file");
    e.Header("Content-Range", "bytes */" + std::to_string(size));
    return e;
  }
  if (parsed == RangeParse::kNone) {
    r.Header("Content-Type", type);
    r.body.push_back({"", path, 0, size});
    return r;
  }
  r.status = 206;
  if (ranges.size() == 1) {
    r.Header("Content-Type", type);
    r.Header("Content-Range", "bytes " + std::to_string(ranges[0].first) + "-" +
                                  std::to_string(ranges[0].last) + "/" + std::to_string(size));
    r.body.push_back({"", path, ranges[0].first, ranges[0].last - ranges[0].first + 1});
    return r;
  }
  const std::string boundary = "zerofarm-" + etag.substr(1, etag.size() - 2);
  r.Header("Content-Type", "multipart/byteranges; boundary=" + boundary);
  for (const auto& br : ranges) {
    r.body.push_back({"\r\n--" + boundary + "\r\nContent-Type: " + type +
                          "\r\nContent-Range: bytes " + std::to_string(br.first) + "-" +
                          std::to_string(br.last) + "/" + std::to_string(size) + "\r\n\r\n",
                      {},
                      0,
                      0});
    r.body.push_back({"", path, br.first, br.last - br.first + 1});
  }
  r.body.push_back({"\r\n--" + boundary + "--\r\n", {}, 0, 0});
  return r;
}

Response Router::ServePlaylist(const Request& req, const fs::path& path,
                               const std::map<std::string, std::string>& query) {
  auto token = query.find("access_token");
  if (token == query.end() || !req[http::field::authorization].empty())
    return ServeFile(req, path, kNoCache);
  // Authorized by ?access_token= (a player that cannot set headers, e.g. native HLS or
  // ffmpeg given only a URL): every URI in the playlist carries the token on, so the relative
  // requests that follow are authorized too.
  std::ifstream in(path, std::ios::binary);
  if (!in) return ErrorResponse(404, ErrorCode::kNotFound, "no such file");
  std::string out, line;
  const std::string suffix = "access_token=" + token->second;
  auto with_token = [&](const std::string& uri) {
    return uri + (uri.find('?') == std::string::npos ? "?" : "&") + suffix;
  };
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!line.empty() && line[0] != '#') {
      line = with_token(line);
    } else if (size_t at = line.find("URI=\""); at != std::string::npos) {
      size_t end = line.find('"', at + 5);
      if (end != std::string::npos)
        line = line.substr(0, at + 5) + with_token(line.substr(at + 5, end - at - 5)) +
               line.substr(end);
    }
    out += line + "\n";
  }
  Response r;
  r.Header("Content-Type", "application/vnd.apple.mpegurl");
  r.Header("Cache-Control", "no-cache, private");
  r.body.push_back({out, {}, 0, 0});
  return r;
}

Response Router::ServeStatic(const Request& req, const std::vector<std::string>& segs) {
  fs::path rel;
  for (const auto& s : segs) {
    if (!IsStaticName(s)) return ErrorResponse(404, ErrorCode::kNotFound, "no such file");
    rel /= s;
  }
  if (segs.empty()) rel = "index.html";
  const fs::path path = opt_.web_dir / rel;
  std::error_code ec;
  if (!opt_.web_dir.empty() && fs::is_regular_file(path, ec))
    return ServeFile(req, path, path.extension() == ".html" ? kNoCache : "public, max-age=3600");
  if (segs.empty()) {
    Response r;
    r.Header("Content-Type", "text/html; charset=utf-8");
    r.Header("Cache-Control", kNoCache);
    r.body.push_back(
        {"<!doctype html><title>zerofarm</title><h1>zerofarm</h1>"
         "<p>The web UI was not built (no index.html in " +
             opt_.web_dir.string() + "). The HTTP API is at <code>/v1/videos</code>.</p>\n",
         {},
         0,
         0});
    return r;
  }
  return ErrorResponse(404, ErrorCode::kNotFound, "no such file");
}

Response Router::Metrics() {
  const scheduler::ServiceMetrics m = videos_.Metrics();
  std::ostringstream o;
  auto family = [&](const char* name, const char* type, const char* help) {
    o << "# HELP " << name << " " << help << "\n# TYPE " << name << " " << type << "\n";
  };
  family("zerofarm_build_info", "gauge", "The version this server was built from (always 1).");
  o << "zerofarm_build_info{version=\"" << ZEROFARM_VERSION << "\",compiler=\""
#if defined(__clang__)
    << "clang " << __clang_major__ << "." << __clang_minor__
#elif defined(__GNUC__)
    << "gcc " << __GNUC__ << "." << __GNUC_MINOR__
#endif
    << "\"} 1\n";
  {
    const ProcessMemory pm = ReadProcessMemory();
    family("process_resident_memory_bytes", "gauge", "Resident memory of this process.");
    o << "process_resident_memory_bytes " << pm.resident_bytes << "\n";
    family("process_open_fds", "gauge", "Open file descriptors of this process.");
    o << "process_open_fds " << pm.open_fds << "\n";
    family("zerofarm_heap_bytes", "gauge",
           "The C allocator's heap: in use (allocated, not freed) and free (kept, not returned).");
    o << "zerofarm_heap_bytes{state=\"in_use\"} " << pm.heap_in_use_bytes << "\n";
    o << "zerofarm_heap_bytes{state=\"free\"} " << pm.heap_free_bytes << "\n";
    const storage::StoreMemory sm = videos_.store().Memory();
    family("zerofarm_store_memory_bytes", "gauge",
           "Memory of the embedded store: RocksDB memtables, block caches, table readers.");
    o << "zerofarm_store_memory_bytes{kind=\"memtables\"} " << sm.memtable_bytes << "\n";
    o << "zerofarm_store_memory_bytes{kind=\"block_cache\"} " << sm.block_cache_bytes << "\n";
    o << "zerofarm_store_memory_bytes{kind=\"table_readers\"} " << sm.table_reader_bytes << "\n";
  }
  family("zerofarm_videos_in_memory", "gauge",
         "Videos whose upload or job state is held in memory (uploading, processing, just "
         "finished).");
  o << "zerofarm_videos_in_memory " << m.videos_in_memory << "\n";
  family("zerofarm_uploads_total", "counter", "Uploads started.");
  o << "zerofarm_uploads_total " << m.uploads_started << "\n";
  family("zerofarm_uploads_completed_total", "counter", "Uploads received whole.");
  o << "zerofarm_uploads_completed_total " << m.uploads_completed << "\n";
  family("zerofarm_upload_bytes_total", "counter", "Upload bytes received.");
  o << "zerofarm_upload_bytes_total " << m.upload_bytes << "\n";
  family("zerofarm_http_bytes_in_total", "counter", "Request body bytes read.");
  o << "zerofarm_http_bytes_in_total " << counters_.bytes_in.load() << "\n";
  family("zerofarm_http_bytes_out_total", "counter", "Response body bytes sent.");
  o << "zerofarm_http_bytes_out_total " << counters_.bytes_out.load() << "\n";
  family("zerofarm_http_connections", "gauge", "Open connections.");
  o << "zerofarm_http_connections " << counters_.connections.load() << "\n";
  {
    std::lock_guard lock(counters_.mu);
    family("zerofarm_http_responses_total", "counter", "Responses by status code.");
    for (const auto& [code, n] : counters_.responses)
      o << "zerofarm_http_responses_total{code=\"" << code << "\"} " << n << "\n";
    family("zerofarm_http_rejections_total", "counter", "Requests refused by a limit.");
    for (const auto& [why, n] : counters_.rejections)
      o << "zerofarm_http_rejections_total{reason=\"" << why << "\"} " << n << "\n";
  }
  family("zerofarm_tasks", "gauge", "Transcode tasks by state.");
  for (const auto& [state, n] : m.tasks_by_state)
    o << "zerofarm_tasks{state=\"" << state << "\"} " << n << "\n";
  family("zerofarm_videos", "gauge", "Videos by status.");
  for (const auto& [status, n] : m.videos_by_status)
    o << "zerofarm_videos{status=\"" << status << "\"} " << n << "\n";
  family("zerofarm_video_failures_total", "counter", "Failed videos by reason.");
  for (const auto& [why, n] : m.failures_by_reason)
    o << "zerofarm_video_failures_total{reason=\"" << why << "\"} " << n << "\n";
  family("zerofarm_transcode_seconds", "histogram", "Wall time of finished transcode tasks.");
  for (size_t i = 0; i < m.transcode_buckets.size(); ++i)
    o << "zerofarm_transcode_seconds_bucket{le=\"" << m.transcode_buckets[i] << "\"} "
      << (i < m.transcode_bucket_counts.size() ? m.transcode_bucket_counts[i] : 0) << "\n";
  o << "zerofarm_transcode_seconds_bucket{le=\"+Inf\"} " << m.transcode_count << "\n";
  o << "zerofarm_transcode_seconds_sum " << m.transcode_sum << "\n";
  o << "zerofarm_transcode_seconds_count " << m.transcode_count << "\n";
  family("zerofarm_queue_depth", "gauge", "Tasks waiting for a worker slot.");
  o << "zerofarm_queue_depth " << m.queue_depth << "\n";
  family("zerofarm_workers_busy", "gauge", "Worker slots in use.");
  o << "zerofarm_workers_busy " << m.workers_busy << "\n";
  family("zerofarm_sandbox_refusals_total", "counter",
         "Worker runs refused or killed by a sandbox rule.");
  o << "zerofarm_sandbox_refusals_total " << m.sandbox_refusals << "\n";
  if (!m.nodes.empty()) {
    family("zerofarm_node_up", "gauge", "Storage nodes answering heartbeats (proxy).");
    for (const auto& n : m.nodes)
      o << "zerofarm_node_up{node=\"" << n.endpoint << "\"} " << (n.alive ? 1 : 0) << "\n";
    family("zerofarm_node_tasks_running", "gauge", "Tasks running per storage node (proxy).");
    for (const auto& n : m.nodes)
      o << "zerofarm_node_tasks_running{node=\"" << n.endpoint << "\"} " << n.tasks_running << "\n";
    family("zerofarm_node_disk_full", "gauge",
           "Storage nodes below their free-space reserve, refusing writes (proxy).");
    for (const auto& n : m.nodes)
      o << "zerofarm_node_disk_full{node=\"" << n.endpoint << "\"} " << (n.disk_full ? 1 : 0)
        << "\n";
    family("zerofarm_cluster_bytes_sent_total", "counter", "Bytes sent to storage nodes.");
    o << "zerofarm_cluster_bytes_sent_total " << m.cluster_bytes_sent << "\n";
    family("zerofarm_cluster_bytes_received_total", "counter",
           "Bytes received from storage nodes.");
    o << "zerofarm_cluster_bytes_received_total " << m.cluster_bytes_received << "\n";
    family("zerofarm_tasks_moved_total", "counter",
           "Tasks moved off a dead or restarted storage node.");
    o << "zerofarm_tasks_moved_total " << m.tasks_lost << "\n";
    family("zerofarm_backup_copies_total", "counter", "Backup copies started for stragglers.");
    o << "zerofarm_backup_copies_total " << m.backup_copies << "\n";
    family("zerofarm_backup_wins_total", "counter", "Backup copies that finished first.");
    o << "zerofarm_backup_wins_total " << m.backup_wins << "\n";
    family("zerofarm_remote_placements_total", "counter",
           "Tasks run on a node holding no replica of their chunk.");
    o << "zerofarm_remote_placements_total " << m.remote_placements << "\n";
  }
  Response r;
  r.Header("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
  r.Header("Cache-Control", kNoCache);
  r.body.push_back({o.str(), {}, 0, 0});
  return r;
}

}  // namespace zerofarm::api
