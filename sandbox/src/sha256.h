// SHA-256 of a byte span, as 64 lowercase hex digits (OpenSSL libcrypto). Reentrant.
#pragma once

#include <cstddef>
#include <span>
#include <string>

namespace zerofarm::sandbox {

std::string Sha256Hex(std::span<const std::byte> data);

}  // namespace zerofarm::sandbox
