#include "keys.h"

namespace zerofarm::storage::keys {

void AppendBigEndian64(std::string* out, uint64_t value) {
  for (int shift = 56; shift >= 0; shift -= 8) {
    out->push_back(static_cast<char>((value >> shift) & 0xff));
  }
}

uint64_t ReadBigEndian64(std::string_view bytes) {
  uint64_t value = 0;
  for (size_t i = 0; i < 8; ++i) {
    value = (value << 8) | static_cast<unsigned char>(bytes[i]);
  }
  return value;
}

std::string Object(std::string_view name) {
  std::string key(kObjectPrefix);
  key.append(name);
  return key;
}

std::string Pending(uint64_t id) {
  std::string key(kPendingPrefix);
  AppendBigEndian64(&key, id);
  return key;
}

std::string Meta(std::string_view key) {
  std::string out(kMetaPrefix);
  out.append(key);
  return out;
}

std::string Block(uint64_t id, uint64_t index) {
  std::string key;
  key.reserve(kBlockKeySize);
  AppendBigEndian64(&key, id);
  AppendBigEndian64(&key, index);
  return key;
}

}  // namespace zerofarm::storage::keys
