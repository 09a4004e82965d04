// Internal entry point shared by Validate() and the verdict cache, which has already hashed
// the program. Reentrant.
#pragma once

#include <cstddef>
#include <span>
#include <string>

#include "zerofarm/sandbox/validator.h"

namespace zerofarm::sandbox {

// Validate() with the program's SHA-256 (hex) already computed.
Result<ValidationReport> ValidateWithDigest(std::span<const std::byte> program,
                                            const ValidatorOptions& options, std::string sha256);

// "4.0.0": the Zydis library in use (part of cache keys: a decoder change can change verdicts).
std::string ZydisVersionString();

}  // namespace zerofarm::sandbox
