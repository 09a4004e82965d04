// A small command-line parser for the subcommands: "--name value", "--name=value", "-n value",
// switches without a value ("--help"/"-h" always, others when named to the constructor), and
// positional arguments. Not thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "zerofarm/base/units.h"

namespace zerofarm::cli {

class Flags {
 public:
  // argv[0] is the subcommand's name and is skipped. `switches` name the flags that take no
  // value (Has() tells whether they were given).
  Flags(int argc, char** argv, std::initializer_list<const char*> switches = {});

  bool Has(const std::string& name) const { return values_.count(name) > 0; }
  // Removes and returns the value of --long (or -short); every occurrence is consumed, the
  // last one wins.
  std::optional<std::string> Take(const std::string& long_name, const std::string& short_name = "");
  // A flag that was renamed: removes every value of --name and of its older names `aliases`
  // (kept for the scripts that use them), and returns the value given as --name, else as the
  // first alias given, with the flag as it was written ("--jobs") for messages.
  struct Named {
    std::string flag;
    std::string value;
  };
  std::optional<Named> TakeRenamed(const std::string& name,
                                   std::initializer_list<const char*> aliases);
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

// Strict numbers: the whole string is the number ("4", "-2", "0.5", "1e3"), finite, within
// [min, max]; nullopt for "", " 4", "4abc", "2x", "nan", "inf", "0x10" or a value out of range.
std::optional<int64_t> ParseInteger(const std::string& s, int64_t min, int64_t max);
std::optional<double> ParseDecimal(const std::string& s, double min, double max);

// Sizes ("20G") and durations ("10s"), as base/units.h reads them.
using zerofarm::ParseByteSize;
using zerofarm::ParseDuration;

}  // namespace zerofarm::cli
