// Reading a byte range of an object through its ObjectReader: what every Store's ReadRange and
// GetObject do once the object is open. Private to storage/.
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "zerofarm/storage/store.h"

namespace zerofarm::storage {

// Up to `length` bytes from `offset` (fewer at the end of the object); `name` is for messages.
inline Result<std::string> ReadRangeFrom(ObjectReader& reader, std::string_view name,
                                         uint64_t offset, uint64_t length) {
  ZF_RETURN_IF_ERROR(reader.Seek(offset));
  std::string out(static_cast<size_t>(std::min(length, reader.size() - offset)), '\0');
  auto dest = std::as_writable_bytes(std::span(out.data(), out.size()));
  while (!dest.empty()) {
    Result<size_t> n = reader.Read(dest);
    if (!n.ok()) return n.status();
    if (*n == 0) {
      std::string message = "object '";
      message.append(name).append("': short read");
      return Status::Error(ErrorCode::kIoError, message);
    }
    dest = dest.subspan(*n);
  }
  return out;
}

}  // namespace zerofarm::storage
