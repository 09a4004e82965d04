// ContentHash: the checksum a task reports for each output it wrote (XXH64, seed 0), so that
// whoever later reads the object can tell the bytes are the ones that task wrote and not a
// stale or foreign copy under the same name (scheduler/task_executor.h, transcode/stitcher.h).
// Not a cryptographic hash: it binds outputs to a task among authenticated farm processes
// (wire security is storage/farm_key.h's), it does not resist a forger.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace zerofarm::storage {

class ContentHash {
 public:
  ContentHash();
  ~ContentHash();
  ContentHash(ContentHash&&) noexcept;
  ContentHash& operator=(ContentHash&&) noexcept;

  void Update(std::span<const std::byte> bytes);
  void Update(std::string_view bytes);
  // The checksum of every byte given so far; Update may go on after it.
  uint64_t value() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// 16 lowercase hex digits, and back (nullopt unless exactly that shape).
std::string ContentHashHex(uint64_t value);
std::optional<uint64_t> ParseContentHashHex(std::string_view text);

}  // namespace zerofarm::storage
