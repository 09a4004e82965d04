// Fuzz target: demux + chunker on arbitrary bytes, into a real store. Every input must end in
// a result or a clean error, never a crash, a hang or unbounded memory.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>

#include "zerofarm/storage/store.h"
#include "zerofarm/transcode/ingest.h"

namespace {

class BytesSource final : public zerofarm::transcode::ByteSource {
 public:
  BytesSource(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  zerofarm::Result<size_t> ReadAt(uint64_t offset, std::span<std::byte> out) override {
    if (offset >= size_) return size_t{0};
    size_t n = std::min<size_t>(out.size(), size_ - offset);
    std::memcpy(out.data(), data_ + offset, n);
    return n;
  }
  std::optional<uint64_t> Size() const override { return size_; }

 private:
  const uint8_t* data_;
  size_t size_;
};

zerofarm::storage::Store& SharedStore() {
  static std::unique_ptr<zerofarm::storage::Store> store = [] {
    std::string dir = (std::filesystem::temp_directory_path() / "zf-fuzz-XXXXXX").string();
    zerofarm::storage::Options o;
    o.dir = ::mkdtemp(dir.data());
    o.sync = false;  // durability is not what is fuzzed here
    auto s = zerofarm::storage::Store::Open(o);
    if (!s.ok()) std::abort();
    return std::move(*s);
  }();
  return *store;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto& store = SharedStore();
  BytesSource source(data, size);
  zerofarm::transcode::IngestOptions options;
  options.chunk_seconds = 1;
  options.prefix = "fuzz/";
  auto result = zerofarm::transcode::Ingest(source, store, options, nullptr);
  (void)result;
  (void)store.DeleteObjects("fuzz/");
  return 0;
}
