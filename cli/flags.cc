#include "cli/flags.h"

#include <cctype>
#include <charconv>
#include <cmath>
#include <set>

namespace zerofarm::cli {

Flags::Flags(int argc, char** argv, std::initializer_list<const char*> switches) {
  std::set<std::string> no_value{"help", "h"};
  for (const char* s : switches) no_value.insert(s);
  bool only_positional = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (only_positional || a.size() < 2 || a[0] != '-') {
      positional_.push_back(a);
      continue;
    }
    if (a == "--") {
      only_positional = true;
      continue;
    }
    std::string name = a.substr(a[1] == '-' ? 2 : 1);
    if (no_value.count(name)) {
      values_.emplace(name, "");
      continue;
    }
    if (auto eq = name.find('='); eq != std::string::npos) {
      values_.emplace(name.substr(0, eq), name.substr(eq + 1));
      continue;
    }
    if (i + 1 >= argc) {
      error_ = a + " needs a value";
      continue;
    }
    values_.emplace(name, argv[++i]);
  }
}

std::optional<std::string> Flags::Take(const std::string& long_name,
                                       const std::string& short_name) {
  std::optional<std::string> value;
  for (const std::string& n : {long_name, short_name}) {
    if (n.empty()) continue;
    auto range = values_.equal_range(n);
    for (auto it = range.first; it != range.second; ++it) value = it->second;
    values_.erase(n);
  }
  return value;
}

std::optional<Flags::Named> Flags::TakeRenamed(const std::string& name,
                                               std::initializer_list<const char*> aliases) {
  std::optional<Named> found;
  if (auto v = Take(name)) found = Named{"--" + name, *v};
  for (const char* alias : aliases)
    if (auto v = Take(alias); v && !found) found = Named{std::string("--") + alias, *v};
  return found;
}

std::vector<std::string> Flags::TakeAll(const std::string& long_name) {
  std::vector<std::string> out;
  auto range = values_.equal_range(long_name);
  for (auto it = range.first; it != range.second; ++it) out.push_back(it->second);
  values_.erase(long_name);
  return out;
}

std::vector<std::string> Flags::Unknown() const {
  std::vector<std::string> out;
  for (const auto& kv : values_)
    if (kv.first != "help" && kv.first != "h") out.push_back("--" + kv.first);
  return out;
}

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

std::optional<int64_t> ParseInteger(const std::string& s, int64_t min, int64_t max) {
  int64_t v = 0;
  const char* end = s.data() + s.size();
  auto [ptr, ec] = std::from_chars(s.data(), end, v);
  if (s.empty() || ec != std::errc() || ptr != end || v < min || v > max) return std::nullopt;
  return v;
}

std::optional<double> ParseDecimal(const std::string& s, double min, double max) {
  // from_chars also takes "nan", "inf" and hexadecimal digits after "0x"-less input: allow only
  // a plain decimal spelling.
  if (s.empty() || s.find_first_not_of("0123456789.eE+-") != std::string::npos) return std::nullopt;
  double v = 0;
  const char* end = s.data() + s.size();
  auto [ptr, ec] = std::from_chars(s.data(), end, v);
  if (ec != std::errc() || ptr != end || !std::isfinite(v) || v < min || v > max)
    return std::nullopt;
  return v;
}

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

}  // namespace zerofarm::cli
