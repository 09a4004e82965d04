// Lower-case hexadecimal text of bytes, and random identifiers made of it. Pure functions;
// thread-safe.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>

namespace zerofarm {

// "00ff1a..." : two lower-case hex digits per byte, in order.
std::string LowerHex(std::span<const unsigned char> bytes);

// `bytes` bytes from the kernel's random source (getrandom(2), no flags) as 2 * `bytes` hex
// digits: ids, secrets and tokens. Blocks only until the pool is first seeded at boot. Never
// fails: getrandom without flags fails only on a programming error or a kernel older than
// 3.17, and then the process aborts with a message rather than hand out a guessable id.
std::string RandomHex(size_t bytes);

// Whether `text` is exactly `digits` lower-case hex digits.
bool IsLowerHex(std::string_view text, size_t digits);

// Whether `text` is `prefix` and then `digits` lower-case hex digits: an id made as
// prefix + RandomHex(digits / 2), such as "v_" and 16 digits.
bool IsHexId(std::string_view text, std::string_view prefix, size_t digits);

}  // namespace zerofarm
