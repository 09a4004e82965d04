// Manifest: what the meta column family records about one committed object. Private to storage/.
// Encoded as a version byte followed by four big-endian 64-bit fields.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace zerofarm::storage {

struct Manifest {
  uint64_t id = 0;          // key prefix of the object's blocks in the chunks column family
  uint64_t size = 0;        // bytes
  uint64_t blocks = 0;      // ceil(size / block_size)
  uint64_t block_size = 0;  // block size the object was written with (every block but the last)

  // Length in bytes of block `index`; requires index < blocks.
  uint64_t BlockLength(uint64_t index) const;
};

// Number of blocks an object of `size` bytes takes; block_size > 0.
uint64_t BlockCount(uint64_t size, uint64_t block_size);

std::string EncodeManifest(const Manifest& manifest);
// Empty when `bytes` is not a well-formed manifest (wrong length, version or inconsistent fields).
std::optional<Manifest> DecodeManifest(std::string_view bytes);

}  // namespace zerofarm::storage
