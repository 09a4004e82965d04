// Deterministic pseudo-random bytes for tests: the same (size, seed) always gives the same
// bytes, and different seeds give different ones.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace zerofarm::test {

std::string TestBytes(size_t size, uint64_t seed);

}  // namespace zerofarm::test
