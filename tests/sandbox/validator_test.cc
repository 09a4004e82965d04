// The validator on programs written byte by byte: each hostile or broken program is rejected
// with its reason and address, before anything runs.
#include "zerofarm/sandbox/validator.h"

#include <elf.h>

#include <catch2/catch.hpp>

#include "elf_builder.h"

namespace zerofarm::sandbox {
namespace {

using Catch::Matchers::Contains;
using sandbox_test::ElfBuilder;
using sandbox_test::kCodeOffset;
using sandbox_test::kCodeVaddr;
using sandbox_test::ReadStruct;
using sandbox_test::WriteStruct;
using Bytes = std::vector<uint8_t>;

// mov eax, 60; xor edi, edi; syscall  (exit(0))
const Bytes kExit = {0xb8, 0x3c, 0x00, 0x00, 0x00, 0x31, 0xff, 0x0f, 0x05};

Bytes Concat(Bytes a, const Bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

ValidationReport Check(const std::vector<std::byte>& elf, const ValidatorOptions& options = {}) {
  Result<ValidationReport> report = Validate(elf, options);
  REQUIRE(report.ok());
  INFO(ReportToJson(*report));
  CHECK((report->reasons_total == 0) == report->accepted());
  return std::move(report).value();
}

// The first reason with this code, or nullptr.
const Reason* Find(const ValidationReport& report, const std::string& code) {
  for (const Reason& r : report.reasons) {
    if (r.code == code) return &r;
  }
  return nullptr;
}

TEST_CASE("a minimal static program that only exits is accepted", "[sandbox]") {
  const ValidationReport report =
      Check(ElfBuilder(kExit).Symbol("_start", 0, kExit.size()).Build());
  CHECK(report.accepted());
  CHECK(report.sha256.size() == 64);
  CHECK(report.counts.instructions == 3);
  CHECK(report.counts.by_symbol_bytes == kExit.size());
  CHECK(report.counts.decoded_bytes == kExit.size());
  CHECK(report.counts.data_region_bytes == 0);
  // The rest of the page is zeros: padding, accounted for.
  CHECK(report.counts.executable_bytes == 4096);
  CHECK(report.counts.padding_bytes == 4096 - kExit.size());
  REQUIRE(report.syscall_sites.size() == 1);
  CHECK(report.syscall_sites[0].vaddr == kCodeVaddr + 7);
  CHECK(report.syscall_sites[0].file_offset == kCodeOffset + 7);
  CHECK(report.syscall_sites[0].symbol == "_start+0x7");
}

struct Forbidden {
  const char* name;
  Bytes bytes;
  const char* text;  // expected in the instruction text
};

TEST_CASE("privileged and system instructions are rejected with their address and text",
          "[sandbox]") {
  const std::vector<Forbidden> cases = {
      {"in from a port", {0xec}, "in al, dx"},
      {"in from an immediate port", {0xe4, 0x60}, "in al, 0x60"},
      {"out to a port", {0xee}, "out dx, al"},
      {"insb", {0x6c}, "insb"},
      {"outsb", {0x6e}, "outsb"},
      {"cli", {0xfa}, "cli"},
      {"sti", {0xfb}, "sti"},
      {"lgdt", {0x0f, 0x01, 0x10}, "lgdt"},
      {"lidt", {0x0f, 0x01, 0x18}, "lidt"},
      {"lldt", {0x0f, 0x00, 0xd0}, "lldt"},
      {"ltr", {0x0f, 0x00, 0xd8}, "ltr"},
      {"sgdt", {0x0f, 0x01, 0x00}, "sgdt"},
      {"sidt", {0x0f, 0x01, 0x08}, "sidt"},
      {"far jmp through memory", {0xff, 0x28}, "jmp far"},
      {"far call through memory", {0xff, 0x18}, "call far"},
      {"far ret", {0xcb}, "ret far"},
      {"int 0x80", {0xcd, 0x80}, "int 0x80"},
      {"int1", {0xf1}, "int1"},
      {"sysenter", {0x0f, 0x34}, "sysenter"},
      {"sysexit", {0x0f, 0x35}, "sysexit"},
      {"sysret", {0x0f, 0x07}, "sysret"},
      {"iretq", {0x48, 0xcf}, "iretq"},
      {"mov to ds", {0x8e, 0xd8}, "mov ds, ax"},
      {"mov to ss", {0x8e, 0xd0}, "mov ss, ax"},
      {"mov to fs from memory", {0x8e, 0x20}, "mov fs,"},
      {"pop fs", {0x0f, 0xa1}, "pop fs"},
      {"pop gs", {0x0f, 0xa9}, "pop gs"},
      {"lss", {0x0f, 0xb2, 0x00}, "lss"},
      {"lfs", {0x0f, 0xb4, 0x00}, "lfs"},
      {"swapgs", {0x0f, 0x01, 0xf8}, "swapgs"},
      {"rdmsr", {0x0f, 0x32}, "rdmsr"},
      {"wrmsr", {0x0f, 0x30}, "wrmsr"},
      {"rdpmc", {0x0f, 0x33}, "rdpmc"},
      {"invlpg", {0x0f, 0x01, 0x38}, "invlpg"},
      {"vmcall", {0x0f, 0x01, 0xc1}, "vmcall"},
      {"mov to cr0", {0x0f, 0x22, 0xc0}, "mov cr0"},
      {"wrfsbase", {0xf3, 0x48, 0x0f, 0xae, 0xd0}, "wrfsbase"},
      {"xsetbv", {0x0f, 0x01, 0xd1}, "xsetbv"},
  };
  for (const Forbidden& c : cases) {
    const Bytes code = Concat(c.bytes, kExit);
    DYNAMIC_SECTION(c.name << ", found through a sized symbol") {
      const ValidationReport report =
          Check(ElfBuilder(code).Symbol("_start", 0, code.size()).Build());
      CHECK_FALSE(report.accepted());
      const Reason* r = Find(report, "forbidden_instruction");
      REQUIRE(r != nullptr);
      CHECK(r->vaddr == kCodeVaddr);
      CHECK(r->file_offset == kCodeOffset);
      CHECK_THAT(r->instruction, Contains(c.text));
      CHECK(r->symbol == "_start");
      CHECK_FALSE(r->message.empty());
    }
    DYNAMIC_SECTION(c.name << ", found by traversal from the entry point") {
      const ValidationReport report = Check(ElfBuilder(code).Build());
      CHECK_FALSE(report.accepted());
      const Reason* r = Find(report, "forbidden_instruction");
      REQUIRE(r != nullptr);
      CHECK(r->vaddr == kCodeVaddr);
      CHECK_THAT(r->instruction, Contains(c.text));
    }
  }
}

TEST_CASE("hlt, rdtsc, int3, cpuid and ud2 are allowed and counted", "[sandbox]") {
  // cpuid; rdtsc; rdtscp; xgetbv; exit...; hlt; then int3 and ud2 reached by a jz.
  const Bytes code = Concat(
      Concat({0x0f, 0xa2, 0x0f, 0x31, 0x0f, 0x01, 0xf9, 0x0f, 0x01, 0xd0, 0x74, 0x0a}, kExit),
      {0xf4, 0xcc, 0x0f, 0x0b});
  const ValidationReport report = Check(ElfBuilder(code).Build());
  CHECK(report.accepted());
  CHECK(report.noted_instructions.at("hlt") == 1);
  CHECK(report.noted_instructions.at("rdtsc") == 1);
  CHECK(report.noted_instructions.at("rdtscp") == 1);
  CHECK(report.noted_instructions.at("cpuid") == 1);
  CHECK(report.noted_instructions.at("xgetbv") == 1);
  CHECK(report.noted_instructions.at("int3") == 1);
  CHECK(report.noted_instructions.count("ud2") == 0);  // after int3 nothing falls through
  CHECK(report.counts.data_region_bytes == 2);         // so ud2 is reported as data
}

TEST_CASE("the traversal follows direct branches past data to the code behind it", "[sandbox]") {
  SECTION("jmp over two data bytes to an in") {
    const Bytes code = Concat({0xeb, 0x02, 0xff, 0xff, 0xec}, kExit);
    const ValidationReport report = Check(ElfBuilder(code).Build());
    CHECK_FALSE(report.accepted());
    const Reason* r = Find(report, "forbidden_instruction");
    REQUIRE(r != nullptr);
    CHECK(r->vaddr == kCodeVaddr + 4);
    CHECK(report.counts.data_region_bytes == 2);
  }
  SECTION("both sides of a conditional jump") {
    // jz +9 (to cli); exit; cli
    const Bytes code = Concat(Concat({0x74, 0x09}, kExit), {0xfa});
    const ValidationReport report = Check(ElfBuilder(code).Build());
    const Reason* r = Find(report, "forbidden_instruction");
    REQUIRE(r != nullptr);
    CHECK(r->vaddr == kCodeVaddr + 2 + kExit.size());
    CHECK(report.syscall_sites.size() == 1);
  }
  SECTION("a call's target and its return path") {
    // call +9 (to sysenter); exit; sysenter
    const Bytes code = Concat(Concat({0xe8, 0x09, 0x00, 0x00, 0x00}, kExit), {0x0f, 0x34});
    const ValidationReport report = Check(ElfBuilder(code).Build());
    const Reason* r = Find(report, "forbidden_instruction");
    REQUIRE(r != nullptr);
    CHECK(r->vaddr == kCodeVaddr + 5 + kExit.size());
  }
  SECTION("a jump into the middle of an instruction hiding int 0x80") {
    // mov eax, 0x80cd9090 ; jmp back to its third byte: 90 90 cd 80 decode as nop; nop; int 0x80
    const Bytes code = Concat({0xb8, 0x90, 0x90, 0xcd, 0x80, 0xeb, 0xfa}, kExit);
    const ValidationReport report = Check(ElfBuilder(code).Symbol("_start", 0, 7).Build());
    CHECK_FALSE(report.accepted());
    const Reason* r = Find(report, "forbidden_instruction");
    REQUIRE(r != nullptr);
    CHECK(r->vaddr == kCodeVaddr + 3);
    CHECK_THAT(r->instruction, Contains("int 0x80"));
  }
}

TEST_CASE("a data table after ret in an unsized function is reported as a data region",
          "[sandbox]") {
  // _start: exit; ret;  table: bytes that a linear sweep would decode as in, cli and lgdt.
  const Bytes table = {0xe4, 0x60, 0xfa, 0x0f, 0x01, 0x10, 0x00, 0x07};
  const Bytes code = Concat(Concat(kExit, {0xc3}), table);
  const std::vector<std::byte> elf = ElfBuilder(code)
                                         .Symbol("_start", 0, 0)
                                         .Symbol("table", kExit.size() + 1, 0, STT_NOTYPE)
                                         .Build();
  const ValidationReport report = Check(elf);
  CHECK(report.accepted());
  CHECK(report.counts.traversal_bytes == kExit.size() + 1);
  CHECK(report.counts.by_symbol_bytes == 0);
  REQUIRE(report.data_regions.size() == 1);
  CHECK(report.counts.data_regions == 1);
  CHECK(report.data_regions[0].vaddr == kCodeVaddr + kExit.size() + 1);
  CHECK(report.data_regions[0].file_offset == kCodeOffset + kExit.size() + 1);
  CHECK(report.data_regions[0].size == table.size());
  CHECK(report.data_regions[0].section == ".text");
  CHECK(report.data_regions[0].symbol == "table");
  CHECK_FALSE(report.data_regions[0].outside_segment);
  CHECK(report.counts.data_region_bytes == table.size());
  CHECK(report.counts.executable_bytes == report.counts.decoded_bytes +
                                              report.counts.padding_bytes +
                                              report.counts.data_region_bytes);

  SECTION("and refused when the options demand full coverage") {
    ValidatorOptions strict;
    strict.reject_data_regions = true;
    const ValidationReport refused = Check(elf, strict);
    CHECK_FALSE(refused.accepted());
    REQUIRE(Find(refused, "data_region") != nullptr);
  }
}

TEST_CASE("undecodable bytes inside a sized function are rejected with their address",
          "[sandbox]") {
  // 0x06 (push es) does not exist in 64-bit mode.
  const Bytes code = Concat(Concat(kExit, {0x06}), {0xc3});
  const ValidationReport report = Check(ElfBuilder(code).Symbol("_start", 0, code.size()).Build());
  CHECK_FALSE(report.accepted());
  const Reason* r = Find(report, "decode_error");
  REQUIRE(r != nullptr);
  CHECK(r->vaddr == kCodeVaddr + kExit.size());
  CHECK(r->symbol == "_start+0x9");
}

TEST_CASE("bytes after a segment's end in its last page are checked too", "[sandbox]") {
  // The kernel maps whole pages: file bytes right after the code segment become executable.
  const Bytes code = Concat(kExit, {0xf4});  // exit; hlt
  std::vector<std::byte> elf = ElfBuilder(code).Build();
  elf.resize(kCodeOffset + code.size() + 2);
  elf[kCodeOffset + code.size()] = std::byte{0xe4};  // in al, 0x60
  elf[kCodeOffset + code.size() + 1] = std::byte{0x60};
  const ValidationReport report = Check(elf);
  CHECK(report.accepted());
  REQUIRE(report.data_regions.size() == 1);
  CHECK(report.data_regions[0].vaddr == kCodeVaddr + code.size());
  CHECK(report.data_regions[0].file_offset == kCodeOffset + code.size());
  CHECK(report.data_regions[0].size == 2);
  CHECK(report.data_regions[0].outside_segment);
}

TEST_CASE("a writable and executable segment is rejected", "[sandbox]") {
  const ValidationReport report = Check(ElfBuilder(kExit).CodeFlags(PF_R | PF_W | PF_X).Build());
  CHECK_FALSE(report.accepted());
  const Reason* r = Find(report, "writable_executable_segment");
  REQUIRE(r != nullptr);
  CHECK(r->vaddr == kCodeVaddr);
}

TEST_CASE("an executable stack is rejected, asked for or by default", "[sandbox]") {
  SECTION("PT_GNU_STACK with PF_X") {
    const ValidationReport report =
        Check(ElfBuilder(kExit).Stack(true, PF_R | PF_W | PF_X).Build());
    REQUIRE(Find(report, "executable_stack") != nullptr);
    CHECK_THAT(Find(report, "executable_stack")->message, Contains("PT_GNU_STACK"));
  }
  SECTION("no PT_GNU_STACK at all") {
    const ValidationReport report = Check(ElfBuilder(kExit).Stack(false).Build());
    REQUIRE(Find(report, "executable_stack") != nullptr);
    CHECK_THAT(Find(report, "executable_stack")->message, Contains("no PT_GNU_STACK"));
  }
}

TEST_CASE("a program asking for an interpreter or dynamic linking is rejected", "[sandbox]") {
  SECTION("PT_INTERP") {
    const ValidationReport report =
        Check(ElfBuilder(kExit).Interpreter("/lib64/ld-linux-x86-64.so.2").Build());
    REQUIRE(Find(report, "dynamic_program") != nullptr);
    CHECK_THAT(Find(report, "dynamic_program")->message, Contains("ld-linux-x86-64.so.2"));
  }
  SECTION("PT_DYNAMIC") {
    const ValidationReport report =
        Check(ElfBuilder(kExit).AddSegment(PT_DYNAMIC, PF_R, 0, Bytes(16, 0)).Build());
    REQUIRE(Find(report, "dynamic_program") != nullptr);
  }
}

TEST_CASE("segments sharing a memory page are rejected", "[sandbox]") {
  std::vector<std::byte> elf =
      ElfBuilder(kExit).AddSegment(PT_LOAD, PF_R | PF_W, 0x402000, Bytes(64, 0)).Build();
  // Move the data segment into the code segment's page (offset and address stay congruent).
  const auto eh = ReadStruct<Elf64_Ehdr>(elf, 0);
  auto ph = ReadStruct<Elf64_Phdr>(elf, eh.e_phoff + sizeof(Elf64_Phdr));
  ph.p_offset = kCodeOffset + 0x800;
  ph.p_vaddr = kCodeVaddr + 0x800;
  WriteStruct(elf, eh.e_phoff + sizeof(Elf64_Phdr), ph);
  const ValidationReport report = Check(elf);
  REQUIRE(Find(report, "shared_page") != nullptr);
}

// Regression: an executable segment with no file bytes starting on a page boundary gave an
// empty range (memcpy to a null pointer under UBSan, found by validator_fuzz).
TEST_CASE("an executable segment without file bytes is handled", "[sandbox]") {
  const ValidationReport report = Check(ElfBuilder(Concat(kExit, {0xf4}))
                                            .AddSegment(PT_LOAD, PF_R | PF_X, 0x403000, {}, 0x100)
                                            .Build());
  CHECK(report.accepted());
  CHECK(report.counts.executable_bytes == 4096);
}

// Regression: a misaligned executable segment inside the page rounding of the previous one
// must not be cut past its end.
TEST_CASE("a misaligned executable segment inside another's last page is handled", "[sandbox]") {
  std::vector<std::byte> elf =
      ElfBuilder(kExit).AddSegment(PT_LOAD, PF_R | PF_X, 0x402000, Bytes(16, 0x90)).Build();
  const auto eh = ReadStruct<Elf64_Ehdr>(elf, 0);
  auto code = ReadStruct<Elf64_Phdr>(elf, eh.e_phoff);
  code.p_filesz = code.p_memsz = 0x1010;  // rounds up to 0x403000
  WriteStruct(elf, eh.e_phoff, code);
  auto ph = ReadStruct<Elf64_Phdr>(elf, eh.e_phoff + sizeof(Elf64_Phdr));
  ph.p_vaddr = 0x402010;  // in the code segment's last page, not congruent with its offset
  ph.p_align = 1;
  WriteStruct(elf, eh.e_phoff + sizeof(Elf64_Phdr), ph);
  const ValidationReport report = Check(elf);
  CHECK_FALSE(report.accepted());
  CHECK(Find(report, "shared_page") != nullptr);
}

TEST_CASE("an entry point outside executable memory is rejected", "[sandbox]") {
  const ValidationReport report = Check(ElfBuilder(kExit).Entry(0x500000).Build());
  REQUIRE(Find(report, "entry_outside_code") != nullptr);
}

TEST_CASE("object files and core dumps are not executables", "[sandbox]") {
  std::vector<std::byte> elf = ElfBuilder(kExit).Build();
  auto eh = ReadStruct<Elf64_Ehdr>(elf, 0);
  eh.e_type = ET_REL;
  WriteStruct(elf, 0, eh);
  REQUIRE(Find(Check(elf), "not_executable") != nullptr);
}

TEST_CASE("a malformed file is a rejected report, not a validator error", "[sandbox]") {
  std::vector<std::byte> elf = ElfBuilder(kExit).Build();
  elf.resize(100);
  const ValidationReport report = Check(elf);
  CHECK_FALSE(report.accepted());
  REQUIRE(report.reasons.size() == 1);
  CHECK(report.reasons[0].code == "malformed_elf");
}

TEST_CASE("every reason is counted even when the list is capped", "[sandbox]") {
  const Bytes code = Concat(Bytes(50, 0xfa), kExit);  // fifty cli
  ValidatorOptions options;
  options.max_listed_reasons = 5;
  const ValidationReport report = Check(ElfBuilder(code).Build(), options);
  CHECK(report.reasons.size() == 5);
  CHECK(report.reasons_total == 50);
  CHECK(report.reasons[0].vaddr == kCodeVaddr);  // listed in address order
  CHECK(report.reasons[4].vaddr == kCodeVaddr + 4);
}

TEST_CASE("every syscall site is counted even when the list is capped", "[sandbox]") {
  Bytes code;
  for (int i = 0; i < 10; ++i) code.insert(code.end(), {0x0f, 0x05});  // syscall
  code.push_back(0xf4);                                                // hlt
  ValidatorOptions options;
  options.max_listed_syscall_sites = 3;
  const ValidationReport report = Check(ElfBuilder(code).Build(), options);
  CHECK(report.accepted());
  CHECK(report.syscall_sites.size() == 3);
  CHECK(report.counts.syscall_sites == 10);
  CHECK_THAT(ReportToJson(report), Contains("\"syscall_sites_truncated\": true"));
}

TEST_CASE("a symbol table built to make the sweeps quadratic is refused, not ground through",
          "[sandbox]") {
  // A thousand sized symbols over the same 4000 one-byte nops.
  ElfBuilder builder(Concat(Bytes(4000, 0x90), {0xf4}));
  for (int i = 0; i < 1000; ++i) {
    std::string name = "f";
    name += std::to_string(i);
    builder.Symbol(name, i, 4000 - i);
  }
  const ValidationReport report = Check(builder.Build());
  CHECK_FALSE(report.accepted());
  const Reason* r = Find(report, "analysis_budget");
  REQUIRE(r != nullptr);
  CHECK_THAT(r->message, Contains("too costly"));
}

TEST_CASE("a report survives the JSON round trip", "[sandbox]") {
  const Bytes code = Concat(Concat({0xfa}, kExit), {0xc3, 0xe4, 0x60});
  const ValidationReport report =
      Check(ElfBuilder(code).Symbol("_start", 0, 0).Symbol("f", 0, 1).Build());
  Result<ValidationReport> back = ReportFromJson(ReportToJson(report));
  REQUIRE(back.ok());
  CHECK(back->verdict == report.verdict);
  CHECK(back->sha256 == report.sha256);
  CHECK(back->reasons_total == report.reasons_total);
  REQUIRE(back->reasons.size() == report.reasons.size());
  CHECK(back->reasons[0].vaddr == report.reasons[0].vaddr);
  CHECK(back->reasons[0].instruction == report.reasons[0].instruction);
  CHECK(back->syscall_sites.size() == report.syscall_sites.size());
  CHECK(back->data_regions.size() == report.data_regions.size());
  CHECK(back->counts.decoded_bytes == report.counts.decoded_bytes);
  CHECK(ReportToJson(*back) == ReportToJson(report));

  CHECK_FALSE(ReportFromJson("not json").ok());
  CHECK_FALSE(ReportFromJson("{\"verdict\": \"accepted\"}").ok());
}

TEST_CASE("the instruction policy is printable as one table with reasons", "[sandbox]") {
  const std::string policy = DescribeInstructionPolicy();
  CHECK_THAT(policy, Contains("hlt"));
  CHECK_THAT(policy, Contains("rdtsc"));
  CHECK_THAT(policy, Contains("syscall"));
  CHECK_THAT(policy, Contains("lgdt"));
  CHECK_THAT(policy, Contains("DENY"));
  CHECK_THAT(policy, Contains("category SYSTEM"));
}

}  // namespace
}  // namespace zerofarm::sandbox
