#include "zerofarm/sandbox/elf_reader.h"

#include <elf.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <type_traits>

namespace zerofarm::sandbox {
namespace {

// x86-64 user space ends at 2^47; loadable segments must lie below it. This also leaves every
// later address computation (page rounding, end = start + size) far from overflow.
constexpr uint64_t kUserAddressLimit = uint64_t{1} << 47;

Status Malformed(const std::string& message) {
  return Status::Error(ErrorCode::kMalformedElf, message);
}

std::string Hex(uint64_t v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

// True when [offset, offset + size) lies inside a buffer of `total` bytes, without overflow.
bool InBounds(uint64_t offset, uint64_t size, uint64_t total) {
  return offset <= total && size <= total - offset;
}

// Copies a trivially copyable struct out of the buffer (no alignment assumptions).
template <class T>
bool ReadAt(std::span<const std::byte> bytes, uint64_t offset, T* out) {
  static_assert(std::is_trivially_copyable_v<T>);
  if (!InBounds(offset, sizeof(T), bytes.size())) return false;
  std::memcpy(out, bytes.data() + offset, sizeof(T));
  return true;
}

// A string table: names must start inside it and be NUL-terminated inside it.
class StringTable {
 public:
  StringTable() = default;
  explicit StringTable(std::span<const std::byte> data) : data_(data) {}
  bool Get(uint64_t index, std::string_view* out) const {
    if (index >= data_.size()) return false;
    const char* begin = reinterpret_cast<const char*>(data_.data()) + index;
    const void* nul = std::memchr(begin, 0, data_.size() - index);
    if (nul == nullptr) return false;
    *out = std::string_view(begin, static_cast<const char*>(nul) - begin);
    return true;
  }

 private:
  std::span<const std::byte> data_;
};

Status CheckIdent(const Elf64_Ehdr& eh) {
  if (std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0) return Malformed("bad ELF magic");
  if (eh.e_ident[EI_CLASS] != ELFCLASS64) return Malformed("not ELFCLASS64");
  if (eh.e_ident[EI_DATA] != ELFDATA2LSB) return Malformed("not little-endian");
  if (eh.e_ident[EI_VERSION] != EV_CURRENT || eh.e_version != EV_CURRENT) {
    return Malformed("unknown ELF version");
  }
  if (eh.e_machine != EM_X86_64) {
    return Malformed("machine " + std::to_string(eh.e_machine) + " is not x86-64");
  }
  if (eh.e_ehsize < sizeof(Elf64_Ehdr)) return Malformed("e_ehsize smaller than the header");
  return Status::Ok();
}

Status ReadSegments(std::span<const std::byte> bytes, const Elf64_Ehdr& eh, const ElfLimits& limits,
                    ElfImage* image) {
  if (eh.e_phnum == 0) return Status::Ok();
  if (eh.e_phnum == PN_XNUM) return Malformed("extended program header numbering unsupported");
  if (eh.e_phnum > limits.max_program_headers) {
    return Malformed("e_phnum " + std::to_string(eh.e_phnum) + " exceeds the limit of " +
                     std::to_string(limits.max_program_headers));
  }
  if (eh.e_phentsize != sizeof(Elf64_Phdr)) return Malformed("e_phentsize is not 56");
  const uint64_t table_size = uint64_t{eh.e_phnum} * sizeof(Elf64_Phdr);
  if (!InBounds(eh.e_phoff, table_size, bytes.size())) {
    return Malformed("program header table (e_phoff " + Hex(eh.e_phoff) + ") outside the file");
  }
  image->segments.reserve(eh.e_phnum);
  for (uint32_t i = 0; i < eh.e_phnum; ++i) {
    Elf64_Phdr ph;
    ReadAt(bytes, eh.e_phoff + uint64_t{i} * sizeof(Elf64_Phdr), &ph);  // in bounds: see above
    const std::string which = "segment " + std::to_string(i);
    if (!InBounds(ph.p_offset, ph.p_filesz, bytes.size())) {
      return Malformed(which + " (offset " + Hex(ph.p_offset) + ", size " + Hex(ph.p_filesz) +
                       ") extends past the end of the file");
    }
    if (ph.p_align > 1 && (ph.p_align & (ph.p_align - 1)) != 0) {
      return Malformed(which + " alignment is not a power of two");
    }
    if (ph.p_type == PT_LOAD) {
      if (ph.p_filesz > ph.p_memsz) return Malformed(which + " has p_filesz > p_memsz");
      if (!InBounds(ph.p_vaddr, ph.p_memsz, kUserAddressLimit)) {
        return Malformed(which + " lies outside the user address space");
      }
      if (ph.p_align > 1 && (ph.p_vaddr - ph.p_offset) % ph.p_align != 0) {
        return Malformed(which + " p_vaddr and p_offset disagree modulo p_align");
      }
    }
    image->segments.push_back(ElfSegment{ph.p_type, ph.p_flags, ph.p_offset, ph.p_vaddr,
                                         ph.p_filesz, ph.p_memsz, ph.p_align});
  }
  // Loadable segments must not overlap in memory: the later mapping would silently replace
  // part of the earlier one.
  std::vector<const ElfSegment*> loads;
  for (const ElfSegment& s : image->segments) {
    if (s.type == PT_LOAD && s.memsz > 0) loads.push_back(&s);
  }
  std::sort(loads.begin(), loads.end(),
            [](const ElfSegment* a, const ElfSegment* b) { return a->vaddr < b->vaddr; });
  for (size_t i = 1; i < loads.size(); ++i) {
    if (loads[i - 1]->vaddr + loads[i - 1]->memsz > loads[i]->vaddr) {
      return Malformed("loadable segments overlap in memory at " + Hex(loads[i]->vaddr));
    }
  }
  return Status::Ok();
}

Status ReadSections(std::span<const std::byte> bytes, const Elf64_Ehdr& eh, const ElfLimits& limits,
                    std::vector<Elf64_Shdr>* headers, ElfImage* image) {
  if (eh.e_shoff == 0) {
    if (eh.e_shnum != 0) return Malformed("e_shnum set without a section header table");
    return Status::Ok();
  }
  if (eh.e_shnum == 0) return Malformed("extended section numbering unsupported");
  if (eh.e_shnum >= SHN_LORESERVE || eh.e_shnum > limits.max_sections) {
    return Malformed("e_shnum " + std::to_string(eh.e_shnum) + " exceeds the limit of " +
                     std::to_string(std::min<uint32_t>(limits.max_sections, SHN_LORESERVE - 1)));
  }
  if (eh.e_shentsize != sizeof(Elf64_Shdr)) return Malformed("e_shentsize is not 64");
  const uint64_t table_size = uint64_t{eh.e_shnum} * sizeof(Elf64_Shdr);
  if (!InBounds(eh.e_shoff, table_size, bytes.size())) {
    return Malformed("section header table (e_shoff " + Hex(eh.e_shoff) + ") outside the file");
  }
  headers->resize(eh.e_shnum);
  for (uint32_t i = 0; i < eh.e_shnum; ++i) {
    Elf64_Shdr& sh = (*headers)[i];
    ReadAt(bytes, eh.e_shoff + uint64_t{i} * sizeof(Elf64_Shdr), &sh);  // in bounds
    if (sh.sh_type != SHT_NOBITS && !InBounds(sh.sh_offset, sh.sh_size, bytes.size())) {
      return Malformed("section " + std::to_string(i) + " extends past the end of the file");
    }
  }

  StringTable names;
  if (eh.e_shstrndx != SHN_UNDEF) {
    if (eh.e_shstrndx >= eh.e_shnum) {
      return Malformed("e_shstrndx " + std::to_string(eh.e_shstrndx) + " is not a section");
    }
    const Elf64_Shdr& strtab = (*headers)[eh.e_shstrndx];
    if (strtab.sh_type != SHT_STRTAB) return Malformed("e_shstrndx is not a string table");
    names = StringTable(bytes.subspan(strtab.sh_offset, strtab.sh_size));
  }
  image->sections.reserve(eh.e_shnum);
  for (uint32_t i = 0; i < eh.e_shnum; ++i) {
    const Elf64_Shdr& sh = (*headers)[i];
    ElfSection section{{},           sh.sh_type, sh.sh_flags, sh.sh_addr,
                       sh.sh_offset, sh.sh_size, sh.sh_link,  sh.sh_entsize};
    if (eh.e_shstrndx != SHN_UNDEF && !names.Get(sh.sh_name, &section.name)) {
      return Malformed("section " + std::to_string(i) + " name outside the string table");
    }
    image->sections.push_back(section);
  }
  return Status::Ok();
}

Status ReadSymbols(std::span<const std::byte> bytes, const std::vector<Elf64_Shdr>& headers,
                   const ElfLimits& limits, ElfImage* image) {
  // The static symbol table when present, else the dynamic one.
  const Elf64_Shdr* table = nullptr;
  for (uint32_t want : {uint32_t{SHT_SYMTAB}, uint32_t{SHT_DYNSYM}}) {
    for (const Elf64_Shdr& sh : headers) {
      if (sh.sh_type == want) {
        table = &sh;
        break;
      }
    }
    if (table != nullptr) break;
  }
  if (table == nullptr) return Status::Ok();
  if (table->sh_entsize != sizeof(Elf64_Sym)) return Malformed("symbol entry size is not 24");
  if (table->sh_size % sizeof(Elf64_Sym) != 0) {
    return Malformed("symbol table size is not a multiple of 24");
  }
  const uint64_t count = table->sh_size / sizeof(Elf64_Sym);
  if (count > limits.max_symbols) {
    return Malformed("symbol count " + std::to_string(count) + " exceeds the limit of " +
                     std::to_string(limits.max_symbols));
  }
  if (table->sh_link == SHN_UNDEF || table->sh_link >= headers.size()) {
    return Malformed("symbol table string table index out of range");
  }
  const Elf64_Shdr& strtab = headers[table->sh_link];
  if (strtab.sh_type != SHT_STRTAB) return Malformed("symbol table link is not a string table");
  const StringTable names(bytes.subspan(strtab.sh_offset, strtab.sh_size));

  image->symbols.reserve(count);
  for (uint64_t i = 0; i < count; ++i) {
    Elf64_Sym sym;
    ReadAt(bytes, table->sh_offset + i * sizeof(Elf64_Sym), &sym);  // in bounds
    ElfSymbol out;
    if (!names.Get(sym.st_name, &out.name)) {
      return Malformed("symbol " + std::to_string(i) + " name outside its string table");
    }
    if (sym.st_shndx != SHN_UNDEF && sym.st_shndx < SHN_LORESERVE &&
        sym.st_shndx >= headers.size()) {
      return Malformed("symbol " + std::to_string(i) + " section index out of range");
    }
    if (sym.st_shndx == SHN_XINDEX) return Malformed("extended symbol section indices unsupported");
    out.value = sym.st_value;
    out.size = sym.st_size;
    out.type = ELF64_ST_TYPE(sym.st_info);
    out.binding = ELF64_ST_BIND(sym.st_info);
    out.section = sym.st_shndx;
    image->symbols.push_back(out);
  }
  return Status::Ok();
}

}  // namespace

Result<ElfImage> ParseElf(std::span<const std::byte> bytes, const ElfLimits& limits) {
  Elf64_Ehdr eh;
  if (!ReadAt(bytes, 0, &eh)) {
    return Malformed("truncated: " + std::to_string(bytes.size()) +
                     " bytes is shorter than an ELF64 header");
  }
  ZF_RETURN_IF_ERROR(CheckIdent(eh));
  ElfImage image;
  image.type = eh.e_type;
  image.entry = eh.e_entry;
  ZF_RETURN_IF_ERROR(ReadSegments(bytes, eh, limits, &image));
  std::vector<Elf64_Shdr> headers;
  ZF_RETURN_IF_ERROR(ReadSections(bytes, eh, limits, &headers, &image));
  ZF_RETURN_IF_ERROR(ReadSymbols(bytes, headers, limits, &image));
  return image;
}

}  // namespace zerofarm::sandbox
