#include "program_cache.h"

#include <utility>

namespace zerofarm::scheduler {

Status ProgramCache::OpenVerdicts() {
  if (verdicts_) return Status::Ok();
  auto cache = sandbox::VerdictCache::Open({verdict_dir_, 256});
  if (!cache.ok()) return cache.status().WithContext("verdict cache");
  verdicts_ = std::move(*cache);
  return Status::Ok();
}

Result<std::shared_ptr<const UserProgram>> ProgramCache::Load(storage::Store& store,
                                                              const std::string& object,
                                                              const std::string& sha256) {
  const std::string key = object + "\n" + sha256;
  {
    std::lock_guard lock(mu_);
    for (auto it = recent_.begin(); it != recent_.end(); ++it) {
      if (it->key != key) continue;
      recent_.splice(recent_.begin(), recent_, it);
      return recent_.front().program;
    }
    ZF_RETURN_IF_ERROR(OpenVerdicts());
  }
  auto info = store.Stat(object);
  if (!info.ok()) return info.status().WithContext("program " + object);
  if (info->size > sandbox::kDefaultMaxProgramBytes)
    return Status::Error(ErrorCode::kTooLarge, "the program is larger than the sandbox allows");
  auto bytes = store.GetObject(object);
  if (!bytes.ok()) return bytes.status().WithContext("program " + object);
  auto sealed = sandbox::SealedProgram::FromBytes(
      std::as_bytes(std::span(bytes->data(), bytes->size())), "zerofarm-program");
  if (!sealed.ok()) return sealed.status();
  bytes->clear();
  auto verdict = verdicts_->ValidateSealed(*sealed);
  if (!verdict.ok()) return verdict.status().WithContext("validating the program");
  if (verdict->sha256 != sha256)
    return Status::Error(ErrorCode::kProgramChanged,
                         "the program was replaced after the job was submitted");
  if (!verdict->accepted()) {
    const std::string why = verdict->reasons.empty() ? std::string("no reason given")
                                                     : verdict->reasons.front().code + ": " +
                                                           verdict->reasons.front().message;
    return Status::Error(ErrorCode::kProgramRejected,
                         "the validator refused the program (" + why + ")");
  }
  auto program =
      std::make_shared<const UserProgram>(UserProgram{std::move(*sealed), std::move(*verdict)});
  std::lock_guard lock(mu_);
  recent_.push_front({key, program});
  if (recent_.size() > keep_) recent_.pop_back();
  return std::shared_ptr<const UserProgram>(program);
}

}  // namespace zerofarm::scheduler
