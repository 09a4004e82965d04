#include "zerofarm/base/status.h"

#include <cstring>

namespace zerofarm {

std::string Status::ToString() const {
  if (ok()) return "ok";
  return std::string(ErrorCodeName(code_)) + ": " + message_;
}

Status Status::WithContext(const std::string& context) const {
  if (ok()) return *this;
  return Error(code_, context + ": " + message_);
}

Status ErrnoError(const std::string& what, int err) {
  return Status::Error(ErrorCode::kIoError, what + ": " + std::strerror(err));
}

}  // namespace zerofarm
