#include "cli/flags.h"

namespace zerofarm::cli {

Flags::Flags(int argc, char** argv) {
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
    if (name == "help" || name == "h") {
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

}  // namespace zerofarm::cli
