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

namespace {}  // namespace

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

}  // namespace zerofarm::cli
