// A small command-line parser for the subcommands: "--name value", "--name=value", "-n value",
// "--help"/"-h" (the only flags without a value), and positional arguments. Not thread-safe.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace zerofarm::cli {

class Flags {
 public:
  // argv[0] is the subcommand's name and is skipped.
  Flags(int argc, char** argv);

  bool Has(const std::string& name) const { return values_.count(name) > 0; }
  // Removes and returns the value of --long (or -short); every occurrence is consumed, the
  // last one wins.
  std::optional<std::string> Take(const std::string& long_name, const std::string& short_name = "");
  // Every value of a repeatable flag, in order.
  std::vector<std::string> TakeAll(const std::string& long_name);
  const std::vector<std::string>& Positional() const { return positional_; }
  // Flags given but never taken (call after every Take).
  std::vector<std::string> Unknown() const;
  // A parse problem ("--ladder needs a value"), empty if none.
  const std::string& error() const { return error_; }

 private:
  std::multimap<std::string, std::string> values_;
  std::vector<std::string> positional_;
  std::string error_;
};

}  // namespace zerofarm::cli
