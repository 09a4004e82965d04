#include "zerofarm/sandbox/elf_reader.h"

#include <elf.h>

#include <catch2/catch.hpp>
#include <limits>

#include "elf_builder.h"

namespace zerofarm::sandbox {
namespace {

using Catch::Matchers::Contains;
using sandbox_test::ElfBuilder;
using sandbox_test::kCodeVaddr;
using sandbox_test::ReadStruct;
using sandbox_test::WriteStruct;

// mov eax, 60; xor edi, edi; syscall
const std::vector<uint8_t> kExit = {0xb8, 0x3c, 0x00, 0x00, 0x00, 0x31, 0xff, 0x0f, 0x05};

std::vector<std::byte> GoodElf() {
  return ElfBuilder(kExit)
      .Symbol("_start", 0, kExit.size())
      .Symbol("label", 5, 0, STT_NOTYPE)
      .Build();
}

Elf64_Ehdr Header(const std::vector<std::byte>& elf) { return ReadStruct<Elf64_Ehdr>(elf, 0); }

// Edits the ELF header in place.
template <class F>
std::vector<std::byte> WithHeader(std::vector<std::byte> elf, F edit) {
  Elf64_Ehdr eh = Header(elf);
  edit(eh);
  WriteStruct(elf, 0, eh);
  return elf;
}

// Edits program header `index` in place.
template <class F>
std::vector<std::byte> WithSegment(std::vector<std::byte> elf, size_t index, F edit) {
  const size_t at = Header(elf).e_phoff + index * sizeof(Elf64_Phdr);
  Elf64_Phdr ph = ReadStruct<Elf64_Phdr>(elf, at);
  edit(ph);
  WriteStruct(elf, at, ph);
  return elf;
}

// Edits section header `index` in place.
template <class F>
std::vector<std::byte> WithSection(std::vector<std::byte> elf, size_t index, F edit) {
  const size_t at = Header(elf).e_shoff + index * sizeof(Elf64_Shdr);
  Elf64_Shdr sh = ReadStruct<Elf64_Shdr>(elf, at);
  edit(sh);
  WriteStruct(elf, at, sh);
  return elf;
}

void RequireMalformed(const std::vector<std::byte>& elf, const std::string& message_part) {
  Result<ElfImage> image = ParseElf(elf);
  REQUIRE_FALSE(image.ok());
  CHECK(image.status().code() == ErrorCode::kMalformedElf);
  CHECK_THAT(image.status().message(), Contains(message_part));
}

TEST_CASE("a well-formed executable is read with its segments, sections and symbols", "[sandbox]") {
  const std::vector<std::byte> elf = GoodElf();
  Result<ElfImage> image = ParseElf(elf);
  REQUIRE(image.ok());
  CHECK(image->type == ET_EXEC);
  CHECK(image->entry == kCodeVaddr);
  REQUIRE(image->segments.size() == 2);
  CHECK(image->segments[0].type == PT_LOAD);
  CHECK(image->segments[0].executable());
  CHECK_FALSE(image->segments[0].writable());
  CHECK(image->segments[0].filesz == kExit.size());
  CHECK(image->segments[1].type == PT_GNU_STACK);
  REQUIRE(image->sections.size() == 5);
  CHECK(image->sections[1].name == ".text");
  REQUIRE(image->symbols.size() == 3);
  CHECK(image->symbols[1].name == "_start");
  CHECK(image->symbols[1].is_function());
  CHECK(image->symbols[1].value == kCodeVaddr);
  CHECK(image->symbols[1].size == kExit.size());
  CHECK(image->symbols[2].name == "label");
  CHECK_FALSE(image->symbols[2].is_function());
}

TEST_CASE("a truncated file is rejected as malformed", "[sandbox]") {
  const std::vector<std::byte> elf = GoodElf();
  SECTION("empty") { RequireMalformed({}, "truncated"); }
  SECTION("shorter than the ELF header") {
    RequireMalformed(std::vector<std::byte>(elf.begin(), elf.begin() + 40), "truncated");
  }
  SECTION("cut inside the program headers") {
    RequireMalformed(std::vector<std::byte>(elf.begin(), elf.begin() + 100),
                     "program header table");
  }
  SECTION("cut inside the code segment") {
    RequireMalformed(std::vector<std::byte>(elf.begin(), elf.begin() + 0x1004),
                     "past the end of the file");
  }
}

TEST_CASE("bad magic, class, byte order, version or machine is rejected", "[sandbox]") {
  const std::vector<std::byte> elf = GoodElf();
  SECTION("magic") {
    RequireMalformed(WithHeader(elf, [](Elf64_Ehdr& h) { h.e_ident[1] = 'X'; }), "magic");
  }
  SECTION("32-bit class") {
    RequireMalformed(WithHeader(elf, [](Elf64_Ehdr& h) { h.e_ident[EI_CLASS] = ELFCLASS32; }),
                     "ELFCLASS64");
  }
  SECTION("big-endian") {
    RequireMalformed(WithHeader(elf, [](Elf64_Ehdr& h) { h.e_ident[EI_DATA] = ELFDATA2MSB; }),
                     "little-endian");
  }
  SECTION("version") {
    RequireMalformed(WithHeader(elf, [](Elf64_Ehdr& h) { h.e_version = 2; }), "version");
  }
  SECTION("AArch64") {
    RequireMalformed(WithHeader(elf, [](Elf64_Ehdr& h) { h.e_machine = EM_AARCH64; }),
                     "not x86-64");
  }
  SECTION("header size") {
    RequireMalformed(WithHeader(elf, [](Elf64_Ehdr& h) { h.e_ehsize = 20; }), "e_ehsize");
  }
  SECTION("program header entry size") {
    RequireMalformed(WithHeader(elf, [](Elf64_Ehdr& h) { h.e_phentsize = 32; }), "e_phentsize");
  }
  SECTION("section header entry size") {
    RequireMalformed(WithHeader(elf, [](Elf64_Ehdr& h) { h.e_shentsize = 40; }), "e_shentsize");
  }
}

TEST_CASE("a program header table outside the file is rejected", "[sandbox]") {
  const std::vector<std::byte> elf = GoodElf();
  SECTION("e_phoff past the end") {
    RequireMalformed(WithHeader(elf, [&](Elf64_Ehdr& h) { h.e_phoff = elf.size(); }),
                     "program header table");
  }
  SECTION("e_phoff + table size overflows") {
    RequireMalformed(
        WithHeader(elf,
                   [](Elf64_Ehdr& h) { h.e_phoff = std::numeric_limits<uint64_t>::max() - 8; }),
        "program header table");
  }
}

TEST_CASE("huge header counts are rejected before anything is read", "[sandbox]") {
  const std::vector<std::byte> elf = GoodElf();
  SECTION("e_phnum") {
    RequireMalformed(WithHeader(elf, [](Elf64_Ehdr& h) { h.e_phnum = 0xfff0; }),
                     "exceeds the limit");
  }
  SECTION("PN_XNUM extended numbering") {
    RequireMalformed(WithHeader(elf, [](Elf64_Ehdr& h) { h.e_phnum = PN_XNUM; }), "extended");
  }
  SECTION("e_shnum") {
    RequireMalformed(WithHeader(elf, [](Elf64_Ehdr& h) { h.e_shnum = 0xfe00; }),
                     "exceeds the limit");
  }
  SECTION("a lower configured limit") {
    ElfLimits limits;
    limits.max_program_headers = 1;
    Result<ElfImage> image = ParseElf(elf, limits);
    REQUIRE_FALSE(image.ok());
    CHECK_THAT(image.status().message(), Contains("e_phnum 2 exceeds the limit of 1"));
  }
}

TEST_CASE("a segment reaching past the end of the file is rejected", "[sandbox]") {
  const std::vector<std::byte> elf = GoodElf();
  SECTION("p_filesz too large") {
    RequireMalformed(WithSegment(elf, 0,
                                 [&](Elf64_Phdr& p) {
                                   p.p_filesz = elf.size();
                                   p.p_memsz = elf.size();
                                 }),
                     "past the end of the file");
  }
  SECTION("p_offset + p_filesz overflows") {
    RequireMalformed(
        WithSegment(elf, 0,
                    [](Elf64_Phdr& p) { p.p_offset = std::numeric_limits<uint64_t>::max() - 2; }),
        "past the end of the file");
  }
  SECTION("a non-loadable segment too") {
    RequireMalformed(WithSegment(elf, 1, [&](Elf64_Phdr& p) { p.p_offset = elf.size() + 1; }),
                     "segment 1");
  }
}

TEST_CASE("a loadable segment with more file bytes than memory bytes is rejected", "[sandbox]") {
  RequireMalformed(WithSegment(GoodElf(), 0, [](Elf64_Phdr& p) { p.p_memsz = 2; }),
                   "p_filesz > p_memsz");
}

TEST_CASE("overlapping loadable segments are rejected", "[sandbox]") {
  const std::vector<std::byte> elf =
      ElfBuilder(kExit)
          .AddSegment(PT_LOAD, PF_R | PF_W, 0x402000, std::vector<uint8_t>(64, 1))
          .Build();
  REQUIRE(ParseElf(elf).ok());
  // Grow the code segment in memory over the data segment.
  RequireMalformed(WithSegment(elf, 0, [](Elf64_Phdr& p) { p.p_memsz = 0x1100; }),
                   "overlap in memory");
}

TEST_CASE("a loadable segment outside the user address space is rejected", "[sandbox]") {
  RequireMalformed(WithSegment(GoodElf(), 0,
                               [](Elf64_Phdr& p) {
                                 p.p_vaddr = 0xffffffffffff0000;
                                 p.p_memsz = 0x20000;
                               }),
                   "user address space");
}

TEST_CASE("a section header table outside the file is rejected", "[sandbox]") {
  const std::vector<std::byte> elf = GoodElf();
  RequireMalformed(WithHeader(elf, [&](Elf64_Ehdr& h) { h.e_shoff = elf.size() - 10; }),
                   "section header table");
}

TEST_CASE("bad string table indices are rejected", "[sandbox]") {
  const std::vector<std::byte> elf = GoodElf();
  SECTION("e_shstrndx past the section count") {
    RequireMalformed(WithHeader(elf, [](Elf64_Ehdr& h) { h.e_shstrndx = 9; }), "e_shstrndx");
  }
  SECTION("e_shstrndx names a section that is not a string table") {
    RequireMalformed(WithHeader(elf, [](Elf64_Ehdr& h) { h.e_shstrndx = 2; }),
                     "not a string table");
  }
  SECTION("a section name beyond the string table") {
    RequireMalformed(WithSection(elf, 1, [](Elf64_Shdr& s) { s.sh_name = 5000; }),
                     "name outside the string table");
  }
  SECTION("a string table without a terminating NUL") {
    // .shstrtab ends with ".shstrtab\0\0"; cut it before its last name's NUL.
    RequireMalformed(WithSection(elf, 4, [](Elf64_Shdr& s) { s.sh_size = 30; }),
                     "name outside the string table");
  }
}

TEST_CASE("symbol table bounds are checked", "[sandbox]") {
  const std::vector<std::byte> elf = GoodElf();
  SECTION("symbol table past the end of the file") {
    RequireMalformed(WithSection(elf, 2, [](Elf64_Shdr& s) { s.sh_size = 24 * 100000; }),
                     "past the end of the file");
  }
  SECTION("size not a multiple of the entry size") {
    RequireMalformed(WithSection(elf, 2, [](Elf64_Shdr& s) { s.sh_size -= 1; }), "multiple of 24");
  }
  SECTION("wrong entry size") {
    RequireMalformed(WithSection(elf, 2, [](Elf64_Shdr& s) { s.sh_entsize = 16; }), "entry size");
  }
  SECTION("string table link out of range") {
    RequireMalformed(WithSection(elf, 2, [](Elf64_Shdr& s) { s.sh_link = 77; }),
                     "string table index");
  }
  SECTION("symbol name outside its string table") {
    std::vector<std::byte> bad = elf;
    const auto symtab = ReadStruct<Elf64_Shdr>(bad, Header(bad).e_shoff + 2 * sizeof(Elf64_Shdr));
    auto sym = ReadStruct<Elf64_Sym>(bad, symtab.sh_offset + sizeof(Elf64_Sym));
    sym.st_name = 0x7fffffff;
    WriteStruct(bad, symtab.sh_offset + sizeof(Elf64_Sym), sym);
    RequireMalformed(bad, "name outside its string table");
  }
  SECTION("symbol section index out of range") {
    std::vector<std::byte> bad = elf;
    const auto symtab = ReadStruct<Elf64_Shdr>(bad, Header(bad).e_shoff + 2 * sizeof(Elf64_Shdr));
    auto sym = ReadStruct<Elf64_Sym>(bad, symtab.sh_offset + sizeof(Elf64_Sym));
    sym.st_shndx = 300;
    WriteStruct(bad, symtab.sh_offset + sizeof(Elf64_Sym), sym);
    RequireMalformed(bad, "section index out of range");
  }
  SECTION("more symbols than the limit") {
    ElfLimits limits;
    limits.max_symbols = 2;
    Result<ElfImage> image = ParseElf(elf, limits);
    REQUIRE_FALSE(image.ok());
    CHECK_THAT(image.status().message(), Contains("symbol count 3 exceeds the limit of 2"));
  }
}

}  // namespace
}  // namespace zerofarm::sandbox
