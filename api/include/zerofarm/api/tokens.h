// TokenStore: the bearer tokens of tenants. Tokens are stored hashed (SHA-256, hex) in one
// append-only file (DATA/tokens.tsv: "sha256<TAB>tenant<TAB>created_at" lines, mode 0600), so
// `zerofarm token create` can add a token while `zerofarm serve` runs: Lookup re-reads the
// file when it changed (checked on every unknown token, and at most once a second for known
// ones, so removing a line by hand revokes its token within a second). The token itself is printed
// once and never stored. Thread safety: safe for concurrent use; several processes may append at
// once (O_APPEND, one write per line, fsynced).
#pragma once

#include <chrono>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "zerofarm/base/status.h"

namespace zerofarm::api {

class TokenStore {
 public:
  explicit TokenStore(std::filesystem::path file) : file_(std::move(file)) {}

  // A new random token ("zf_" + 64 hex digits) for `tenant` ([A-Za-z0-9._-]{1,64}); its hash is
  // appended and synced before it is returned.
  Result<std::string> Create(const std::string& tenant);
  // The tenant owning `token`, or nullopt.
  std::optional<std::string> Lookup(std::string_view token);
  // How many tokens the file holds.
  Result<size_t> Count();

 private:
  Status ReloadIfChanged();  // requires mu_
  std::filesystem::path file_;
  std::mutex mu_;
  std::unordered_map<std::string, std::string> tenants_;  // sha256 hex -> tenant
  int64_t loaded_mtime_ = -1;
  std::chrono::steady_clock::time_point checked_;  // last ReloadIfChanged
  uint64_t loaded_size_ = 0;
};

bool IsTenantName(std::string_view name);

}  // namespace zerofarm::api
