// Router (router.h): every route of the API.
#include "router.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <sstream>

#include "exec_jobs.h"
#include "http_util.h"
#include "json_body.h"
#include "zerofarm/base/process_memory.h"
#include "zerofarm/scheduler/video_json.h"
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

bool SegmentMatches(std::string_view pattern, const std::string& segment) {
  if (pattern.empty() || pattern.front() != '{') return pattern == segment;
  const std::string_view suffix = pattern.substr(pattern.find('}') + 1);
  return segment.size() > suffix.size() && segment.ends_with(suffix);
}

// Whether the path `segs` has the shape of route template `tmpl`: its literal segments, and a
// segment for each placeholder ("{rung}.mp4": one that ends in ".mp4").
// A template ending in "{name}" takes one or more segments there (an object name holds '/').
bool TemplateMatches(std::string_view tmpl, const std::vector<std::string>& segs) {
  std::string_view rest = tmpl.substr(1);
  for (const std::string& seg : segs) {
    const std::string_view pattern = rest.substr(0, rest.find('/'));
    if (pattern == "{name}" && rest == pattern) return true;
    if (rest.empty() || !SegmentMatches(pattern, seg)) return false;
    rest.remove_prefix(std::min(rest.size(), pattern.size() + 1));
  }
  return rest.empty();
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

json SigningKeyJson(const SigningKey& k) {
  json j = {{"id", k.id}, {"created_at", IsoTime(k.created)}};
  if (!k.secret.empty()) j["secret"] = k.secret;
  return j;
}

// Prometheus text exposition: each family is its "# HELP" and "# TYPE" lines, then its samples.
class PromText {
 public:
  // Starts a family; its samples are written to the stream returned.
  std::ostream& Family(const char* name, const char* type, const char* help) {
    o_ << "# HELP " << name << " " << help << "\n# TYPE " << name << " " << type << "\n";
    return o_;
  }
  // A gauge or counter family of one sample without labels.
  template <class V>
  void Gauge(const char* name, const char* help, const V& value) {
    One(name, "gauge", help, value);
  }
  template <class V>
  void Counter(const char* name, const char* help, const V& value) {
    One(name, "counter", help, value);
  }
  // A gauge or counter family of one sample per (label value, value) of `samples`, each
  // labelled `label`="label value".
  template <class Samples>
  void Gauges(const char* name, const char* help, const char* label, const Samples& samples) {
    Labelled(name, "gauge", help, label, samples);
  }
  void Gauges(const char* name, const char* help, const char* label,
              std::initializer_list<std::pair<const char*, uint64_t>> samples) {
    Labelled(name, "gauge", help, label, samples);
  }
  template <class Samples>
  void Counters(const char* name, const char* help, const char* label, const Samples& samples) {
    Labelled(name, "counter", help, label, samples);
  }
  std::string str() const { return o_.str(); }

 private:
  template <class V>
  void One(const char* name, const char* type, const char* help, const V& value) {
    Family(name, type, help) << name << " " << value << "\n";
  }
  template <class Samples>
  void Labelled(const char* name, const char* type, const char* help, const char* label,
                const Samples& samples) {
    Family(name, type, help);
    for (const auto& [key, value] : samples)
      o_ << name << "{" << label << "=\"" << key << "\"} " << value << "\n";
  }
  std::ostringstream o_;
};

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
  r.body.push_back({body + "\n", {}, 0, 0, nullptr, nullptr});
  return r;
}

unsigned StatusForCode(ErrorCode code) {
  if (code == ErrorCode::kNotFound || code == ErrorCode::kNotReady) return 404;
  if (code == ErrorCode::kForbidden || code == ErrorCode::kExpired) return 403;
  if (code == ErrorCode::kConflict || code == ErrorCode::kTooMany) return 409;
  if (code == ErrorCode::kInvalidArgument || code == ErrorCode::kBadMultipart ||
      code == ErrorCode::kBadRequest || code == ErrorCode::kBadContainerName ||
      code == ErrorCode::kBadObjectName || code == ErrorCode::kBadJob ||
      code == ErrorCode::kBadJson)
    return 400;
  if (code == ErrorCode::kNotAProgram || code == ErrorCode::kProgramRejected) return 422;
  if (code == ErrorCode::kBodyLimit) return 413;
  if (code == ErrorCode::kTimeout) return 408;
  if (code == ErrorCode::kTooManyUploads) return 429;
  if (code == ErrorCode::kUnavailable) return 503;
  return 500;
}

Response NoContentOr(const Status& s) {
  if (!s.ok()) return FromStatus(s);
  Response r;
  r.status = 204;
  return r;
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
    id_ = created->record.id;
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

// A request on its route (Router::Table): the path's parameters bound (BindParams) and, on a
// route behind a token, the caller's tenant.
struct Router::Call {
  const Request& req;
  const std::vector<std::string>& segs;
  const std::map<std::string, std::string>& query;
  const std::string& tmpl;
  std::optional<std::string> tenant;
  std::string id;                    // {id}, {upload_id}, {playback_id} or {key_id}
  fs::path file;                     // the media file of the path in the video's directory
  std::optional<Response> bad_file;  // why `file` names no media file (BindParams)
  std::string container;             // {container} of /v1/objects
  std::string name;                  // {name}: the rest of the path, joined with '/'
};

// The rows of a template stay together: the first template a path matches is its route, and a
// 405 or OPTIONS answer lists the template's methods in this order (Allow).
const std::vector<Router::Endpoint>& Router::Table() {
  using G = Gate;
  static const std::vector<Endpoint> kTable = {
      {"GET", "/", G::kOpen, &Router::GetIndex},
      {"HEAD", "/", G::kOpen, &Router::GetIndex},
      {"GET", "/healthz", G::kOpen, &Router::GetHealth},
      {"HEAD", "/healthz", G::kOpen, &Router::GetHealth},
      {"GET", "/metrics", G::kOpen, &Router::GetMetrics},
      {"HEAD", "/metrics", G::kOpen, &Router::GetMetrics},
      {"GET", "/readyz", G::kOpen, &Router::GetReady},
      {"HEAD", "/readyz", G::kOpen, &Router::GetReady},
      {"GET", "/v1/videos", G::kToken, &Router::ListVideos},
      {"HEAD", "/v1/videos", G::kToken, &Router::ListVideos},
      {"POST", "/v1/videos", G::kToken, &Router::CreateVideo},
      {"GET", "/v1/videos/{id}", G::kToken, &Router::GetVideo},
      {"HEAD", "/v1/videos/{id}", G::kToken, &Router::GetVideo},
      {"DELETE", "/v1/videos/{id}", G::kToken, &Router::DeleteVideo},
      {"PATCH", "/v1/videos/{id}", G::kToken, &Router::UpdateVideo},
      {"GET", "/v1/videos/{id}/hls/master.m3u8", G::kMediaToken, &Router::GetVideoFile},
      {"HEAD", "/v1/videos/{id}/hls/master.m3u8", G::kMediaToken, &Router::GetVideoFile},
      {"GET", "/v1/videos/{id}/hls/{rung}/{file}", G::kMediaToken, &Router::GetVideoFile},
      {"HEAD", "/v1/videos/{id}/hls/{rung}/{file}", G::kMediaToken, &Router::GetVideoFile},
      {"GET", "/v1/videos/{id}/mp4/{rung}.mp4", G::kMediaToken, &Router::GetVideoFile},
      {"HEAD", "/v1/videos/{id}/mp4/{rung}.mp4", G::kMediaToken, &Router::GetVideoFile},
      {"GET", "/v1/videos/{id}/thumbnail.jpg", G::kMediaToken, &Router::GetVideoFile},
      {"HEAD", "/v1/videos/{id}/thumbnail.jpg", G::kMediaToken, &Router::GetVideoFile},
      {"GET", "/v1/play/{playback_id}/hls/master.m3u8", G::kPlaybackId, &Router::GetPlayFile},
      {"HEAD", "/v1/play/{playback_id}/hls/master.m3u8", G::kPlaybackId, &Router::GetPlayFile},
      {"GET", "/v1/play/{playback_id}/hls/{rung}/{file}", G::kPlaybackId, &Router::GetPlayFile},
      {"HEAD", "/v1/play/{playback_id}/hls/{rung}/{file}", G::kPlaybackId, &Router::GetPlayFile},
      {"GET", "/v1/play/{playback_id}/mp4/{rung}.mp4", G::kPlaybackId, &Router::GetPlayFile},
      {"HEAD", "/v1/play/{playback_id}/mp4/{rung}.mp4", G::kPlaybackId, &Router::GetPlayFile},
      {"GET", "/v1/play/{playback_id}/thumbnail.jpg", G::kPlaybackId, &Router::GetPlayFile},
      {"HEAD", "/v1/play/{playback_id}/thumbnail.jpg", G::kPlaybackId, &Router::GetPlayFile},
      {"GET", "/v1/signing-keys", G::kToken, &Router::ListSigningKeys},
      {"POST", "/v1/signing-keys", G::kToken, &Router::CreateSigningKey},
      {"DELETE", "/v1/signing-keys/{key_id}", G::kToken, &Router::RetireSigningKey},
      {"OPTIONS", "/v1/uploads", G::kOpen, nullptr},  // tus discovery
      {"POST", "/v1/uploads", G::kToken, &Router::CreateUpload},
      {"HEAD", "/v1/uploads/{upload_id}", G::kToken, &Router::GetUploadOffset},
      {"PATCH", "/v1/uploads/{upload_id}", G::kToken, &Router::PatchUpload},
      {"DELETE", "/v1/uploads/{upload_id}", G::kToken, &Router::DeleteUpload},
      {"GET", "/v1/webhooks", G::kToken, &Router::Webhook},
      {"POST", "/v1/webhooks", G::kToken, &Router::Webhook},
      {"DELETE", "/v1/webhooks/{id}", G::kToken, &Router::Webhook},
      {"GET", "/v1/webhooks/{id}/deliveries", G::kToken, &Router::Webhook},
      {"GET", "/v1/objects/{container}", G::kToken, &Router::ListObjects},
      {"GET", "/v1/objects/{container}/{name}", G::kToken, &Router::GetObject},
      {"HEAD", "/v1/objects/{container}/{name}", G::kToken, &Router::GetObject},
      {"PUT", "/v1/objects/{container}/{name}", G::kToken, &Router::PutObject},
      {"DELETE", "/v1/objects/{container}/{name}", G::kToken, &Router::DeleteObject},
      {"GET", "/v1/jobs", G::kToken, &Router::ListJobs},
      {"POST", "/v1/jobs", G::kToken, &Router::CreateJob},
      {"GET", "/v1/jobs/{id}", G::kToken, &Router::GetJob},
      {"DELETE", "/v1/jobs/{id}", G::kToken, &Router::CancelJob},
  };
  return kTable;
}

std::string_view Router::TemplateOf(const std::vector<std::string>& segs) {
  for (const Endpoint& r : Table())
    if (TemplateMatches(r.tmpl, segs)) return r.tmpl;
  return !segs.empty() && segs[0] != "v1" ? "static" : "";
}

std::optional<Response> Router::BindParams(Call& c) {
  std::optional<Response> bad_id;
  std::string rung;
  std::string_view rest = std::string_view(c.tmpl).substr(1);
  for (size_t i = 0; i < c.segs.size(); ++i) {
    const std::string& seg = c.segs[i];
    const std::string_view pattern = rest.substr(0, rest.find('/'));
    rest.remove_prefix(std::min(rest.size(), pattern.size() + 1));
    if (pattern == "{container}") c.container = seg;
    if (pattern == "{name}") {
      for (size_t j = i; j < c.segs.size(); ++j) c.name += (j > i ? "/" : "") + c.segs[j];
      break;
    }
    if (pattern == "{id}" || pattern == "{upload_id}" || pattern == "{playback_id}" ||
        pattern == "{key_id}")
      c.id = seg;
    // (A webhook's {id} and a signing key's are checked where they are kept; a playback id is
    // a video id or a signed grant of one, checked by its handler.)
    if (pattern == "{id}" && c.tmpl.starts_with("/v1/videos/") && !scheduler::IsVideoId(seg))
      bad_id = ErrorResponse(404, ErrorCode::kNotFound, "no video " + seg);
    if (pattern == "{id}" && c.tmpl.starts_with("/v1/jobs/") && !IsJobId(seg))
      bad_id = ErrorResponse(404, ErrorCode::kNotFound, "no job " + seg);
    if (pattern == "{upload_id}" && !scheduler::IsUploadId(seg))
      bad_id = ErrorResponse(404, ErrorCode::kNotFound, "no upload " + seg);
    if (pattern == "thumbnail.jpg" || pattern == "master.m3u8") c.file = seg;
    if (pattern == "{rung}") rung = seg;
    if (pattern == "{file}") {
      c.file = fs::path(rung) / seg;
      if (!IsRung(rung) || !IsMediaFile(seg))
        c.bad_file = ErrorResponse(404, ErrorCode::kNotFound, "no such file");
    }
    if (pattern == "{rung}.mp4") {
      rung = seg.substr(0, seg.size() - 4);
      c.file = rung + ".mp4";
      if (!IsRung(rung) || rung == "audio")
        c.bad_file = ErrorResponse(404, ErrorCode::kNotFound, "no rendition " + rung);
    }
  }
  return bad_id;
}

const std::vector<std::pair<std::string, std::string>>& Router::Routes() {
  static const std::vector<std::pair<std::string, std::string>> kRoutes = [] {
    std::vector<std::pair<std::string, std::string>> routes;
    for (const Endpoint& r : Table()) routes.emplace_back(r.method, r.tmpl);
    return routes;
  }();
  return kRoutes;
}

bool Router::IsPlaybackRead(const Request& req) {
  if (req.method() != http::verb::get && req.method() != http::verb::head) return false;
  std::vector<std::string> segs;
  std::string query;
  if (!SplitTarget(req.target(), segs, query)) return false;
  const std::string_view tmpl = TemplateOf(segs);
  for (const Endpoint& r : Table())
    if (r.tmpl == tmpl && r.method == req.method_string())
      return r.gate == Gate::kMediaToken || r.gate == Gate::kPlaybackId;
  return false;
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
  const std::string tmpl(TemplateOf(segs));
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
  const Endpoint* route = nullptr;
  for (const Endpoint& r : Table()) {
    if (r.tmpl != tmpl) continue;
    allow += (allow.empty() ? "" : ", ") + std::string(r.method);
    if (r.method == method) route = &r;
  }
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
  if (!route) {
    Response r = ErrorResponse(405, ErrorCode::kMethodNotAllowed, method + " is not allowed here");
    r.Header("Allow", allow);
    return {std::move(r), nullptr};
  }

  Call call{req, segs, query, tmpl, std::nullopt, {}, {}, std::nullopt, {}, {}};
  Routed out = Dispatch(*route, call);
  if (tus) {
    out.response.Header("Tus-Resumable", "1.0.0");
  }
  if (head) out.response.head = true;
  return out;
}

Routed Router::Dispatch(const Endpoint& route, Call& c) {
  if (route.gate == Gate::kToken || route.gate == Gate::kMediaToken) {
    c.tenant = Tenant(c.req, c.query, route.gate == Gate::kMediaToken);
    if (!c.tenant) {
      Response r = ErrorResponse(401, ErrorCode::kUnauthorized, "a valid bearer token is required");
      r.Header("WWW-Authenticate", "Bearer realm=\"zerofarm\"");
      return {std::move(r), nullptr};
    }
  }
  if (c.tmpl.starts_with("/v1/uploads") && c.req.method() != http::verb::head &&
      c.req["Tus-Resumable"] != "1.0.0") {
    Response r = ErrorResponse(412, ErrorCode::kTusVersion, "Tus-Resumable: 1.0.0 is required");
    r.Header("Tus-Version", "1.0.0");
    return {std::move(r), nullptr};
  }
  if (std::optional<Response> bad_id = BindParams(c)) return {std::move(*bad_id), nullptr};
  return (this->*route.handler)(c);
}

Routed Router::GetIndex(const Call& c) { return {ServeStatic(c.req, c.segs), nullptr}; }

Routed Router::GetHealth(const Call&) {
  // A proxy without a quorum of storage nodes cannot take writes (ClusterClient).
  return {videos_.Metrics().writes_possible
              ? JsonResponse(200, R"({"status":"ok"})")
              : ErrorResponse(503, ErrorCode::kNoQuorum,
                              "too few storage nodes answer to store a write"),
          nullptr};
}

Routed Router::GetMetrics(const Call&) { return {Metrics(), nullptr}; }

Routed Router::GetReady(const Call&) { return {Ready(), nullptr}; }

Routed Router::CreateVideo(const Call& c) {
  const Request& req = c.req;
  const auto& query = c.query;
  const auto& tenant = c.tenant;
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
      return {ErrorResponse(400, ErrorCode::kBadMultipart, "multipart/form-data needs a boundary"),
              nullptr};
  } else if (has_length) {
    v.length = declared;
  }
  return {{},
          std::make_unique<UploadSink>(*this, std::move(v), std::move(multipart),
                                       opt_.max_upload_bytes, BaseUrl(req))};
}

Routed Router::ListVideos(const Call& c) {
  const Request& req = c.req;
  const auto& query = c.query;
  const auto& tenant = c.tenant;
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

// tus creation.
Routed Router::CreateUpload(const Call& call) {
  const Request& req = call.req;
  const auto& query = call.query;
  const auto& tenant = call.tenant;
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
  const std::string id = created->record.id, uid = created->record.upload_id;
  if (length == 0) {
    auto c = videos_.Commit(id, true);
    if (!c.ok()) return {FromStatus(c.status()), nullptr};
  }
  Response r = JsonResponse(201, scheduler::VideoJson(*created, /*with_chunks=*/true).dump());
  r.Header("Location", "/v1/uploads/" + uid);
  r.Header("Zerofarm-Video-Id", id);
  r.Header("Upload-Offset", "0");
  if (auto st = videos_.FindUpload(uid); st.ok()) AddUploadExpires(r, st->expires);
  return {std::move(r), nullptr};
}

Result<scheduler::VideoService::UploadState> Router::FindOwnUpload(const Call& c) {
  auto st = videos_.FindUpload(c.id);
  if (!st.ok() || st->tenant != *c.tenant)
    return Status::Error(ErrorCode::kNotFound, "no upload " + c.id);
  return st;
}

Routed Router::GetUploadOffset(const Call& c) {
  auto st = FindOwnUpload(c);
  if (!st.ok()) return {FromStatus(st.status()), nullptr};
  Response r;
  r.Header("Upload-Offset", std::to_string(st->offset));
  if (st->length) r.Header("Upload-Length", std::to_string(*st->length));
  AddUploadExpires(r, st->expires);
  r.Header("Cache-Control", "no-store");
  return {std::move(r), nullptr};
}

Routed Router::DeleteUpload(const Call& c) {
  const auto& tenant = c.tenant;
  auto st = FindOwnUpload(c);
  if (!st.ok()) return {FromStatus(st.status()), nullptr};
  Status d = videos_.Delete(*tenant, st->video_id);
  return {NoContentOr(d), nullptr};
}

Routed Router::PatchUpload(const Call& c) {
  const Request& req = c.req;
  const std::string& uid = c.id;
  auto st = FindOwnUpload(c);
  if (!st.ok()) return {FromStatus(st.status()), nullptr};
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

Routed Router::DeleteVideo(const Call& c) {
  const auto& tenant = c.tenant;
  const std::string& id = c.id;
  Status d = videos_.Delete(*tenant, id);
  return {NoContentOr(d), nullptr};
}

Routed Router::UpdateVideo(const Call& c) {
  const Request& req = c.req;
  const auto& tenant = c.tenant;
  const std::string& id = c.id;
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

Routed Router::GetVideo(const Call& c) {
  const Request& req = c.req;
  const auto& query = c.query;
  const auto& tenant = c.tenant;
  const std::string& id = c.id;
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

// /v1/videos/{id}/...: a file of the caller's own video; playlists carry ?access_token= on.
Routed Router::GetVideoFile(const Call& c) {
  auto dir = videos_.OutputDir(*c.tenant, c.id);
  if (!dir.ok()) return {FromStatus(dir.status()), nullptr};
  if (c.bad_file) return {*c.bad_file, nullptr};
  if (c.file.string().ends_with(".m3u8"))
    return {ServePlaylist(c.req, *dir / c.file, c.query), nullptr};
  return {ServeFile(c.req, *dir / c.file, kPrivateMedia), nullptr};
}

// /v1/play/{playback_id}/...: no API token. The playback id is the video id of a public video,
// or a signed grant (playback.h) whose scope covers the file.
Routed Router::GetPlayFile(const Call& c) {
  const Request& req = c.req;
  const auto& s = c.segs;
  const std::string& pid = c.id;
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
  if (c.bad_file) return {*c.bad_file, nullptr};
  return {ServeFile(req, dir / c.file, c.file.string().ends_with(".m3u8") ? playlist : media),
          nullptr};
}

Routed Router::ListSigningKeys(const Call& c) {
  const std::string& tenant = *c.tenant;
  auto keys = signer_.ListKeys(tenant);
  if (!keys.ok()) return {FromStatus(keys.status()), nullptr};
  json out = {{"signing_keys", json::array()}};
  for (const auto& k : *keys) out["signing_keys"].push_back(SigningKeyJson(k));
  return {JsonResponse(200, out.dump()), nullptr};
}

Routed Router::CreateSigningKey(const Call& c) {
  const std::string& tenant = *c.tenant;
  auto k = signer_.CreateKey(tenant);
  if (!k.ok()) return {FromStatus(k.status()), nullptr};
  Response r = JsonResponse(201, SigningKeyJson(*k).dump());
  r.Header("Location", "/v1/signing-keys/" + k->id);
  return {std::move(r), nullptr};
}

Routed Router::RetireSigningKey(const Call& c) {
  const std::string& tenant = *c.tenant;
  Status st = signer_.RetireKey(tenant, c.id);
  return {NoContentOr(st), nullptr};
}

Routed Router::Webhook(const Call& c) {
  return RouteWebhooks(c.req, c.tmpl, c.segs, c.query, *c.tenant);
}

namespace {

// The ranges a GET asks for: its Range header, honoured unless If-Range names another version
// than `etag`. Sets *parsed (kNone: send it all) and *ranges; returns the 416 answer (with
// Content-Range bytes */size) when no range is satisfiable. `what` names the resource.
std::optional<Response> RequestedRanges(const Request& req, uint64_t size, const std::string& etag,
                                        const std::string& what, RangeParse* parsed,
                                        std::vector<ByteRange>* ranges) {
  std::string_view range = req[http::field::range];
  std::string_view if_range = req[http::field::if_range];
  *parsed = RangeParse::kNone;
  if (!range.empty() && (if_range.empty() || if_range == etag))
    *parsed = ParseRange(range, size, *ranges);
  if (*parsed != RangeParse::kUnsatisfiable) return std::nullopt;
  Response e =
      ErrorResponse(416, ErrorCode::kRangeNotSatisfiable, "the range is outside the " + what);
  e.Header("Content-Range", "bytes */" + std::to_string(size));
  return e;
}

// `text` fit for a header value: printable ASCII only, at most 200 bytes.
std::string HeaderSafe(std::string_view text) {
  std::string out(text.substr(0, 200));
  for (char& ch : out)
    if (static_cast<unsigned char>(ch) < 0x20 || static_cast<unsigned char>(ch) > 0x7e) ch = '?';
  return out;
}

// A program object's verdict as the API shows it.
json ProgramJson(const ProgramVerdict& p) {
  json j{{"verdict", p.accepted ? "accepted" : "rejected"}, {"reason", p.reason}};
  if (!p.sha256.empty()) j["sha256"] = p.sha256;
  return j;
}

}  // namespace

// PUT /v1/objects/{container}/{name}: the body streams into the store as it arrives.
class ObjectSink final : public BodySink {
 public:
  ObjectSink(std::unique_ptr<ObjectUpload> upload, std::string container, std::string name,
             uint64_t limit)
      : upload_(std::move(upload)),
        container_(std::move(container)),
        name_(std::move(name)),
        limit_(limit) {}
  uint64_t limit() const override { return limit_; }
  Status Consume(std::span<const std::byte> bytes) override { return upload_->Append(bytes); }
  Response Finish() override {
    auto rec = upload_->Commit();
    upload_.reset();
    if (!rec.ok()) return FromStatus(rec.status());
    json body{{"container", container_},
              {"name", name_},
              {"bytes", rec->bytes},
              {"etag", storage::ContentHashHex(rec->hash)}};
    if (rec->program) body["program"] = ProgramJson(*rec->program);
    Response r = JsonResponse(201, body.dump());
    r.Header("ETag", rec->ETag());
    return r;
  }
  Response Fail(const Status& why) override {
    upload_.reset();  // uncommitted: its bytes are dropped, any older object stays
    Response r = why.code() == ErrorCode::kBodyLimit
                     ? ErrorResponse(413, ErrorCode::kTooLarge,
                                     "the object is larger than " + std::to_string(limit_) +
                                         " bytes (the server's --max-upload)")
                     : FromStatus(why);
    r.close = true;
    return r;
  }

 private:
  std::unique_ptr<ObjectUpload> upload_;
  std::string container_;
  std::string name_;
  uint64_t limit_;
};

namespace {

// The page size of object listings: the default and the most one may ask for.
constexpr size_t kMaxObjectPage = 1000;

// The container and name of an object route, checked; the 400 answer otherwise.
std::optional<Response> CheckObjectPath(const std::string& container, const std::string* name) {
  if (Status s = CheckContainerName(container); !s.ok()) return FromStatus(s);
  if (name)
    if (Status s = CheckObjectName(*name); !s.ok()) return FromStatus(s);
  return std::nullopt;
}

}  // namespace

Routed Router::PutObject(const Call& c) {
  if (auto bad = CheckObjectPath(c.container, &c.name)) return {std::move(*bad), nullptr};
  uint64_t declared = 0;
  if (ParseU64(c.req[http::field::content_length], declared) && declared > opt_.max_upload_bytes) {
    Response r =
        ErrorResponse(413, ErrorCode::kTooLarge,
                      "the object is larger than " + std::to_string(opt_.max_upload_bytes) +
                          " bytes (the server's --max-upload)");
    r.close = true;
    return {std::move(r), nullptr};
  }
  auto upload = objects_.Create(*c.tenant, c.container, c.name);
  if (!upload.ok()) return {FromStatus(upload.status()), nullptr};
  return {
      {},
      std::make_unique<ObjectSink>(std::move(*upload), c.container, c.name, opt_.max_upload_bytes)};
}

Routed Router::GetObject(const Call& c) {
  if (auto bad = CheckObjectPath(c.container, &c.name)) return {std::move(*bad), nullptr};
  auto rec = objects_.Stat(*c.tenant, c.container, c.name);
  if (!rec.ok()) return {FromStatus(rec.status()), nullptr};
  if (c.query.contains("validation")) {  // a program's validation report
    auto report = objects_.ValidationReport(*rec);
    if (!report.ok()) return {FromStatus(report.status()), nullptr};
    return {JsonResponse(200, *report), nullptr};
  }
  const std::string etag = rec->ETag();
  const uint64_t size = rec->bytes;
  Response r;
  r.Header("ETag", etag);
  r.Header("Cache-Control", "private, no-cache");
  r.Header("Accept-Ranges", "bytes");
  if (rec->modified > 0) r.Header("Last-Modified", HttpDate(rec->modified));
  if (rec->program) {
    r.Header("X-Program-Verdict", rec->program->accepted ? "accepted" : "rejected");
    if (!rec->program->reason.empty())
      r.Header("X-Program-Reason", HeaderSafe(rec->program->reason));
  }
  std::string_view inm = c.req[http::field::if_none_match];
  if (!inm.empty() && (inm.find(etag) != std::string_view::npos || inm == "*")) {
    r.status = 304;
    return {std::move(r), nullptr};
  }
  std::vector<ByteRange> ranges;
  RangeParse parsed = RangeParse::kNone;
  if (auto bad = RequestedRanges(c.req, size, etag, "object", &parsed, &ranges))
    return {std::move(*bad), nullptr};
  uint64_t first = 0, length = size;
  if (parsed == RangeParse::kSatisfiable && ranges.size() == 1) {  // several: the whole object
    r.status = 206;
    first = ranges[0].first;
    length = ranges[0].last - ranges[0].first + 1;
    r.Header("Content-Range", "bytes " + std::to_string(first) + "-" +
                                  std::to_string(ranges[0].last) + "/" + std::to_string(size));
  }
  r.Header("Content-Type", "application/octet-stream");
  if (length == 0) return {std::move(r), nullptr};
  // (A HEAD opens the reader too: the answer announces its length and sends none of it.)
  auto reader = objects_.Open(*rec);
  if (!reader.ok()) return {FromStatus(reader.status()), nullptr};
  if (Status s = (*reader)->Seek(first); !s.ok()) return {FromStatus(s), nullptr};
  r.body.push_back(
      {"", {}, 0, length, std::shared_ptr<storage::ObjectReader>(std::move(*reader)), nullptr});
  return {std::move(r), nullptr};
}

Routed Router::DeleteObject(const Call& c) {
  if (auto bad = CheckObjectPath(c.container, &c.name)) return {std::move(*bad), nullptr};
  return {NoContentOr(objects_.Delete(*c.tenant, c.container, c.name)), nullptr};
}

Routed Router::ListObjects(const Call& c) {
  if (auto bad = CheckObjectPath(c.container, nullptr)) return {std::move(*bad), nullptr};
  auto get = [&c](const char* key) {
    auto it = c.query.find(key);
    return it == c.query.end() ? std::string() : it->second;
  };
  uint64_t limit = kMaxObjectPage;
  if (auto it = c.query.find("limit"); it != c.query.end())
    if (!ParseU64(it->second, limit) || limit < 1 || limit > kMaxObjectPage)
      return {ErrorResponse(400, ErrorCode::kInvalidArgument, "limit is 1 to 1000"), nullptr};
  auto page = objects_.List(*c.tenant, c.container, get("prefix"), get("marker"),
                            static_cast<size_t>(limit));
  if (!page.ok()) return {FromStatus(page.status()), nullptr};
  json objects = json::array();
  for (const auto& o : page->objects) {
    json entry{{"name", o.name}, {"bytes", o.bytes}, {"etag", storage::ContentHashHex(o.hash)}};
    if (o.program) entry["program"] = ProgramJson(*o.program);
    objects.push_back(std::move(entry));
  }
  return {JsonResponse(200, json{{"objects", objects},
                                 {"next_marker",
                                  page->next_marker ? json(*page->next_marker) : json(nullptr)}}
                                .dump()),
          nullptr};
}

// --- /v1/jobs (exec_jobs.h): submit, follow, list and cancel storage-side jobs. ---

Routed Router::CreateJob(const Call& c) {
  auto handle = [this, tenant = *c.tenant](const json& doc) {
    auto job = jobs_->Submit(tenant, doc);
    if (!job.ok()) return FromStatus(job.status());
    Response r = JsonResponse(201, job->dump());
    r.Header("Location", "/v1/jobs/" + job->value("id", ""));
    return r;
  };
  return {{}, std::make_unique<JsonBodySink>(opt_.max_small_body_bytes, handle)};
}

Routed Router::GetJob(const Call& c) {
  auto job = jobs_->Get(*c.tenant, c.id);
  if (!job.ok()) return {FromStatus(job.status()), nullptr};
  return {JsonResponse(200, job->dump()), nullptr};
}

Routed Router::ListJobs(const Call& c) {
  auto jobs = jobs_->List(*c.tenant);
  if (!jobs.ok()) return {FromStatus(jobs.status()), nullptr};
  return {JsonResponse(200, jobs->dump()), nullptr};
}

Routed Router::CancelJob(const Call& c) {
  return {NoContentOr(jobs_->Cancel(*c.tenant, c.id)), nullptr};
}

namespace {

// The video object (with the farm view of its tasks when `with_chunks`) and its `playback` URLs,
// as soon as the video plays: its HLS head is published long before it is ready (its MP4s come
// when it is).
json WithPlayback(PlaybackSigner& signer, const std::string& base, const std::string& tenant,
                  const scheduler::Video& video, int64_t expires_in, bool with_chunks) {
  json v = scheduler::VideoJson(video, with_chunks);
  const scheduler::VideoRecord& rec = video.record;
  if (rec.status != scheduler::VideoStatus::kReady && !video.playable) return v;
  const std::string& id = rec.id;
  const std::string& policy = rec.playback_policy;
  json p = {{"policy", policy}};
  std::string pid = id;
  if (policy != "public") {
    // Expiry rounded up (to the minute for long grants) so that polling the video returns the
    // same URLs for a while and a player is not reloaded for nothing.
    const int64_t grain = expires_in >= 600 ? 60 : 1;
    const int64_t expires = (NowSeconds() + expires_in + grain - 1) / grain * grain;
    auto signed_id = signer.Sign(tenant, id, "all", expires);
    if (!signed_id.ok()) {
      v["playback"] = nullptr;
      return v;
    }
    pid = *signed_id;
    p["expires_at"] = IsoTime(expires);
  }
  const std::string root = base + "/v1/play/" + pid;
  p["id"] = pid;
  p["hls"] = root + "/hls/master.m3u8";
  p["thumbnail"] = root + "/thumbnail.jpg";
  p["mp4"] = json::object();
  if (rec.ready)
    for (const auto& r : rec.ready->renditions) p["mp4"][r.name] = root + "/mp4/" + r.name + ".mp4";
  p["share"] = base + "/embed.html?v=" + pid;
  p["embed"] = "<iframe src=\"" + base + "/embed.html?v=" + pid +
               "\" width=\"640\" height=\"360\" allow=\"autoplay; fullscreen\" "
               "allowfullscreen style=\"border:0\"></iframe>";
  v["playback"] = p;
  return v;
}

}  // namespace

std::string Router::Decorate(const std::string& base, const std::string& tenant,
                             const scheduler::Video& video, int64_t expires_in) {
  return WithPlayback(signer_, base, tenant, video, expires_in, /*with_chunks=*/true).dump();
}

std::string Router::DecorateList(const std::string& base, const std::string& tenant,
                                 const scheduler::VideoPage& page) {
  json videos = json::array();
  for (const auto& v : page.videos)  // without the farm view of each video's tasks
    videos.push_back(
        WithPlayback(signer_, base, tenant, v, kDefaultPlaybackSeconds, /*with_chunks=*/false));
  return json{{"videos", videos},
              {"next_cursor", page.next_cursor ? json(*page.next_cursor) : json(nullptr)},
              {"total", page.total}}
      .dump();
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
  // A file the small-file cache keeps (a playlist polled again and again) is checked with
  // stat(2) alone and answered from memory. Any other file is opened once: the answer's bytes
  // come from the file stat-ed for its ETag, even if a new one is renamed over the path
  // meanwhile (O_NONBLOCK: a FIFO put in a served folder cannot hold the thread; it is not a
  // regular file anyway).
  struct stat st {};
  std::shared_ptr<const UniqueFd> fd;
  const bool cached = small_files_.Holds(path);
  if (cached && (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)))
    return ErrorResponse(404, ErrorCode::kNotFound, "no such file");
  if (!cached) {
    fd = std::make_shared<const UniqueFd>(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
    if (!fd->valid() || ::fstat(fd->get(), &st) != 0 || !S_ISREG(st.st_mode))
      return ErrorResponse(404, ErrorCode::kNotFound, "no such file");
  }
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
  std::vector<ByteRange> ranges;
  RangeParse parsed = RangeParse::kNone;
  if (auto bad = RequestedRanges(req, size, etag, "file", &parsed, &ranges)) return *bad;
  // A small file (a playlist, a thumbnail) comes from memory while it is the file just
  // stat-ed; anything else is left to the server to read or send from the file.
  auto piece = [&](uint64_t first, uint64_t length) -> Piece {
    if (req.method() != http::verb::head)
      if (auto bytes = small_files_.Get(path, st))
        return {bytes->substr(first, length), {}, 0, 0, nullptr, nullptr};
    return {"", path, first, length, nullptr, fd};
  };
  if (parsed == RangeParse::kNone) {
    r.Header("Content-Type", type);
    r.body.push_back(piece(0, size));
    return r;
  }
  r.status = 206;
  if (ranges.size() == 1) {
    r.Header("Content-Type", type);
    r.Header("Content-Range", "bytes " + std::to_string(ranges[0].first) + "-" +
                                  std::to_string(ranges[0].last) + "/" + std::to_string(size));
    r.body.push_back(piece(ranges[0].first, ranges[0].last - ranges[0].first + 1));
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
                      0,
                      nullptr,
                      nullptr});
    r.body.push_back({"", path, br.first, br.last - br.first + 1, nullptr, fd});
  }
  r.body.push_back({"\r\n--" + boundary + "--\r\n", {}, 0, 0, nullptr, nullptr});
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
  r.body.push_back({out, {}, 0, 0, nullptr, nullptr});
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
         0,
         nullptr,
         nullptr});
    return r;
  }
  return ErrorResponse(404, ErrorCode::kNotFound, "no such file");
}

Response Router::Metrics() {
  const scheduler::ServiceMetrics m = videos_.Metrics();
  PromText p;
  p.Family("zerofarm_build_info", "gauge", "The version this server was built from (always 1).")
      << "zerofarm_build_info{version=\"" << ZEROFARM_VERSION << "\",compiler=\""
#if defined(__clang__)
      << "clang " << __clang_major__ << "." << __clang_minor__
#elif defined(__GNUC__)
      << "gcc " << __GNUC__ << "." << __GNUC_MINOR__
#endif
      << "\"} 1\n";
  {
    const ProcessMemory pm = ReadProcessMemory();
    p.Gauge("process_resident_memory_bytes", "Resident memory of this process.", pm.resident_bytes);
    p.Gauge("process_open_fds", "Open file descriptors of this process.", pm.open_fds);
    p.Gauges("zerofarm_heap_bytes",
             "The C allocator's heap: in use (allocated, not freed) and free (kept, not returned).",
             "state", {{"in_use", pm.heap_in_use_bytes}, {"free", pm.heap_free_bytes}});
    const storage::StoreMemory sm = videos_.store().Memory();
    p.Gauges("zerofarm_store_memory_bytes",
             "Memory of the embedded store: RocksDB memtables, block caches, table readers.",
             "kind",
             {{"memtables", sm.memtable_bytes},
              {"block_cache", sm.block_cache_bytes},
              {"table_readers", sm.table_reader_bytes}});
  }
  p.Gauge("zerofarm_videos_in_memory",
          "Videos whose upload or job state is held in memory (uploading, processing, just "
          "finished).",
          m.videos_in_memory);
  p.Counter("zerofarm_uploads_total", "Uploads started.", m.uploads_started);
  p.Counter("zerofarm_uploads_completed_total", "Uploads received whole.", m.uploads_completed);
  p.Counter("zerofarm_upload_bytes_total", "Upload bytes received.", m.upload_bytes);
  p.Counter("zerofarm_http_bytes_in_total", "Request body bytes read.", counters_.bytes_in.load());
  p.Counter("zerofarm_http_bytes_out_total", "Response body bytes sent.",
            counters_.bytes_out.load());
  p.Gauge("zerofarm_http_connections", "Open connections.", counters_.connections.load());
  {
    std::lock_guard lock(counters_.mu);
    p.Counters("zerofarm_http_responses_total", "Responses by status code.", "code",
               counters_.responses);
    p.Counters("zerofarm_http_rejections_total", "Requests refused by a limit.", "reason",
               counters_.rejections);
  }
  p.Gauges("zerofarm_tasks", "Transcode tasks by state.", "state", m.tasks_by_state);
  p.Gauges("zerofarm_videos", "Videos by status.", "status", m.videos_by_status);
  p.Counters("zerofarm_video_failures_total", "Failed videos by reason.", "reason",
             m.failures_by_reason);
  std::ostream& o =
      p.Family("zerofarm_transcode_seconds", "histogram", "Wall time of finished transcode tasks.");
  for (size_t i = 0; i < m.transcode_buckets.size(); ++i)
    o << "zerofarm_transcode_seconds_bucket{le=\"" << m.transcode_buckets[i] << "\"} "
      << (i < m.transcode_bucket_counts.size() ? m.transcode_bucket_counts[i] : 0) << "\n";
  o << "zerofarm_transcode_seconds_bucket{le=\"+Inf\"} " << m.transcode_count << "\n";
  o << "zerofarm_transcode_seconds_sum " << m.transcode_sum << "\n";
  o << "zerofarm_transcode_seconds_count " << m.transcode_count << "\n";
  p.Gauge("zerofarm_queue_depth", "Tasks waiting for a worker slot.", m.queue_depth);
  p.Gauge("zerofarm_workers_busy", "Worker slots in use.", m.workers_busy);
  p.Counter("zerofarm_sandbox_refusals_total", "Worker runs refused or killed by a sandbox rule.",
            m.sandbox_refusals);
  if (!m.nodes.empty()) {
    auto per_node = [&m](auto value) {
      std::vector<std::pair<std::string, uint64_t>> samples;
      for (const auto& n : m.nodes) samples.emplace_back(n.endpoint, value(n));
      return samples;
    };
    p.Gauges("zerofarm_node_up", "Storage nodes answering heartbeats (proxy).", "node",
             per_node([](const auto& n) { return n.alive ? 1 : 0; }));
    p.Gauges("zerofarm_node_tasks_running", "Tasks running per storage node (proxy).", "node",
             per_node([](const auto& n) { return n.tasks_running; }));
    p.Gauge("zerofarm_ring_generation",
            "The proxy's ring: 1 at start, +1 per accepted reload of the ring file.",
            m.ring_generation);
    p.Gauges("zerofarm_node_same_ring",
             "Storage nodes whose last heartbeat carried the proxy's ring (proxy).", "node",
             per_node([](const auto& n) { return n.same_ring ? 1 : 0; }));
    p.Gauges("zerofarm_node_disk_full",
             "Storage nodes below their free-space reserve, refusing writes (proxy).", "node",
             per_node([](const auto& n) { return n.disk_full ? 1 : 0; }));
    p.Counter("zerofarm_cluster_bytes_sent_total", "Bytes sent to storage nodes.",
              m.cluster_bytes_sent);
    p.Counter("zerofarm_cluster_bytes_received_total", "Bytes received from storage nodes.",
              m.cluster_bytes_received);
    p.Counter("zerofarm_tasks_moved_total", "Tasks moved off a dead or restarted storage node.",
              m.tasks_lost);
    p.Counter("zerofarm_backup_copies_total", "Backup copies started for stragglers.",
              m.backup_copies);
    p.Counter("zerofarm_backup_wins_total", "Backup copies that finished first.", m.backup_wins);
    p.Counter("zerofarm_remote_placements_total",
              "Tasks run on a node holding no replica of their chunk.", m.remote_placements);
  }
  Response r;
  r.Header("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
  r.Header("Cache-Control", kNoCache);
  r.body.push_back({p.str(), {}, 0, 0, nullptr, nullptr});
  return r;
}

}  // namespace zerofarm::api
