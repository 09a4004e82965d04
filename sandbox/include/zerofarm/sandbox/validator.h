// Validate: the pre-execution validator. It decides from a program's bytes alone whether the
// sandbox may run it: a static x86-64 ELF executable with no writable+executable memory, a
// non-executable stack, and no privileged or system instruction in any instruction stream it
// can find (sized function symbols, then a recursive traversal from symbol starts, the entry
// point, direct branch targets and those local labels whose code decodes cleanly). Executable bytes
// that no stream reaches are reported as data regions, never skipped silently, and too large a
// share of them is refused. The verdict depends on the bytes and options only, never on a program's
// name or hash. The instruction policy is one table, printed by DescribeInstructionPolicy(). Scope:
// this is a static check, not control-flow integrity. An indirect jump can still reach bytes
// reported as data, or the middle of an instruction; the runner's seccomp filter and namespaces are
// what contain such a program, and the report says how much was unreached. Thread safety: Validate
// is reentrant; reports are plain values.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "zerofarm/base/status.h"
#include "zerofarm/sandbox/elf_reader.h"

namespace zerofarm::sandbox {

// Bumped whenever a change can alter a verdict; part of every cache key.
inline constexpr int kValidatorVersion = 3;

struct ValidatorOptions {
  ElfLimits elf_limits;
  // Reject when executable bytes remain that no instruction stream reaches (and that are not
  // padding). Off by default: hand-written assembly keeps tables in .text; they are reported.
  bool reject_data_regions = false;
  // Reject when data-region bytes exceed this fraction of the executable bytes: then too much
  // of the program went unchecked (e.g. a stripped program, where only code reached by direct
  // branches from the entry point is found).
  double max_data_fraction = 0.10;
  // Caps on what the report lists; the counts are always complete.
  size_t max_listed_reasons = 100;
  size_t max_listed_data_regions = 1000;
  size_t max_listed_syscall_sites = 100000;  // real programs have hundreds

  // The options that can change a verdict or a report, as a short stable string (cache keys).
  std::string Fingerprint() const;
};

enum class Verdict { kAccepted, kRejected };

// Why a program is rejected. Codes are stable: malformed_elf, not_executable, dynamic_program,
// writable_executable_segment, executable_stack, shared_page, entry_outside_code,
// forbidden_instruction, decode_error, data_region, too_much_unverified_code, analysis_budget.
struct Reason {
  std::string code;
  std::string message;
  std::optional<uint64_t> vaddr;
  std::optional<uint64_t> file_offset;
  std::string instruction;  // Intel syntax, for instruction reasons
  std::string bytes;        // the instruction's bytes in hex
  std::string symbol;       // "name+0x12" when a symbol covers the address
};

// An instruction site (e.g. every `syscall`).
struct CodeSite {
  uint64_t vaddr = 0;
  std::optional<uint64_t> file_offset;
  std::string symbol;
};

// A run of executable bytes that no instruction stream reaches and that is not padding.
struct DataRegion {
  uint64_t vaddr = 0;
  std::optional<uint64_t> file_offset;
  uint64_t size = 0;
  std::string section;
  std::string symbol;
  // In the page-rounding bytes before or after a segment, which the kernel maps executable
  // because it maps whole pages (e.g. the start of the symbol table after .text).
  bool outside_segment = false;
};

struct ValidationCounts {
  uint64_t program_bytes = 0;
  uint64_t executable_bytes = 0;   // mapped executable, page-rounded as the kernel maps them
  uint64_t decoded_bytes = 0;      // by_symbol_bytes + traversal_bytes
  uint64_t by_symbol_bytes = 0;    // decoded by linear sweep of sized function symbols
  uint64_t traversal_bytes = 0;    // decoded by recursive traversal
  uint64_t padding_bytes = 0;      // unreached nops, int3 and zeros
  uint64_t data_region_bytes = 0;  // unreached, reported in data_regions
  uint64_t data_regions = 0;
  uint64_t instructions = 0;
  uint64_t syscall_sites = 0;
  uint64_t sized_functions = 0;
  uint64_t traversal_seeds = 0;
  uint64_t traversal_stops = 0;  // traversals that ran into undecodable bytes (see notes)
  uint64_t label_seeds = 0;      // local labels in code whose line decoded: traversed as code
  uint64_t label_data = 0;       // local labels in code whose line did not: left as data
};

struct ValidationTiming {
  double validate_ms = 0;      // the validation itself (as first measured, for cached verdicts)
  double total_ms = 0;         // this call, including hashing and cache lookup
  std::string cache = "none";  // none | miss | memory | disk | sealed
};

struct ValidationReport {
  int validator_version = kValidatorVersion;
  std::string zydis_version;
  Verdict verdict = Verdict::kRejected;
  std::string sha256;
  std::vector<Reason> reasons;  // at most max_listed_reasons
  uint64_t reasons_total = 0;
  std::vector<CodeSite> syscall_sites;   // every one, up to max_listed_syscall_sites
  std::vector<DataRegion> data_regions;  // at most max_listed_data_regions
  // Instructions the policy allows but names (hlt, rdtsc, int3, cpuid ...), by mnemonic.
  std::map<std::string, uint64_t> noted_instructions;
  std::vector<std::string> notes;
  ValidationCounts counts;
  ValidationTiming timing;

  bool accepted() const { return verdict == Verdict::kAccepted; }
};

// Validates `program` (the whole file). A malformed or refused program gives an ok Result
// holding a rejected report; an error Result means the validator itself failed.
Result<ValidationReport> Validate(std::span<const std::byte> program,
                                  const ValidatorOptions& options = {});

// The report as JSON (the format of `zerofarm validate --json` and of cached verdicts).
std::string ReportToJson(const ValidationReport& report);
// Parses ReportToJson output; code "bad_report" when it is not one.
Result<ValidationReport> ReportFromJson(std::string_view json);

// The instruction policy as a human-readable table: each rule, allow or deny, and why.
std::string DescribeInstructionPolicy();

}  // namespace zerofarm::sandbox
