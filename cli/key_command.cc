// zerofarm key: the farm's CURVE key material (storage/farm_key.h).
#include <cstdio>
#include <optional>
#include <string>

#include "cli/commands.h"
#include "cli/flags.h"
#include "cli/key_flags.h"
#include "zerofarm/storage/farm_key.h"

namespace zerofarm::cli {
namespace {

constexpr const char* kUsage =
    "usage: zerofarm key create -o FILE\n"
    "\n"
    "Writes a new farm key to FILE (mode 0600; never overwrites): the CURVE key material that\n"
    "authenticates and encrypts every connection between the farm's nodes and proxies. Give the\n"
    "same file to every `zerofarm node` and `zerofarm proxy` with --key FILE.\n"
    "A key file may hold several keys (lines \"key PUBLIC SECRET\"; the first is the one used,\n"
    "the others are accepted): rotate without downtime by rolling out, one process at a time,\n"
    "  cat old.key new.key > step1.key;  then  cat new.key old.key > step2.key;  then new.key\n"
    "(the README's \"Rotating the farm key\" gives every step).\n";

int Usage(const std::string& error) {
  std::fprintf(stderr, "zerofarm key: %s\n%s", error.c_str(), kUsage);
  return 2;
}

}  // namespace

int KeyCommand(int argc, char** argv) {
  Flags flags(argc, argv);
  if (flags.Has("help") || flags.Has("h")) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  const std::string out = flags.Take("output", "o").value_or("");
  if (!flags.error().empty()) return Usage(flags.error());
  if (!flags.Unknown().empty()) return Usage("unknown option " + flags.Unknown().front());
  const auto& args = flags.Positional();
  if (args.empty() || args[0] != "create") return Usage("expected: key create -o FILE");
  if (args.size() > 1) return Usage("unexpected argument " + args[1]);
  if (out.empty()) return Usage("-o FILE is required");
  auto key = storage::FarmKey::Generate();
  if (!key.ok()) {
    std::fprintf(stderr, "zerofarm key: error: %s\n", key.status().ToString().c_str());
    return 1;
  }
  Status saved = key->Save(out);
  if (!saved.ok()) {
    std::fprintf(stderr, "zerofarm key: error: %s\n", saved.message().c_str());
    return 1;
  }
  std::printf("zerofarm key: wrote %s (public key %s); keep it secret\n", out.c_str(),
              key->primary().public_key.c_str());
  return 0;
}

}  // namespace zerofarm::cli

namespace zerofarm::cli {

std::optional<int> LoadFarmKeyFlags(const char* command, const std::optional<std::string>& path,
                                    bool insecure, std::optional<storage::FarmKey>* key) {
  if (path && insecure) {
    std::fprintf(stderr, "zerofarm %s: --key and --insecure exclude each other\n", command);
    return 2;
  }
  if (!path && !insecure) {
    std::fprintf(stderr,
                 "zerofarm %s: --key FILE is required: the farm key authenticates and encrypts "
                 "every connection between nodes and proxies (make one with `zerofarm key create "
                 "-o FILE`; --insecure runs without, for a trusted test network only)\n",
                 command);
    return 2;
  }
  if (insecure) {
    std::fprintf(stderr,
                 "zerofarm %s: WARNING: --insecure: connections between farm processes are NOT "
                 "authenticated or encrypted; anyone who reaches a node's port can read, "
                 "overwrite and delete every object and run tasks\n",
                 command);
    return std::nullopt;
  }
  auto loaded = storage::FarmKey::Load(*path);
  if (!loaded.ok()) {
    std::fprintf(stderr, "zerofarm %s: error: farm key: %s\n", command,
                 loaded.status().message().c_str());
    return 1;
  }
  *key = std::move(*loaded);
  std::fprintf(stderr, "zerofarm %s: farm key %.8s... (%zu key%s accepted); CURVE on every link\n",
               command, (*key)->primary().public_key.c_str(), (*key)->keys().size(),
               (*key)->keys().size() == 1 ? "" : "s");
  return std::nullopt;
}

}  // namespace zerofarm::cli
