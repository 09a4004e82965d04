// Sha256Hex (sha256.h).
#include "zerofarm/base/sha256.h"

#include <openssl/evp.h>

#include "zerofarm/base/hex.h"

namespace zerofarm {

std::string Sha256Hex(std::span<const std::byte> data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_Digest(data.data(), data.size(), digest, &length, EVP_sha256(), nullptr) != 1) return {};
  return LowerHex({digest, length});
}

}  // namespace zerofarm
