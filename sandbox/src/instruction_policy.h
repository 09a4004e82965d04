// The validator's instruction policy: one decision per decoded instruction, from one table.
// Thread safety: all functions are pure; the lookup tables are built once, thread-safely.
#pragma once

#include <Zydis/Zydis.h>

#include <string>

namespace zerofarm::sandbox {

enum class Decision {
  kAllow,        // ordinary user-mode instruction
  kAllowNoted,   // allowed, but counted by mnemonic in the report (hlt, rdtsc, int3 ...)
  kAllowListed,  // allowed, and every site listed in the report (syscall)
  kDeny,
};

struct PolicyDecision {
  Decision decision = Decision::kAllow;
  const char* reason = "";  // why, for kDeny and noted instructions
};

PolicyDecision Decide(const ZydisDecodedInstruction& instruction);

// The whole table, one rule a line, in the order rules are applied.
std::string DescribePolicy();

}  // namespace zerofarm::sandbox
