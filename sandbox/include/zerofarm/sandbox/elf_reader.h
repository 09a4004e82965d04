// ParseElf: a hardened reader for x86-64 ELF64 little-endian executables.
//
// Every offset, size and count read from the file is bounds- and overflow-checked against the
// input before use; anything inconsistent is rejected with Status code "malformed_elf" and a
// message naming the field. The reader never trusts section headers for what gets loaded: the
// program headers are the loader's view, sections and symbols are optional hints.
// Lifetime: names in an ElfImage are views into the parsed bytes, which must outlive it.
// Thread safety: ParseElf is a pure function; an ElfImage is a plain value.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "zerofarm/base/status.h"

namespace zerofarm::sandbox {

// Limits on counts a well-formed executable stays far below; larger values are rejected so
// that a hostile header cannot make the reader allocate or loop without bound.
struct ElfLimits {
  uint32_t max_program_headers = 256;  // static executables have about 10
  uint32_t max_sections = 16384;       // linked executables have about 40
  uint64_t max_symbols = 1 << 22;      // a static FFmpeg has about 100,000
};

// Field values are as in the ELF specification (p_type, p_flags, sh_type, st_info ...).
struct ElfSegment {
  uint32_t type = 0;
  uint32_t flags = 0;
  uint64_t offset = 0;
  uint64_t vaddr = 0;
  uint64_t filesz = 0;
  uint64_t memsz = 0;
  uint64_t align = 0;
  bool readable() const { return (flags & 4u) != 0; }
  bool writable() const { return (flags & 2u) != 0; }
  bool executable() const { return (flags & 1u) != 0; }
};

struct ElfSection {
  std::string_view name;
  uint32_t type = 0;
  uint64_t flags = 0;
  uint64_t addr = 0;
  uint64_t offset = 0;
  uint64_t size = 0;
  uint32_t link = 0;
  uint64_t entsize = 0;
};

struct ElfSymbol {
  std::string_view name;
  uint64_t value = 0;
  uint64_t size = 0;
  uint8_t type = 0;     // STT_*
  uint8_t binding = 0;  // STB_*
  uint16_t section = 0;
  // STT_FUNC or STT_GNU_IFUNC with a section.
  bool is_function() const { return (type == 2 || type == 10) && section != 0; }
};

struct ElfImage {
  uint16_t type = 0;  // ET_EXEC, ET_DYN, ...
  uint64_t entry = 0;
  std::vector<ElfSegment> segments;  // in file order
  std::vector<ElfSection> sections;  // in file order; empty when the file has none
  std::vector<ElfSymbol> symbols;    // from SHT_SYMTAB, or SHT_DYNSYM when there is none
};

// Parses `bytes` as an x86-64 ELF64 executable image (any e_type; the validator decides which
// types it accepts). Rejections carry code "malformed_elf".
Result<ElfImage> ParseElf(std::span<const std::byte> bytes, const ElfLimits& limits = {});

}  // namespace zerofarm::sandbox
