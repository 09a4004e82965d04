// ProgramCache: user programs (exec jobs) as the machine that runs them loads them. A program is
// read from the store into a sealed memfd (sandbox/sealed_program.h) and validated through the
// verdict cache, so the bytes that were checked are the bytes that run; a few recently used
// programs stay loaded, keyed by their store object and SHA-256.
// Thread safety: safe for concurrent use; loaded programs are immutable and shared.
#pragma once

#include <cstddef>
#include <filesystem>
#include <list>
#include <memory>
#include <mutex>
#include <string>

#include "zerofarm/base/status.h"
#include "zerofarm/sandbox/sealed_program.h"
#include "zerofarm/sandbox/validator.h"
#include "zerofarm/sandbox/verdict_cache.h"
#include "zerofarm/storage/store.h"

namespace zerofarm::scheduler {

struct UserProgram {
  sandbox::SealedProgram program;
  sandbox::ValidationReport verdict;
};

class ProgramCache {
 public:
  // `verdict_dir` as WorkerRuntimeOptions::verdict_cache_dir (empty: verdicts in memory only).
  explicit ProgramCache(std::filesystem::path verdict_dir, size_t keep = 8)
      : verdict_dir_(std::move(verdict_dir)), keep_(keep) {}

  // The program stored as `object`, which must hash to `sha256`. Errors: "not_found",
  // "program_changed" (other bytes are stored under the name now), "program_rejected" (the
  // validator refused it; the message names the first reason), "too_large", store errors.
  Result<std::shared_ptr<const UserProgram>> Load(storage::Store& store, const std::string& object,
                                                  const std::string& sha256);

 private:
  Status OpenVerdicts();

  const std::filesystem::path verdict_dir_;
  const size_t keep_;
  std::mutex mu_;
  std::unique_ptr<sandbox::VerdictCache> verdicts_;
  struct Entry {
    std::string key;
    std::shared_ptr<const UserProgram> program;
  };
  std::list<Entry> recent_;  // most recently used first
};

}  // namespace zerofarm::scheduler
