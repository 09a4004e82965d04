// Playback access of its own: per-tenant signing keys (HMAC-SHA256, OpenSSL libcrypto) and the
// playback ids that let a player fetch a video's playlists, segments, MP4s and thumbnail with no
// API token. A playback id is either the video id (a `public` video) or a signed grant:
//
//   <video id>.<scope>.<expires>.<key id>.<signature>
//   signature = hex(HMAC-SHA256(key secret, "zerofarm-playback-v1\n" + video id + "\n" + scope +
//                               "\n" + expires + "\n" + key id))
//
// scope is "all", "hls", "mp4" or "thumbnail"; expires is Unix seconds. The id is one path
// segment (/v1/play/{playback_id}/...), so playlists keep relative URLs and carry no secret.
// Keys live in the store's meta ("signing_keys/<key id>"); the newest key of a tenant signs,
// every key verifies until it is retired (deleted), so keys rotate without breaking live links.
// Thread safety: PlaybackSigner is safe for concurrent use. The store must outlive it.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "zerofarm/base/status.h"
#include "zerofarm/storage/store.h"

namespace zerofarm::api {

struct SigningKey {
  std::string id;       // "k_" + 16 hex digits
  std::string tenant;   // owner
  std::string secret;   // 64 hex digits (32 random bytes); shown once, at creation
  int64_t created = 0;  // Unix seconds
};

// What a valid signed playback id grants.
struct PlaybackGrant {
  std::string video_id;
  std::string scope;
  int64_t expires = 0;
  std::string key_id;
  std::string tenant;  // the key's owner
};

class PlaybackSigner {
 public:
  explicit PlaybackSigner(storage::Store& store) : store_(store) {}

  // A new key for `tenant`; it signs from now on. Stored (synced) before it is returned.
  Result<SigningKey> CreateKey(const std::string& tenant);
  // The tenant's keys, newest first (secrets blanked).
  Result<std::vector<SigningKey>> ListKeys(const std::string& tenant);
  // Retires a key: ids signed with it stop verifying. "not_found" for another tenant's key.
  Status RetireKey(const std::string& tenant, const std::string& key_id);

  // A signed playback id with the tenant's newest key (one is created when it has none).
  Result<std::string> Sign(const std::string& tenant, const std::string& video_id,
                           const std::string& scope, int64_t expires);
  // Checks a signed playback id at time `now`. Errors: "forbidden" (malformed, unknown or
  // retired key, wrong signature), "expired".
  Result<PlaybackGrant> Verify(std::string_view playback_id, int64_t now);

 private:
  Status LoadLocked();  // requires mu_
  storage::Store& store_;
  std::mutex mu_;
  bool loaded_ = false;
  std::map<std::string, SigningKey> keys_;  // by key id
};

bool IsPlaybackScope(std::string_view scope);
// HMAC-SHA256 of `message` with `key` as 64 lower-case hex digits.
std::string HmacSha256Hex(std::string_view key, std::string_view message);
// Constant-time comparison of two strings of equal length (false when lengths differ).
bool ConstantTimeEquals(std::string_view a, std::string_view b);

}  // namespace zerofarm::api
