// Internal entry points shared by Validate(), the verdict cache and the validator's tests.
// Reentrant.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "code_analysis.h"
#include "zerofarm/sandbox/validator.h"

namespace zerofarm::sandbox {

// Validate() with the program's SHA-256 (hex) already computed. `path` chooses the decoder;
// both give the same report (the tests hold them to it).
Result<ValidationReport> ValidateWithDigest(std::span<const std::byte> program,
                                            const ValidatorOptions& options, std::string sha256,
                                            DecodePath path = DecodePath::kFast);

// "4.0.0": the Zydis library in use (part of cache keys: a decoder change can change verdicts).
std::string ZydisVersionString();

// The instruction at the start of `bytes` decoded by the table-driven decoder and by Zydis.
struct DecoderComparison {
  bool fast = false;   // the table-driven decoder took it
  bool zydis = false;  // Zydis decoded it
  bool same = false;   // both decoded it to the same facts (length, policy, branch, nop, lea)
  uint8_t length = 0;  // Zydis's length, when it decoded it
};
DecoderComparison CompareDecoders(std::span<const uint8_t> bytes);
// Both decodings as text, for test failures.
std::string DescribeDecoders(std::span<const uint8_t> bytes);

}  // namespace zerofarm::sandbox
