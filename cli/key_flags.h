// The --key FILE / --insecure flags of every command that talks to storage nodes.
#pragma once

#include <optional>
#include <string>

#include "zerofarm/storage/farm_key.h"

namespace zerofarm::cli {

// Loads the farm key named by --key into *key. Without --key the command refuses to start
// unless --insecure was given, and then warns loudly on stderr. Returns the exit status to
// stop with (2: usage, 1: an unreadable key), or nullopt to go on.
std::optional<int> LoadFarmKeyFlags(const char* command, const std::optional<std::string>& path,
                                    bool insecure, std::optional<storage::FarmKey>* key);

}  // namespace zerofarm::cli
