#include "manifest.h"

#include "keys.h"

namespace zerofarm::storage {
namespace {

constexpr char kVersionInline = 1;
constexpr char kVersionFile = 2;
constexpr size_t kFixedSize = 1 + 4 * 8;

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
  out.reserve(kFixedSize + (manifest.in_file ? 8 * manifest.checksums.size() : 0));
  out.push_back(manifest.in_file ? kVersionFile : kVersionInline);
  keys::AppendBigEndian64(&out, manifest.id);
  keys::AppendBigEndian64(&out, manifest.size);
  keys::AppendBigEndian64(&out, manifest.blocks);
  keys::AppendBigEndian64(&out, manifest.block_size);
  if (manifest.in_file) {
    for (uint64_t checksum : manifest.checksums) keys::AppendBigEndian64(&out, checksum);
  }
  return out;
}

std::optional<Manifest> DecodeManifest(std::string_view bytes) {
  if (bytes.size() < kFixedSize) return std::nullopt;
  if (bytes[0] != kVersionInline && bytes[0] != kVersionFile) return std::nullopt;
  Manifest m;
  m.in_file = bytes[0] == kVersionFile;
  m.id = keys::ReadBigEndian64(bytes.substr(1));
  m.size = keys::ReadBigEndian64(bytes.substr(9));
  m.blocks = keys::ReadBigEndian64(bytes.substr(17));
  m.block_size = keys::ReadBigEndian64(bytes.substr(25));
  if (m.block_size == 0 || m.blocks != BlockCount(m.size, m.block_size)) return std::nullopt;
  std::string_view rest = bytes.substr(kFixedSize);
  if (!m.in_file) return rest.empty() ? std::optional<Manifest>(m) : std::nullopt;
  if (rest.size() / 8 != m.blocks || rest.size() % 8 != 0) return std::nullopt;
  m.checksums.reserve(m.blocks);
  for (uint64_t i = 0; i < m.blocks; ++i)
    m.checksums.push_back(keys::ReadBigEndian64(rest.substr(8 * i)));
  return m;
}

}  // namespace zerofarm::storage
