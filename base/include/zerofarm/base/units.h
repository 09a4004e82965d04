// Sizes and durations as people write them on command lines and in job documents. Pure.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace zerofarm {

// "512M", "2G", "4096" -> bytes (K, M, G, T are powers of 1024; also KiB.., and B); nullopt
// when malformed or too large for 64 bits.
std::optional<uint64_t> ParseByteSize(const std::string& s);

// "10s", "500ms", "2m", "1h", "30" (seconds) -> milliseconds; nullopt when malformed.
std::optional<std::chrono::milliseconds> ParseDuration(const std::string& s);

}  // namespace zerofarm
