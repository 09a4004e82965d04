#include "elf_builder.h"

#include <elf.h>

namespace zerofarm::sandbox_test {
namespace {

constexpr uint64_t kPage = 0x1000;

uint64_t AlignUp(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

void Put(std::vector<std::byte>& out, uint64_t offset, const void* data, size_t size) {
  if (out.size() < offset + size) out.resize(offset + size);
  if (size > 0) std::memcpy(out.data() + offset, data, size);
}

}  // namespace

ElfBuilder& ElfBuilder::CodeFlags(uint32_t flags) {
  code_flags_ = flags;
  return *this;
}

ElfBuilder& ElfBuilder::Stack(bool present, uint32_t flags) {
  stack_ = present;
  stack_flags_ = flags;
  return *this;
}

ElfBuilder& ElfBuilder::AddSegment(uint32_t type, uint32_t flags, uint64_t vaddr,
                                   std::vector<uint8_t> data, uint64_t memsz) {
  const uint64_t size = data.size();
  extra_.push_back(Segment{type, flags, vaddr, std::move(data), memsz ? memsz : size});
  return *this;
}

ElfBuilder& ElfBuilder::Interpreter(const std::string& path) {
  std::vector<uint8_t> data(path.begin(), path.end());
  data.push_back(0);
  return AddSegment(PT_INTERP, PF_R, 0, std::move(data));
}

ElfBuilder& ElfBuilder::Symbol(const std::string& name, uint64_t offset, uint64_t size,
                               uint8_t type) {
  symbols_.push_back(Sym{name, offset, size, type});
  return *this;
}

ElfBuilder& ElfBuilder::Entry(uint64_t vaddr) {
  entry_ = vaddr;
  return *this;
}

std::vector<std::byte> ElfBuilder::Build() const {
  std::vector<Elf64_Phdr> phdrs;
  Elf64_Phdr code{};
  code.p_type = PT_LOAD;
  code.p_flags = code_flags_;
  code.p_offset = kCodeOffset;
  code.p_vaddr = code.p_paddr = kCodeVaddr;
  code.p_filesz = code.p_memsz = code_.size();
  code.p_align = kPage;
  phdrs.push_back(code);

  std::vector<std::byte> out;
  Put(out, kCodeOffset, code_.data(), code_.size());
  uint64_t next = AlignUp(kCodeOffset + code_.size(), kPage);
  for (const Segment& s : extra_) {
    Elf64_Phdr ph{};
    ph.p_type = s.type;
    ph.p_flags = s.flags;
    ph.p_offset = next;
    ph.p_vaddr = ph.p_paddr = s.vaddr;
    ph.p_filesz = s.data.size();
    ph.p_memsz = s.memsz;
    ph.p_align = s.type == PT_LOAD ? kPage : 1;
    phdrs.push_back(ph);
    Put(out, next, s.data.data(), s.data.size());
    next = AlignUp(next + s.data.size(), kPage);
  }
  if (stack_) {
    Elf64_Phdr ph{};
    ph.p_type = PT_GNU_STACK;
    ph.p_flags = stack_flags_;
    ph.p_align = 16;
    phdrs.push_back(ph);
  }

  Elf64_Ehdr eh{};
  std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
  eh.e_ident[EI_CLASS] = ELFCLASS64;
  eh.e_ident[EI_DATA] = ELFDATA2LSB;
  eh.e_ident[EI_VERSION] = EV_CURRENT;
  eh.e_type = ET_EXEC;
  eh.e_machine = EM_X86_64;
  eh.e_version = EV_CURRENT;
  eh.e_entry = entry_;
  eh.e_phoff = sizeof(Elf64_Ehdr);
  eh.e_ehsize = sizeof(Elf64_Ehdr);
  eh.e_phentsize = sizeof(Elf64_Phdr);
  eh.e_phnum = static_cast<Elf64_Half>(phdrs.size());

  if (!symbols_.empty()) {
    // Sections: null, .text, .symtab, .strtab, .shstrtab.
    std::string strtab(1, '\0');
    std::vector<Elf64_Sym> syms(1);  // the null symbol
    for (const Sym& s : symbols_) {
      Elf64_Sym sym{};
      sym.st_name = static_cast<Elf64_Word>(strtab.size());
      strtab += s.name;
      strtab += '\0';
      sym.st_info = ELF64_ST_INFO(STB_GLOBAL, s.type);
      sym.st_shndx = 1;
      sym.st_value = kCodeVaddr + s.offset;
      sym.st_size = s.size;
      syms.push_back(sym);
    }
    const std::string shstrtab = std::string("\0.text\0.symtab\0.strtab\0.shstrtab\0", 34);
    const uint64_t symtab_off = AlignUp(next, 8);
    Put(out, symtab_off, syms.data(), syms.size() * sizeof(Elf64_Sym));
    const uint64_t strtab_off = symtab_off + syms.size() * sizeof(Elf64_Sym);
    Put(out, strtab_off, strtab.data(), strtab.size());
    const uint64_t shstrtab_off = strtab_off + strtab.size();
    Put(out, shstrtab_off, shstrtab.data(), shstrtab.size());
    const uint64_t shoff = AlignUp(shstrtab_off + shstrtab.size(), 8);

    Elf64_Shdr sh[5] = {};
    sh[1].sh_name = 1;  // .text
    sh[1].sh_type = SHT_PROGBITS;
    sh[1].sh_flags = SHF_ALLOC | SHF_EXECINSTR;
    sh[1].sh_addr = kCodeVaddr;
    sh[1].sh_offset = kCodeOffset;
    sh[1].sh_size = code_.size();
    sh[2].sh_name = 7;  // .symtab
    sh[2].sh_type = SHT_SYMTAB;
    sh[2].sh_offset = symtab_off;
    sh[2].sh_size = syms.size() * sizeof(Elf64_Sym);
    sh[2].sh_link = 3;
    sh[2].sh_info = 1;
    sh[2].sh_entsize = sizeof(Elf64_Sym);
    sh[3].sh_name = 15;  // .strtab
    sh[3].sh_type = SHT_STRTAB;
    sh[3].sh_offset = strtab_off;
    sh[3].sh_size = strtab.size();
    sh[4].sh_name = 23;  // .shstrtab
    sh[4].sh_type = SHT_STRTAB;
    sh[4].sh_offset = shstrtab_off;
    sh[4].sh_size = shstrtab.size();
    Put(out, shoff, sh, sizeof sh);
    eh.e_shoff = shoff;
    eh.e_shentsize = sizeof(Elf64_Shdr);
    eh.e_shnum = 5;
    eh.e_shstrndx = 4;
  }

  Put(out, 0, &eh, sizeof eh);
  Put(out, eh.e_phoff, phdrs.data(), phdrs.size() * sizeof(Elf64_Phdr));
  return out;
}

}  // namespace zerofarm::sandbox_test
