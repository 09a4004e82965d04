#include "test_bytes.h"

#include <random>

namespace zerofarm::test {

std::string TestBytes(size_t size, uint64_t seed) {
  std::mt19937_64 rng(seed * 0x9e3779b97f4a7c15ULL + 1);
  std::string out(size, '\0');
  for (size_t i = 0; i < size; i += 8) {
    uint64_t word = rng();
    for (size_t j = i; j < size && j < i + 8; ++j, word >>= 8) out[j] = static_cast<char>(word);
  }
  return out;
}

}  // namespace zerofarm::test
