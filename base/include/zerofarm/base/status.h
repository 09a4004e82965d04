// Status and Result<T>: errors as values at every component boundary.
// Both are plain values: copyable, movable, no shared state, safe to pass between threads.
// A Status carries a machine-readable ErrorCode (e.g. ErrorCode::kNoVideoStream, wire name
// "no_video_stream") and a one-line human message; the code is stable and tested, the message
// is for people.
#pragma once

#include <cassert>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "zerofarm/base/error_code.h"

namespace zerofarm {

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  static Status Ok() { return Status(); }
  static Status Error(ErrorCode code, std::string message) {
    Status s;
    s.ok_ = false;
    s.code_ = code;
    s.message_ = std::move(message);
    return s;
  }

  bool ok() const { return ok_; }
  explicit operator bool() const { return ok(); }
  // The error's code; meaningless when ok() (check ok() first).
  ErrorCode code() const { return code_; }
  // The code's wire name (ErrorCodeName), or "" when ok().
  std::string_view code_name() const { return ok_ ? std::string_view() : ErrorCodeName(code_); }
  const std::string& message() const { return message_; }
  // "name: message" (the code's wire name), or "ok".
  std::string ToString() const;
  // Returns a copy whose message is prefixed with `context: `.
  Status WithContext(const std::string& context) const;

 private:
  bool ok_ = true;
  ErrorCode code_ = ErrorCode::kInternal;
  std::string message_;
};

// Either a value or a non-ok Status.
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}        // NOLINT(google-explicit-constructor)
  Result(Status status) : v_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    assert(!std::get<Status>(v_).ok() && "a Result holding a Status must hold an error");
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  explicit operator bool() const { return ok(); }

  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

// Returns early from the enclosing function when `expr` (a Status) is not ok.
#define ZF_RETURN_IF_ERROR(expr)             \
  do {                                       \
    ::zerofarm::Status zf_status_ = (expr);  \
    if (!zf_status_.ok()) return zf_status_; \
  } while (0)

// Errno-based error with the failing call named: ErrnoError("open", path).
Status ErrnoError(const std::string& what, int err);

}  // namespace zerofarm
