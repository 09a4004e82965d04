// ElfBuilder: writes small x86-64 ELF64 executables byte by byte, for validator tests that need
// exact control over headers and code (hostile and malformed programs included).
//
// Layout: ELF header, program headers, then the code segment at file offset 0x1000 mapped at
// 0x401000 (entry at its first byte), then each extra segment on its own page, then the symbol
// and string tables and the section headers. By default the code segment is R+X and a
// non-executable PT_GNU_STACK is present.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

namespace zerofarm::sandbox_test {

inline constexpr uint64_t kCodeVaddr = 0x401000;
inline constexpr uint64_t kCodeOffset = 0x1000;

class ElfBuilder {
 public:
  explicit ElfBuilder(std::vector<uint8_t> code) : code_(std::move(code)) {}

  // p_flags of the code segment (PF_R | PF_X by default).
  ElfBuilder& CodeFlags(uint32_t flags);
  // PT_GNU_STACK: present with these flags, or absent when `present` is false.
  ElfBuilder& Stack(bool present, uint32_t flags = 6);
  // An extra segment; PT_LOAD ones are mapped at `vaddr` (page-aligned), others only in file.
  ElfBuilder& AddSegment(uint32_t type, uint32_t flags, uint64_t vaddr, std::vector<uint8_t> data,
                         uint64_t memsz = 0);
  ElfBuilder& Interpreter(const std::string& path);
  // A symbol in the code section: `offset` bytes into the code; type STT_FUNC unless given.
  ElfBuilder& Symbol(const std::string& name, uint64_t offset, uint64_t size, uint8_t type = 2);
  ElfBuilder& Entry(uint64_t vaddr);

  std::vector<std::byte> Build() const;

 private:
  struct Segment {
    uint32_t type;
    uint32_t flags;
    uint64_t vaddr;
    std::vector<uint8_t> data;
    uint64_t memsz;
  };
  struct Sym {
    std::string name;
    uint64_t offset;
    uint64_t size;
    uint8_t type;
  };

  std::vector<uint8_t> code_;
  uint32_t code_flags_ = 5;  // PF_R | PF_X
  bool stack_ = true;
  uint32_t stack_flags_ = 6;  // PF_R | PF_W
  uint64_t entry_ = kCodeVaddr;
  std::vector<Segment> extra_;
  std::vector<Sym> symbols_;
};

// Reads and writes a trivially copyable header struct at `offset` of an ELF file in memory.
template <class T>
T ReadStruct(const std::vector<std::byte>& elf, size_t offset) {
  T value;
  std::memcpy(&value, elf.data() + offset, sizeof value);
  return value;
}

template <class T>
void WriteStruct(std::vector<std::byte>& elf, size_t offset, const T& value) {
  std::memcpy(elf.data() + offset, &value, sizeof value);
}

}  // namespace zerofarm::sandbox_test
