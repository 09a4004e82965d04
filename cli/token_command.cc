// zerofarm token create: a new bearer token for a tenant.
#include <cstdio>
#include <filesystem>
#include <string>

#include "cli/commands.h"
#include "cli/flags.h"
#include "zerofarm/api/tokens.h"

namespace zerofarm::cli {
namespace {

constexpr const char* kUsage =
    "usage: zerofarm token create --data DIR --tenant NAME\n"
    "\n"
    "Prints a new bearer token for tenant NAME ([A-Za-z0-9._-], up to 64). Only its SHA-256\n"
    "is kept (DIR/tokens.tsv); a running `zerofarm serve` on DIR accepts it at once.\n";

}  // namespace

int TokenCommand(int argc, char** argv) {
  Flags flags(argc, argv);
  if (flags.Has("help") || flags.Has("h")) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  const auto data = flags.Take("data");
  const auto tenant = flags.Take("tenant");
  const auto& pos = flags.Positional();
  if (!flags.error().empty() || !flags.Unknown().empty() || pos.size() != 1 || pos[0] != "create" ||
      !data || !tenant) {
    std::fprintf(stderr, "zerofarm token: %s\n%s",
                 !flags.error().empty()     ? flags.error().c_str()
                 : !flags.Unknown().empty() ? ("unknown option " + flags.Unknown()[0]).c_str()
                 : (pos.size() != 1 || pos[0] != "create") ? "the only subcommand is create"
                                                           : "--data and --tenant are required",
                 kUsage);
    return 2;
  }
  api::TokenStore tokens(std::filesystem::path(*data) / "tokens.tsv");
  auto token = tokens.Create(*tenant);
  if (!token.ok()) {
    std::fprintf(stderr, "zerofarm token: error: %s\n", token.status().message().c_str());
    return token.status().code() == ErrorCode::kInvalidArgument ? 2 : 3;
  }
  std::printf("%s\n", token->c_str());
  return 0;
}

}  // namespace zerofarm::cli
