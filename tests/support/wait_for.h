// Waiting on the event a test needs instead of sleeping a fixed time: one poll loop for every
// test. Header-only; thread-compatible.
#pragma once

#include <unistd.h>

#include <chrono>
#include <optional>

namespace zerofarm::test {

// Polls `condition` every 20 ms until it is true or `limit` passes; the time it took, or nullopt.
template <class F>
std::optional<std::chrono::milliseconds> WaitFor(F condition, std::chrono::milliseconds limit) {
  const auto start = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - start < limit) {
    if (condition())
      return std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::steady_clock::now() - start);
    ::usleep(20000);
  }
  return std::nullopt;
}

}  // namespace zerofarm::test
