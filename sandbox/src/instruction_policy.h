// The validator's instruction policy: one decision per decoded instruction, from one table,
// and the decoder that gives the analysis what it needs to know of each instruction.
// Thread safety: all functions are pure; the lookup tables are built once, thread-safely. An
// InstructionDecoder is used by one thread at a time.
#pragma once

#include <Zydis/Zydis.h>

#include <cstddef>
#include <cstdint>
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

// Everything the code analysis uses of one decoded instruction. Fields that do not apply are
// zero, so that two decodings of the same bytes compare equal field by field.
struct InstructionFacts {
  uint8_t length = 0;
  Decision decision = Decision::kAllow;
  bool ends_stream = false;  // control never falls through (ret, jmp, hlt, ud2, int3 ...)
  bool relative = false;     // a direct branch: its target is the next address + displacement
  bool nop = false;          // a nop or wide nop (padding)
  bool rip_lea = false;      // lea reg, [rip + displacement]: a possible jump table's address
  uint16_t mnemonic = 0;     // the ZydisMnemonic, for kAllowNoted only
  int64_t displacement = 0;  // for relative and rip_lea only
  const char* reason = "";   // the policy's reason, for kDeny and kAllowNoted only

  bool operator==(const InstructionFacts& other) const;
};

// The facts of an instruction Zydis decoded.
InstructionFacts FactsOf(const ZydisDecodedInstruction& instruction);

// The facts of the instruction at the start of [bytes, bytes + size) for the most common
// opcodes, from tables (ordinary moves, arithmetic, branches, SSE, two-byte VEX AVX2), without
// Zydis. False when the instruction is not one of those or does not fit in `size`: then only
// Zydis can tell. When true, *facts are exactly what FactsOf gives for Zydis's decoding of the
// same bytes.
bool DecodeCommonInstruction(const uint8_t* bytes, size_t size, InstructionFacts* facts);

// Decodes instructions for the analysis: the table-driven path where it applies, Zydis for
// the rest. With `reference`, every instruction goes through Zydis (the same verdicts, slower;
// kept to check the fast path against).
class InstructionDecoder {
 public:
  explicit InstructionDecoder(bool reference = false);
  // False when the bytes do not decode as an instruction that fits in `size`.
  bool Decode(const uint8_t* bytes, size_t size, InstructionFacts* facts) {
    if (!reference_ && DecodeCommonInstruction(bytes, size, facts)) return true;
    return DecodeWithZydis(bytes, size, facts);
  }
  // Zydis alone.
  bool DecodeWithZydis(const uint8_t* bytes, size_t size, InstructionFacts* facts);

 private:
  ZydisDecoder decoder_;
  ZydisDecodedInstruction scratch_;
  bool reference_;
};

// The whole table, one rule a line, in the order rules are applied.
std::string DescribePolicy();

}  // namespace zerofarm::sandbox
