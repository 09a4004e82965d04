#include "block.h"

#include <xxhash.h>

#include "keys.h"

namespace zerofarm::storage {

uint64_t BlockChecksum(std::span<const std::byte> bytes) {
  return XXH64(bytes.data(), bytes.size(), /*seed=*/0);
}

struct BlockHasher::State {
  XXH64_state_t* xxh = XXH64_createState();
};

BlockHasher::BlockHasher() : state_(new State) { XXH64_reset(state_->xxh, /*seed=*/0); }

BlockHasher::~BlockHasher() {
  XXH64_freeState(state_->xxh);
  delete state_;
}

void BlockHasher::Update(std::span<const std::byte> bytes) {
  XXH64_update(state_->xxh, bytes.data(), bytes.size());
}

uint64_t BlockHasher::Finish() {
  uint64_t digest = XXH64_digest(state_->xxh);
  XXH64_reset(state_->xxh, /*seed=*/0);
  return digest;
}

std::array<char, kChecksumSize> EncodeChecksum(uint64_t checksum) {
  std::array<char, kChecksumSize> out{};
  for (size_t i = 0; i < kChecksumSize; ++i) {
    out[i] = static_cast<char>((checksum >> (56 - 8 * i)) & 0xff);
  }
  return out;
}

BlockCheck VerifyBlock(std::string_view value) {
  std::string_view bytes = value.substr(0, value.size() - kChecksumSize);
  BlockCheck check;
  check.stored = keys::ReadBigEndian64(value.substr(bytes.size()));
  check.computed = BlockChecksum(std::as_bytes(std::span(bytes.data(), bytes.size())));
  check.ok = check.stored == check.computed;
  return check;
}

std::string ChecksumMismatch(uint64_t stored, uint64_t computed) {
  static constexpr char kDigits[] = "0123456789abcdef";
  auto hex = [](uint64_t value) {
    std::string out = "0x";
    for (int shift = 60; shift >= 0; shift -= 4) out.push_back(kDigits[(value >> shift) & 0xf]);
    return out;
  };
  return "checksum mismatch (stored " + hex(stored) + ", computed " + hex(computed) + ")";
}

}  // namespace zerofarm::storage
