// PlaybackSigner (playback.h).
#include "playback.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <cerrno>
#include <ctime>
#include <nlohmann/json.hpp>

#include "zerofarm/base/hex.h"

namespace zerofarm::api {
namespace {

using json = nlohmann::json;
constexpr const char* kKeyPrefix = "signing_keys/";

bool IsKeyId(std::string_view s) { return IsHexId(s, "k_", 16); }

std::string SigningString(std::string_view video_id, std::string_view scope, int64_t expires,
                          std::string_view key_id) {
  std::string m = "zerofarm-playback-v1\n";
  m.append(video_id).append("\n").append(scope).append("\n");
  m.append(std::to_string(expires)).append("\n").append(key_id);
  return m;
}

std::vector<std::string_view> SplitDots(std::string_view s) {
  std::vector<std::string_view> out;
  while (true) {
    size_t dot = s.find('.');
    out.push_back(s.substr(0, dot));
    if (dot == std::string_view::npos) break;
    s.remove_prefix(dot + 1);
  }
  return out;
}

}  // namespace

std::string HmacSha256Hex(std::string_view key, std::string_view message) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(), md, &len);
  return LowerHex({md, len});
}

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

bool IsPlaybackScope(std::string_view scope) {
  return scope == "all" || scope == "hls" || scope == "mp4" || scope == "thumbnail";
}

Status PlaybackSigner::LoadLocked() {
  if (loaded_) return Status::Ok();
  auto listed = store_.ListMeta(kKeyPrefix);
  if (!listed.ok()) return listed.status();
  for (const auto& [key, value] : *listed) {
    json j = json::parse(value, nullptr, false);
    if (j.is_discarded() || !j.is_object()) continue;
    SigningKey k;
    k.id = j.value("id", "");
    k.tenant = j.value("tenant", "");
    k.secret = j.value("secret", "");
    k.created = j.value("created", int64_t{0});
    if (IsKeyId(k.id) && IsLowerHex(k.secret, 64)) keys_[k.id] = k;
  }
  loaded_ = true;
  return Status::Ok();
}

Result<SigningKey> PlaybackSigner::CreateKey(const std::string& tenant) {
  std::lock_guard lock(mu_);
  ZF_RETURN_IF_ERROR(LoadLocked());
  SigningKey k;
  k.id = "k_" + RandomHex(8);
  k.tenant = tenant;
  k.secret = RandomHex(32);
  k.created = static_cast<int64_t>(std::time(nullptr));
  // Keys made within one second keep their order of creation: newest has the largest value.
  for (const auto& [id, other] : keys_)
    if (other.tenant == tenant && other.created >= k.created) k.created = other.created + 1;
  json j = {{"id", k.id}, {"tenant", k.tenant}, {"secret", k.secret}, {"created", k.created}};
  ZF_RETURN_IF_ERROR(store_.PutMeta(kKeyPrefix + k.id, j.dump()));
  keys_[k.id] = k;
  return k;
}

Result<std::vector<SigningKey>> PlaybackSigner::ListKeys(const std::string& tenant) {
  std::lock_guard lock(mu_);
  ZF_RETURN_IF_ERROR(LoadLocked());
  std::vector<SigningKey> out;
  for (const auto& [id, k] : keys_)
    if (k.tenant == tenant) {
      out.push_back(k);
      out.back().secret.clear();
    }
  std::sort(out.begin(), out.end(),
            [](const SigningKey& a, const SigningKey& b) { return a.created > b.created; });
  return out;
}

Status PlaybackSigner::RetireKey(const std::string& tenant, const std::string& key_id) {
  std::lock_guard lock(mu_);
  ZF_RETURN_IF_ERROR(LoadLocked());
  auto it = keys_.find(key_id);
  if (it == keys_.end() || it->second.tenant != tenant)
    return Status::Error(ErrorCode::kNotFound, "no signing key " + key_id);
  ZF_RETURN_IF_ERROR(store_.DeleteMeta(kKeyPrefix + key_id));
  keys_.erase(it);
  return Status::Ok();
}

Result<std::string> PlaybackSigner::Sign(const std::string& tenant, const std::string& video_id,
                                         const std::string& scope, int64_t expires) {
  if (!IsPlaybackScope(scope))
    return Status::Error(ErrorCode::kInvalidArgument, "unknown playback scope '" + scope + "'");
  const SigningKey* newest = nullptr;
  {
    std::lock_guard lock(mu_);
    ZF_RETURN_IF_ERROR(LoadLocked());
    for (const auto& [id, k] : keys_)
      if (k.tenant == tenant && (!newest || k.created > newest->created)) newest = &k;
    if (newest) {
      const std::string sig =
          HmacSha256Hex(newest->secret, SigningString(video_id, scope, expires, newest->id));
      return video_id + "." + scope + "." + std::to_string(expires) + "." + newest->id + "." + sig;
    }
  }
  auto created = CreateKey(tenant);
  if (!created.ok()) return created.status();
  return Sign(tenant, video_id, scope, expires);
}

Result<PlaybackGrant> PlaybackSigner::Verify(std::string_view playback_id, int64_t now) {
  const Status forbidden =
      Status::Error(ErrorCode::kForbidden, "the playback signature is not valid");
  const auto parts = SplitDots(playback_id);
  if (parts.size() != 5) return forbidden;
  PlaybackGrant g;
  g.video_id = std::string(parts[0]);
  g.scope = std::string(parts[1]);
  g.key_id = std::string(parts[3]);
  const std::string_view exp = parts[2];
  if (!IsPlaybackScope(g.scope) || !IsKeyId(g.key_id) || !IsLowerHex(parts[4], 64) || exp.empty() ||
      exp.size() > 12 ||
      !std::all_of(exp.begin(), exp.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return forbidden;
  g.expires = std::stoll(std::string(exp));
  std::string secret;
  {
    std::lock_guard lock(mu_);
    ZF_RETURN_IF_ERROR(LoadLocked());
    auto it = keys_.find(g.key_id);
    if (it == keys_.end()) return forbidden;
    secret = it->second.secret;
    g.tenant = it->second.tenant;
  }
  const std::string want =
      HmacSha256Hex(secret, SigningString(g.video_id, g.scope, g.expires, g.key_id));
  if (!ConstantTimeEquals(want, parts[4])) return forbidden;
  if (now >= g.expires) return Status::Error(ErrorCode::kExpired, "the playback link has expired");
  return g;
}

}  // namespace zerofarm::api
