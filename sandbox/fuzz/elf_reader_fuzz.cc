// libFuzzer target: the ELF reader on arbitrary bytes. It must return a value or a
// "malformed_elf" status, never crash, hang or read out of bounds.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "zerofarm/sandbox/elf_reader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using zerofarm::sandbox::ElfImage;
  const std::span<const std::byte> bytes = std::as_bytes(std::span(data, size));
  zerofarm::Result<ElfImage> image = zerofarm::sandbox::ParseElf(bytes);
  if (!image.ok()) {
    if (image.status().code() != zerofarm::ErrorCode::kMalformedElf) std::abort();
    return 0;
  }
  // Every name is a view into the input: touch each byte so ASan checks the bounds.
  size_t sum = 0;
  for (const auto& s : image->sections) {
    for (char c : s.name) sum += static_cast<unsigned char>(c);
  }
  for (const auto& s : image->symbols) {
    for (char c : s.name) sum += static_cast<unsigned char>(c);
  }
  for (const auto& s : image->segments) {
    if (s.offset > size || s.filesz > size - s.offset) std::abort();  // reader's contract
  }
  return sum == SIZE_MAX ? 1 : 0;
}
