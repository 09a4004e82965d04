// Router (router.h): every route of the API.
#include "router.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "http_util.h"
#include "zerofarm/transcode/ladder.h"

namespace zerofarm::api {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr const char* kImmutable = "public, max-age=31536000, immutable";
constexpr const char* kNoCache = "no-cache";

Response JsonResponse(unsigned status, const std::string& body) {
  Response r;
  r.status = status;
  r.Header("Content-Type", "application/json");
  r.Header("Cache-Control", kNoCache);
  r.body.push_back({body + "\n", {}, 0, 0});
  return r;
}

unsigned StatusForCode(const std::string& code) {
  if (code == "not_found" || code == "not_ready") return 404;
  if (code == "conflict") return 409;
  if (code == "invalid_argument" || code == "bad_multipart" || code == "bad_request") return 400;
  if (code == "body_limit") return 413;
  if (code == "timeout") return 408;
  return 500;
}

Response FromStatus(const Status& s) {
  return ErrorResponse(StatusForCode(s.code()), s.code(), s.message());
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

std::string Base64Decode(std::string_view in) {
  static const std::string kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    if (c == '=') break;
    size_t v = kAlphabet.find(c);
    if (v == std::string::npos) continue;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  return out;
}

// tus Upload-Metadata: "key base64,key2 base64".
std::map<std::string, std::string> ParseUploadMetadata(std::string_view header) {
  std::map<std::string, std::string> out;
  while (!header.empty()) {
    size_t comma = header.find(',');
    std::string_view pair = header.substr(0, comma);
    while (!pair.empty() && pair.front() == ' ') pair.remove_prefix(1);
    size_t space = pair.find(' ');
    std::string key(pair.substr(0, space));
    if (!key.empty())
      out[key] = space == std::string_view::npos ? "" : Base64Decode(pair.substr(space + 1));
    if (comma == std::string_view::npos) break;
    header.remove_prefix(comma + 1);
  }
  return out;
}

std::string SafeFilename(std::string name) {
  if (size_t slash = name.find_last_of("/\\"); slash != std::string::npos) name.erase(0, slash + 1);
  std::string out;
  for (char c : name)
    if (static_cast<unsigned char>(c) >= 0x20 && c != 0x7f) out += c;
  if (out.size() > 200) out.resize(200);
  return out;
}

Status CheckOptions(const std::map<std::string, std::string>& query, scheduler::NewVideo& v) {
  if (auto it = query.find("ladder"); it != query.end() && !it->second.empty()) {
    auto ladder = transcode::ParseLadder(it->second);
    if (!ladder.ok()) return Status::Error("invalid_argument", ladder.status().message());
    v.ladder = *ladder;
  }
  if (auto it = query.find("preset"); it != query.end() && !it->second.empty()) {
    static const char* kPresets[] = {"ultrafast", "superfast", "veryfast", "faster",  "fast",
                                     "medium",    "slow",      "slower",   "veryslow"};
    if (std::find(std::begin(kPresets), std::end(kPresets), it->second) == std::end(kPresets))
      return Status::Error("invalid_argument", "unknown x264 preset '" + it->second + "'");
    v.preset = it->second;
  }
  if (auto it = query.find("filename"); it != query.end()) v.filename = SafeFilename(it->second);
  return Status::Ok();
}

// The route template a path has, "" when none; static web files are "static".
std::string TemplateOf(const std::vector<std::string>& s) {
  const size_t n = s.size();
  if (n == 0) return "/";
  if (s[0] != "v1") {
    if (n == 1 && s[0] == "healthz") return "/healthz";
    if (n == 1 && s[0] == "metrics") return "/metrics";
    return "static";
  }
  if (n >= 2 && s[1] == "videos") {
    if (n == 2) return "/v1/videos";
    if (n == 3) return "/v1/videos/{id}";
    if (n == 4 && s[3] == "thumbnail.jpg") return "/v1/videos/{id}/thumbnail.jpg";
    if (n == 5 && s[3] == "hls" && s[4] == "master.m3u8") return "/v1/videos/{id}/hls/master.m3u8";
    if (n == 6 && s[3] == "hls") return "/v1/videos/{id}/hls/{rung}/{file}";
    if (n == 5 && s[3] == "mp4" && s[4].size() > 4 && s[4].ends_with(".mp4"))
      return "/v1/videos/{id}/mp4/{rung}.mp4";
  }
  if (n >= 2 && s[1] == "uploads") {
    if (n == 2) return "/v1/uploads";
    if (n == 3) return "/v1/uploads/{upload_id}";
  }
  return "";
}

}  // namespace

uint64_t Response::size() const {
  uint64_t n = 0;
  for (const auto& p : body) n += p.size();
  return n;
}

Response ErrorResponse(unsigned status, const std::string& code, const std::string& message) {
  json j = {{"error", {{"code", code}, {"message", message}}}};
  return JsonResponse(status, j.dump());
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
  static const std::vector<std::pair<std::string, std::string>> kRoutes = {
      {"GET", "/"},
      {"HEAD", "/"},
      {"GET", "/healthz"},
      {"HEAD", "/healthz"},
      {"GET", "/metrics"},
      {"HEAD", "/metrics"},
      {"GET", "/v1/videos"},
      {"HEAD", "/v1/videos"},
      {"POST", "/v1/videos"},
      {"GET", "/v1/videos/{id}"},
      {"HEAD", "/v1/videos/{id}"},
      {"DELETE", "/v1/videos/{id}"},
      {"GET", "/v1/videos/{id}/hls/master.m3u8"},
      {"HEAD", "/v1/videos/{id}/hls/master.m3u8"},
      {"GET", "/v1/videos/{id}/hls/{rung}/{file}"},
      {"HEAD", "/v1/videos/{id}/hls/{rung}/{file}"},
      {"GET", "/v1/videos/{id}/mp4/{rung}.mp4"},
      {"HEAD", "/v1/videos/{id}/mp4/{rung}.mp4"},
      {"GET", "/v1/videos/{id}/thumbnail.jpg"},
      {"HEAD", "/v1/videos/{id}/thumbnail.jpg"},
      {"OPTIONS", "/v1/uploads"},
      {"POST", "/v1/uploads"},
      {"HEAD", "/v1/uploads/{upload_id}"},
      {"PATCH", "/v1/uploads/{upload_id}"},
      {"DELETE", "/v1/uploads/{upload_id}"},
  };
  return kRoutes;
}

// A one-shot upload: POST /v1/videos with a raw or multipart body.
class UploadSink final : public BodySink {
 public:
  UploadSink(Router& r, scheduler::NewVideo v, std::optional<MultipartReader> multipart,
             uint64_t limit)
      : r_(r), v_(std::move(v)), multipart_(std::move(multipart)), limit_(limit) {}
  uint64_t limit() const override { return limit_; }

  Status Consume(std::span<const std::byte> bytes) override {
    if (!multipart_) {
      ZF_RETURN_IF_ERROR(EnsureCreated());
      return r_.videos_.Append(id_, bytes);
    }
    return multipart_->Feed(
        bytes, [this](std::string_view filename, std::span<const std::byte> data) -> Status {
          if (v_.filename.empty()) v_.filename = SafeFilename(std::string(filename));
          ZF_RETURN_IF_ERROR(EnsureCreated());
          return r_.videos_.Append(id_, data);
        });
  }

  Response Finish() override {
    if (multipart_ && !multipart_->file_done()) {
      if (!id_.empty())
        r_.videos_.AbortUpload(id_, "bad_request", "the multipart body ended inside the file");
      return ErrorResponse(400, "bad_multipart",
                           "the multipart/form-data body has no complete \"file\" part");
    }
    if (Status s = EnsureCreated(); !s.ok()) return FromStatus(s);
    auto committed = r_.videos_.Commit(id_, /*final=*/true);
    if (!committed.ok()) return FromStatus(committed.status());
    auto video = r_.videos_.Get(v_.tenant, id_);
    if (!video.ok()) return FromStatus(video.status());
    Response resp = JsonResponse(201, *video);
    resp.Header("Location", "/v1/videos/" + id_);
    return resp;
  }

  Response Fail(const Status& why) override {
    if (!id_.empty()) {
      if (why.code() == "body_limit")
        r_.videos_.AbortUpload(id_, "too_large", "the upload passed the server's size limit");
      else
        r_.videos_.AbortUpload(id_, "upload_incomplete",
                               "the upload stopped before its end (" + why.message() + ")");
    }
    Response resp = FromStatus(why);
    resp.close = true;
    return resp;
  }

 private:
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

Routed Router::Route(const Request& req) {
  try {
    return RouteUnguarded(req);
  } catch (const std::exception& e) {
    return {ErrorResponse(500, "internal", std::string("internal error: ") + e.what()), nullptr};
  }
}

Routed Router::RouteUnguarded(const Request& req) {
  std::vector<std::string> segs;
  std::string raw_query;
  if (!SplitTarget(req.target(), segs, raw_query))
    return {ErrorResponse(400, "bad_path", "the request path is not acceptable"), nullptr};
  const auto query = ParseQuery(raw_query);
  const std::string tmpl = TemplateOf(segs);
  std::string method(req.method_string());
  const bool head = req.method() == http::verb::head;
  const bool tus = tmpl.starts_with("/v1/uploads");

  if (tmpl.empty()) return {ErrorResponse(404, "route_not_found", "no such route"), nullptr};
  if (tmpl == "static") {
    if (req.method() != http::verb::get && !head) {
      Response r = ErrorResponse(405, "method_not_allowed", "only GET and HEAD here");
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
      r.Header("Tus-Extension", "creation,termination");
      r.Header("Tus-Max-Size", std::to_string(opt_.max_upload_bytes));
    }
    return {std::move(r), nullptr};
  }
  bool allowed = false;
  for (const auto& [m, t] : Routes()) allowed |= t == tmpl && m == method;
  if (!allowed) {
    Response r = ErrorResponse(405, "method_not_allowed", method + " is not allowed here");
    r.Header("Allow", allow);
    return {std::move(r), nullptr};
  }

  Routed out;
  if (tmpl == "/") {
    out.response = ServeStatic(req, segs);
  } else if (tmpl == "/healthz") {
    // A proxy without a quorum of storage nodes cannot take writes (ClusterClient).
    out.response =
        videos_.Metrics().writes_possible
            ? JsonResponse(200, R"({"status":"ok"})")
            : ErrorResponse(503, "no_quorum", "too few storage nodes answer to store a write");
  } else if (tmpl == "/metrics") {
    out.response = Metrics();
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
    Response r = ErrorResponse(401, "unauthorized", "a valid bearer token is required");
    r.Header("WWW-Authenticate", "Bearer realm=\"zerofarm\"");
    return {std::move(r), nullptr};
  }
  const http::verb verb = req.method();

  if (tmpl == "/v1/videos" && verb == http::verb::post) {
    scheduler::NewVideo v;
    v.tenant = *tenant;
    if (Status s2 = CheckOptions(query, v); !s2.ok()) return {FromStatus(s2), nullptr};
    uint64_t declared = 0;
    const bool has_length = ParseU64(req[http::field::content_length], declared);
    if (has_length && declared > opt_.max_upload_bytes) {
      Response r = ErrorResponse(
          413, "too_large",
          "the upload is larger than " + std::to_string(opt_.max_upload_bytes) + " bytes");
      r.close = true;
      return {std::move(r), nullptr};
    }
    std::optional<MultipartReader> multipart;
    std::string_view ct = req[http::field::content_type];
    if (ct.substr(0, 10) == "multipart/") {
      multipart = MultipartReader::ForContentType(ct);
      if (!multipart)
        return {ErrorResponse(400, "bad_multipart", "multipart/form-data needs a boundary"),
                nullptr};
    } else if (has_length) {
      v.length = declared;
    }
    return {{},
            std::make_unique<UploadSink>(*this, std::move(v), std::move(multipart),
                                         opt_.max_upload_bytes)};
  }
  if (tmpl == "/v1/videos") {
    auto list = videos_.List(*tenant);
    return {list.ok() ? JsonResponse(200, *list) : FromStatus(list.status()), nullptr};
  }
  if (tmpl == "/v1/uploads") {  // tus creation
    if (req["Tus-Resumable"] != "1.0.0") {
      Response r = ErrorResponse(412, "tus_version", "Tus-Resumable: 1.0.0 is required");
      r.Header("Tus-Version", "1.0.0");
      return {std::move(r), nullptr};
    }
    uint64_t length = 0;
    if (!ParseU64(req["Upload-Length"], length))
      return {ErrorResponse(400, "bad_request", "Upload-Length is required (no deferred length)"),
              nullptr};
    if (length > opt_.max_upload_bytes)
      return {ErrorResponse(413, "too_large",
                            "Upload-Length is above " + std::to_string(opt_.max_upload_bytes)),
              nullptr};
    auto meta = ParseUploadMetadata(req["Upload-Metadata"]);
    scheduler::NewVideo v;
    v.tenant = *tenant;
    v.length = length;
    v.resumable = true;
    std::map<std::string, std::string> opts;
    for (const char* k : {"ladder", "preset", "filename"})
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
    return {std::move(r), nullptr};
  }
  if (tmpl == "/v1/uploads/{upload_id}") {
    if (verb != http::verb::head && req["Tus-Resumable"] != "1.0.0") {
      Response r = ErrorResponse(412, "tus_version", "Tus-Resumable: 1.0.0 is required");
      r.Header("Tus-Version", "1.0.0");
      return {std::move(r), nullptr};
    }
    const std::string& uid = s[2];
    auto st = scheduler::IsUploadId(uid) ? videos_.FindUpload(uid)
                                         : Result<scheduler::VideoService::UploadState>(
                                               Status::Error("not_found", "no upload " + uid));
    if (!st.ok() || st->tenant != *tenant)
      return {ErrorResponse(404, "not_found", "no upload " + uid), nullptr};
    if (verb == http::verb::head) {
      Response r;
      r.Header("Upload-Offset", std::to_string(st->offset));
      if (st->length) r.Header("Upload-Length", std::to_string(*st->length));
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
      return {ErrorResponse(415, "unsupported_media_type",
                            "PATCH needs Content-Type: application/offset+octet-stream"),
              nullptr};
    uint64_t offset = 0;
    if (!ParseU64(req["Upload-Offset"], offset))
      return {ErrorResponse(400, "bad_request", "Upload-Offset is required"), nullptr};
    if (offset != st->offset || st->ended) {
      Response r = ErrorResponse(409, "offset_mismatch",
                                 "the upload is at offset " + std::to_string(st->offset));
      r.Header("Upload-Offset", std::to_string(st->offset));
      return {std::move(r), nullptr};
    }
    uint64_t declared = 0;
    if (ParseU64(req[http::field::content_length], declared) && st->length &&
        declared > *st->length - offset) {
      Response r = ErrorResponse(413, "too_large", "the PATCH passes Upload-Length");
      r.close = true;
      return {std::move(r), nullptr};
    }
    if (!LockUpload(uid))
      return {ErrorResponse(409, "upload_busy", "another PATCH of this upload is in progress"),
              nullptr};
    return {{}, std::make_unique<PatchSink>(*this, *st, uid)};
  }

  // /v1/videos/{id}...
  const std::string& id = s[2];
  if (!scheduler::IsVideoId(id))
    return {ErrorResponse(404, "not_found", "no video " + id), nullptr};
  if (tmpl == "/v1/videos/{id}") {
    if (verb == http::verb::delete_) {
      Status d = videos_.Delete(*tenant, id);
      if (!d.ok()) return {FromStatus(d), nullptr};
      Response r;
      r.status = 204;
      return {std::move(r), nullptr};
    }
    auto v = videos_.Get(*tenant, id);
    return {v.ok() ? JsonResponse(200, *v) : FromStatus(v.status()), nullptr};
  }
  auto dir = videos_.OutputDir(*tenant, id);
  if (!dir.ok()) return {FromStatus(dir.status()), nullptr};
  if (tmpl == "/v1/videos/{id}/thumbnail.jpg")
    return {ServeFile(req, *dir / "thumbnail.jpg", kImmutable), nullptr};
  if (tmpl == "/v1/videos/{id}/hls/master.m3u8")
    return {ServePlaylist(req, *dir / "master.m3u8", query), nullptr};
  if (tmpl == "/v1/videos/{id}/mp4/{rung}.mp4") {
    const std::string rung = s[4].substr(0, s[4].size() - 4);
    if (!IsRung(rung) || rung == "audio")
      return {ErrorResponse(404, "not_found", "no rendition " + rung), nullptr};
    return {ServeFile(req, *dir / (rung + ".mp4"), kImmutable), nullptr};
  }
  // hls/{rung}/{file}
  if (!IsRung(s[4]) || !IsMediaFile(s[5]))
    return {ErrorResponse(404, "not_found", "no such file"), nullptr};
  const bool playlist = s[5].ends_with(".m3u8");
  if (playlist) return {ServePlaylist(req, *dir / s[4] / s[5], query), nullptr};
  return {ServeFile(req, *dir / s[4] / s[5], kImmutable), nullptr};
}

Response Router::ServeFile(const Request& req, const fs::path& path,
                           const std::string& cache_control) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
    return ErrorResponse(404, "not_found", "no such file");
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
    Response e = ErrorResponse(416, "range_not_satisfiable", "the range is outside the file");
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
  if (!in) return ErrorResponse(404, "not_found", "no such file");
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
    if (!IsStaticName(s)) return ErrorResponse(404, "not_found", "no such file");
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
  return ErrorResponse(404, "not_found", "no such file");
}

Response Router::Metrics() {
  const scheduler::ServiceMetrics m = videos_.Metrics();
  std::ostringstream o;
  auto family = [&](const char* name, const char* type, const char* help) {
    o << "# HELP " << name << " " << help << "\n# TYPE " << name << " " << type << "\n";
  };
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
