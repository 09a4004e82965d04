// SHA-256 digests as lower-case hex (OpenSSL libcrypto; target zerofarm_sha256, apart from
// zerofarm_base so that what does not hash never links libcrypto). Pure; thread-safe.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>

namespace zerofarm {

// The digest of `data` as 64 hex digits; empty only if OpenSSL cannot allocate, so a lookup by
// digest then misses instead of matching a wrong entry.
std::string Sha256Hex(std::span<const std::byte> data);
inline std::string Sha256Hex(std::string_view text) {
  return Sha256Hex(std::as_bytes(std::span(text.data(), text.size())));
}

}  // namespace zerofarm
