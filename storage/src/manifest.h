// Manifest: what the meta column family records about one committed object. Private to storage/.
//
// Two versions, both read:
//   1  blocks in RocksDB: version byte, then id, size, blocks, block_size (big-endian 64-bit).
//      Each block is a value of the chunks column family with its xxHash64 after it.
//   2  blocks in a file: the same four fields, then the xxHash64 of every block in order
//      (8 bytes big-endian each). The blocks lie back to back in the object's block file
//      (block_file.h), block i at offset i * block_size.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace zerofarm::storage {

struct Manifest {
  uint64_t id = 0;          // names the object's blocks: chunks key prefix, or block file
  uint64_t size = 0;        // bytes
  uint64_t blocks = 0;      // ceil(size / block_size)
  uint64_t block_size = 0;  // block size the object was written with (every block but the last)
  bool in_file = false;     // version 2: blocks in the object's block file
  std::vector<uint64_t> checksums;  // version 2 only: xxHash64 of each block

  // Length in bytes of block `index`; requires index < blocks.
  uint64_t BlockLength(uint64_t index) const;
};

// Number of blocks an object of `size` bytes takes; block_size > 0.
uint64_t BlockCount(uint64_t size, uint64_t block_size);

std::string EncodeManifest(const Manifest& manifest);
// Empty when `bytes` is not a well-formed manifest (wrong length, version or inconsistent fields).
std::optional<Manifest> DecodeManifest(std::string_view bytes);

}  // namespace zerofarm::storage
