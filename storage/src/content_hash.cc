// XXH64 streaming state behind ContentHash (content_hash.h).
#include "zerofarm/storage/content_hash.h"

#include <xxhash.h>

#include <cstdio>
#include <new>

namespace zerofarm::storage {

struct ContentHash::State {
  XXH64_state_t* xxh = nullptr;
  State() : xxh(XXH64_createState()) {
    if (xxh == nullptr) throw std::bad_alloc();
    XXH64_reset(xxh, 0);
  }
  ~State() { XXH64_freeState(xxh); }
  State(const State&) = delete;
  State& operator=(const State&) = delete;
};

ContentHash::ContentHash() : state_(std::make_unique<State>()) {}
ContentHash::~ContentHash() = default;
ContentHash::ContentHash(ContentHash&&) noexcept = default;
ContentHash& ContentHash::operator=(ContentHash&&) noexcept = default;

void ContentHash::Update(std::span<const std::byte> bytes) {
  XXH64_update(state_->xxh, bytes.data(), bytes.size());
}

void ContentHash::Update(std::string_view bytes) {
  XXH64_update(state_->xxh, bytes.data(), bytes.size());
}

uint64_t ContentHash::value() const { return XXH64_digest(state_->xxh); }

std::string ContentHashHex(uint64_t value) {
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(value));
  return buf;
}

std::optional<uint64_t> ParseContentHashHex(std::string_view text) {
  if (text.size() != 16) return std::nullopt;
  uint64_t v = 0;
  for (char c : text) {
    int d;
    if (c >= '0' && c <= '9')
      d = c - '0';
    else if (c >= 'a' && c <= 'f')
      d = c - 'a' + 10;
    else
      return std::nullopt;
    v = (v << 4) | static_cast<uint64_t>(d);
  }
  return v;
}

}  // namespace zerofarm::storage
