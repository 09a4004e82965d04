// Block values: the block's bytes followed by their xxHash64 (seed 0), 8 bytes big-endian.
// Private to storage/.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace zerofarm::storage {

inline constexpr size_t kChecksumSize = 8;

uint64_t BlockChecksum(std::span<const std::byte> bytes);

// BlockChecksum of bytes that arrive in pieces.
class BlockHasher {
 public:
  BlockHasher();
  ~BlockHasher();
  BlockHasher(const BlockHasher&) = delete;
  BlockHasher& operator=(const BlockHasher&) = delete;
  void Update(std::span<const std::byte> bytes);
  // The checksum of everything since construction or the last Finish; starts over.
  uint64_t Finish();

 private:
  struct State;
  State* state_;
};
// The trailer stored after a block's bytes.
std::array<char, kChecksumSize> EncodeChecksum(uint64_t checksum);

// Checks a stored block value (bytes + trailer) against its trailer. Requires
// value.size() >= kChecksumSize. Returns the computed checksum of the bytes on a mismatch.
struct BlockCheck {
  bool ok = false;
  uint64_t stored = 0;
  uint64_t computed = 0;
};
BlockCheck VerifyBlock(std::string_view value);

// "checksum mismatch (stored 0x..., computed 0x...)": how a damaged block is reported, whichever
// layout holds it.
std::string ChecksumMismatch(uint64_t stored, uint64_t computed);

}  // namespace zerofarm::storage
