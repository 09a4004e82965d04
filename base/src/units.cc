// Sizes and durations as people write them (units.h).
#include "zerofarm/base/units.h"

#include <cctype>
#include <cstdint>

namespace zerofarm {
namespace {

// Leading decimal digits of s as a number; `used` is how many characters they took.
std::optional<uint64_t> LeadingNumber(const std::string& s, size_t* used) {
  uint64_t v = 0;
  size_t i = 0;
  for (; i < s.size() && std::isdigit(static_cast<unsigned char>(s[i])); ++i) {
    const uint64_t d = static_cast<uint64_t>(s[i] - '0');
    if (v > (UINT64_MAX - d) / 10) return std::nullopt;
    v = v * 10 + d;
  }
  if (i == 0) return std::nullopt;
  *used = i;
  return v;
}

}  // namespace

std::optional<uint64_t> ParseByteSize(const std::string& s) {
  size_t used = 0;
  auto v = LeadingNumber(s, &used);
  if (!v) return std::nullopt;
  const std::string unit = s.substr(used);
  int shift = 0;
  if (unit == "K" || unit == "k" || unit == "KiB")
    shift = 10;
  else if (unit == "M" || unit == "m" || unit == "MiB")
    shift = 20;
  else if (unit == "G" || unit == "g" || unit == "GiB")
    shift = 30;
  else if (unit == "T" || unit == "t" || unit == "TiB")
    shift = 40;
  else if (!unit.empty() && unit != "B")
    return std::nullopt;
  if (shift && *v > (UINT64_MAX >> shift)) return std::nullopt;
  return *v << shift;
}

std::optional<std::chrono::milliseconds> ParseDuration(const std::string& s) {
  size_t used = 0;
  auto v = LeadingNumber(s, &used);
  if (!v) return std::nullopt;
  const std::string unit = s.substr(used);
  uint64_t mul;
  if (unit == "ms")
    mul = 1;
  else if (unit.empty() || unit == "s")
    mul = 1000;
  else if (unit == "m" || unit == "min")
    mul = 60'000;
  else if (unit == "h")
    mul = 3'600'000;
  else
    return std::nullopt;
  if (*v > static_cast<uint64_t>(INT64_MAX) / mul) return std::nullopt;
  return std::chrono::milliseconds(static_cast<int64_t>(*v * mul));
}

}  // namespace zerofarm
