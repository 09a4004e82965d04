// VerdictCache: validation reports keyed by the SHA-256 of the program's bytes, the validator
// version, the Zydis version and the options' fingerprint. Kept in memory (bounded) and,
// optionally, as one JSON file per verdict in a directory, so a program is disassembled once
// per farm node however often it runs. A cached verdict is only ever the verdict the same
// validator gave the same bytes; names and paths play no part in the key.
// Trust: the directory must be writable by the farm only (Open refuses one that others can
// write); an unreadable, corrupt or mismatched file is treated as a miss and replaced.
// Thread safety: a VerdictCache is safe for concurrent use from many threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>

#include "zerofarm/base/status.h"
#include "zerofarm/sandbox/sealed_program.h"
#include "zerofarm/sandbox/validator.h"

namespace zerofarm::sandbox {

struct CacheOptions {
  std::filesystem::path directory;  // empty: memory only; created (mode 0700) when missing
  size_t max_memory_entries = 4096;
};

class VerdictCache {
 public:
  struct Stats {
    uint64_t memory_hits = 0;
    uint64_t disk_hits = 0;
    uint64_t misses = 0;
    uint64_t sealed_hits = 0;
  };

  static Result<std::unique_ptr<VerdictCache>> Open(const CacheOptions& options);
  virtual ~VerdictCache() = default;

  // The cached report for these bytes and options, or a fresh Validate() stored for next time.
  // report.timing.cache says which ("memory", "disk" or "miss") and total_ms is this call.
  virtual Result<ValidationReport> Validate(std::span<const std::byte> program,
                                            const ValidatorOptions& options = {}) = 0;
  // The same for a sealed program, answered by its identity when this cache already validated
  // that very memfd (report.timing.cache "sealed"): its seals make its bytes immutable, and the
  // cache keeps a duplicate of the descriptor, so the inode it names is never reused for other
  // bytes while the entry lives. No hashing, no disk. A memfd without all four seals is
  // validated by content, as Validate() does.
  virtual Result<ValidationReport> ValidateSealed(const SealedProgram& program,
                                                  const ValidatorOptions& options = {}) = 0;
  virtual Stats stats() const = 0;
};

}  // namespace zerofarm::sandbox
