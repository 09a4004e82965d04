// Key layout of the store's column families. Private to storage/.
//
//   meta    "o/<name>"          -> object manifest (see manifest.h)
//           "p/<id:8 BE>"       -> pending marker of an uncommitted writer; value = object name
//           "m/<key>"           -> metadata record
//           "n/next_object_id"  -> first object id not yet leased (8 bytes BE)
//   chunks  "<id:8 BE><index:8 BE>" -> block bytes + xxHash64 of the bytes (8 bytes BE)
//
// Big-endian integers keep the blocks of one object adjacent and in order.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace zerofarm::storage::keys {

inline constexpr std::string_view kObjectPrefix = "o/";
inline constexpr std::string_view kPendingPrefix = "p/";
inline constexpr std::string_view kMetaPrefix = "m/";
inline constexpr std::string_view kNextObjectId = "n/next_object_id";
inline constexpr size_t kBlockKeySize = 16;

void AppendBigEndian64(std::string* out, uint64_t value);
// Requires bytes.size() >= 8; reads the first 8 bytes.
uint64_t ReadBigEndian64(std::string_view bytes);

std::string Object(std::string_view name);
std::string Pending(uint64_t id);
std::string Meta(std::string_view key);
std::string Block(uint64_t id, uint64_t index);

}  // namespace zerofarm::storage::keys
