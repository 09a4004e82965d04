#include "manifest.h"

#include "keys.h"

namespace zerofarm::storage {
namespace {

constexpr char kVersion = 1;
constexpr size_t kEncodedSize = 1 + 4 * 8;

}  // namespace

uint64_t Manifest::BlockLength(uint64_t index) const {
  if (index + 1 < blocks) return block_size;
  return size - index * block_size;
}

uint64_t BlockCount(uint64_t size, uint64_t block_size) {
  return size / block_size + (size % block_size != 0 ? 1 : 0);
}

std::string EncodeManifest(const Manifest& manifest) {
  std::string out;
  out.reserve(kEncodedSize);
  out.push_back(kVersion);
  keys::AppendBigEndian64(&out, manifest.id);
  keys::AppendBigEndian64(&out, manifest.size);
  keys::AppendBigEndian64(&out, manifest.blocks);
  keys::AppendBigEndian64(&out, manifest.block_size);
  return out;
}

std::optional<Manifest> DecodeManifest(std::string_view bytes) {
  if (bytes.size() != kEncodedSize || bytes[0] != kVersion) return std::nullopt;
  Manifest m;
  m.id = keys::ReadBigEndian64(bytes.substr(1));
  m.size = keys::ReadBigEndian64(bytes.substr(9));
  m.blocks = keys::ReadBigEndian64(bytes.substr(17));
  m.block_size = keys::ReadBigEndian64(bytes.substr(25));
  if (m.block_size == 0 || m.blocks != BlockCount(m.size, m.block_size)) return std::nullopt;
  return m;
}

}  // namespace zerofarm::storage
