// The validator on programs built by the system toolchain at test time (gcc, GNU as/ld, static
// glibc): what the sandbox meets in practice.
#include <elf.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <string>

#include "run_command.h"
#include "test_programs.h"
#include "zerofarm/base/unique_fd.h"
#include "zerofarm/sandbox/elf_reader.h"
#include "zerofarm/sandbox/sealed_program.h"
#include "zerofarm/sandbox/validator.h"

namespace zerofarm::sandbox {
namespace {

using Catch::Matchers::Contains;
using sandbox_test::Compile;
using sandbox_test::HaveGcc;
using sandbox_test::ReadFile;
using sandbox_test::Strip;
using sandbox_test::TempDir;

// A program of a few instructions: the page-rounding bytes the kernel maps executable after
// its code (or the ELF headers before it) are most of its executable memory, so the share of
// unreached bytes is not limited for it.
ValidatorOptions TinyProgram() {
  ValidatorOptions options;
  options.max_data_fraction = 1.0;
  return options;
}

// Static, no libc: _start does the hostile thing, then exits.
constexpr const char* kNoLibc = "-static -nostdlib -O1 -fno-pie -no-pie -Wl,-z,noexecstack";

std::string StartWith(const std::string& asm_body) {
  return "void _start(void) {\n"
         "  __asm__ volatile(\"" +
         asm_body +
         "\" ::: \"memory\", \"rax\", \"rdx\");\n"
         "  __asm__ volatile(\"mov $60, %eax; xor %edi, %edi; syscall\");\n"
         "  __builtin_unreachable();\n"
         "}\n";
}

ValidationReport ValidateFile(const std::filesystem::path& path,
                              const ValidatorOptions& options = {}) {
  const std::vector<std::byte> bytes = ReadFile(path);
  Result<ValidationReport> report = Validate(bytes, options);
  REQUIRE(report.ok());
  return std::move(report).value();
}

const Reason* Find(const ValidationReport& report, const std::string& code) {
  for (const Reason& r : report.reasons) {
    if (r.code == code) return &r;
  }
  return nullptr;
}

#define REQUIRE_GCC()                                                   \
  do {                                                                  \
    if (!HaveGcc()) {                                                   \
      WARN("gcc is not available; skipping a toolchain-built program"); \
      return;                                                           \
    }                                                                   \
  } while (0)

TEST_CASE("a normal dynamically linked gcc program is rejected as dynamic", "[sandbox]") {
  REQUIRE_GCC();
  TempDir dir;
  std::string log;
  const auto program =
      Compile(dir, "hello.c", "#include <stdio.h>\nint main(void) { puts(\"hi\"); return 0; }\n",
              "-O1", &log);
  REQUIRE(program.has_value());
  INFO(log);
  const ValidationReport report = ValidateFile(*program);
  CHECK_FALSE(report.accepted());
  const Reason* r = Find(report, "dynamic_program");
  REQUIRE(r != nullptr);
  CHECK_THAT(r->message, Contains("ld-linux-x86-64.so.2"));
}

TEST_CASE("a static glibc hello world is accepted with its syscall sites, hlt and rdtsc",
          "[sandbox]") {
  REQUIRE_GCC();
  TempDir dir;
  std::string log;
  const auto program = Compile(dir, "hello.c",
                               "#include <stdio.h>\n#include <x86intrin.h>\n"
                               "int main(void) {\n"
                               "  unsigned long long t = __rdtsc();\n"
                               "  printf(\"hello from a static program %d\\n\", (int)(t & 0));\n"
                               "  return 0;\n"
                               "}\n",
                               "-static -O2", &log);
  INFO(log);
  if (!program) {
    WARN("static linking failed (is libc6-dev's libc.a installed?): " << log);
    return;
  }
  const std::vector<std::byte> bytes = ReadFile(*program);
  Result<ValidationReport> validated = Validate(bytes);
  REQUIRE(validated.ok());
  const ValidationReport& report = *validated;
  INFO(ReportToJson(report).substr(0, 20000));
  CHECK(report.accepted());
  CHECK(report.reasons_total == 0);
  // glibc's _start and abort end with hlt; the program reads the TSC itself.
  CHECK(report.noted_instructions.count("hlt") == 1);
  CHECK(report.noted_instructions.count("rdtsc") == 1);
  // Every syscall site is listed with its address, file offset and function.
  REQUIRE(report.syscall_sites.size() > 10);
  CHECK(report.syscall_sites.size() == report.counts.syscall_sites);
  bool in_write = false;
  for (const CodeSite& site : report.syscall_sites) {
    CHECK(site.file_offset.has_value());
    if (site.symbol.rfind("__libc_write", 0) == 0 || site.symbol.rfind("write", 0) == 0) {
      in_write = true;
    }
  }
  CHECK(in_write);
  // Most code is decoded through sized symbols; every executable byte is accounted for.
  CHECK(report.counts.sized_functions > 500);
  CHECK(report.counts.by_symbol_bytes > report.counts.traversal_bytes);
  CHECK(report.counts.executable_bytes == report.counts.decoded_bytes +
                                              report.counts.padding_bytes +
                                              report.counts.data_region_bytes);

  SECTION("and the same bytes run from the sealed memfd the validator read") {
    Result<SealedProgram> sealed = LoadProgram(program->string());
    REQUIRE(sealed.ok());
    Result<ValidationReport> again = Validate(sealed->bytes());
    REQUIRE(again.ok());
    CHECK(again->accepted());
    CHECK(again->sha256 == report.sha256);

    Result<Pipe> pipe = MakePipe();
    REQUIRE(pipe.ok());
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
      ::dup2(pipe->write.get(), STDOUT_FILENO);
      char name[] = "hello";
      char* argv[] = {name, nullptr};
      char* envp[] = {nullptr};
      ::fexecve(sealed->fd(), argv, envp);
      ::_exit(127);
    }
    pipe->write.Close();
    std::string out;
    char buf[256];
    for (ssize_t n; (n = ::read(pipe->read.get(), buf, sizeof buf)) > 0;) {
      out.append(buf, static_cast<size_t>(n));
    }
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    CHECK(out == "hello from a static program 0\n");
  }
}

struct HostileAsm {
  const char* name;
  const char* body;  // GNU as, AT&T syntax, inside a C string
  const char* text;  // expected in the Intel-syntax instruction text
};

TEST_CASE("toolchain-built programs with forbidden instructions are rejected before they run",
          "[sandbox]") {
  REQUIRE_GCC();
  const std::vector<HostileAsm> cases = {
      {"in", "in %%dx, %%al", "in al, dx"},
      {"out", "out %%al, %%dx", "out dx, al"},
      {"cli", "cli", "cli"},
      {"lgdt", "lgdt (%%rax)", "lgdt"},
      {"far jmp", "rex.W ljmp *(%%rax)", "jmp far"},
      {"far call", "lcall *(%%rax)", "call far"},
      {"int 0x80", "int $0x80", "int 0x80"},
      {"sysenter", "sysenter", "sysenter"},
      {"mov to a segment register", "mov %%ax, %%ds", "mov ds, ax"},
  };
  TempDir dir;
  for (const HostileAsm& c : cases) {
    DYNAMIC_SECTION(c.name) {
      std::string log;
      const auto program = Compile(dir, "hostile.c", StartWith(c.body), kNoLibc, &log);
      INFO(log);
      REQUIRE(program.has_value());
      const ValidationReport report = ValidateFile(*program);
      INFO(ReportToJson(report));
      CHECK_FALSE(report.accepted());
      const Reason* r = Find(report, "forbidden_instruction");
      REQUIRE(r != nullptr);
      CHECK_THAT(r->instruction, Contains(c.text));
      CHECK_THAT(r->symbol, Contains("_start"));
      CHECK(r->file_offset.has_value());
    }
  }
}

TEST_CASE("a data table after ret in a hand-written assembly function is reported as data",
          "[sandbox]") {
  REQUIRE_GCC();
  // _start has no .size, like most hand-written assembly; its table decodes as in, cli, lgdt.
  const char* source =
      "  .text\n"
      "  .globl _start\n"
      "  .type _start, @function\n"
      "_start:\n"
      "  lea table(%rip), %rsi\n"
      "  movzbl (%rsi), %edi\n"
      "  mov $60, %eax\n"
      "  syscall\n"
      "  ret\n"
      "table:\n"
      "  .byte 0xe4, 0x60, 0xfa, 0x0f, 0x01, 0x10, 0x17, 0x2a\n"
      "  .section .note.GNU-stack,\"\",@progbits\n";
  TempDir dir;
  std::string log;
  const auto program = Compile(dir, "start.S", source, kNoLibc, &log);
  INFO(log);
  REQUIRE(program.has_value());
  const ValidationReport report = ValidateFile(*program, TinyProgram());
  INFO(ReportToJson(report));
  CHECK(report.accepted());
  CHECK(report.counts.by_symbol_bytes == 0);
  CHECK(report.counts.traversal_bytes > 0);
  // The table, and after the segment the rest of its page (the symbol table that follows
  // .text in the file), which the kernel maps executable too.
  // `table` is a local label too, but the line from it runs into 0x17 (pop ss, undefined in
  // 64-bit mode), so it stays data.
  CHECK(report.counts.label_data >= 1);
  REQUIRE(report.data_regions.size() >= 1);
  CHECK(report.data_regions[0].size == 8);
  CHECK(report.data_regions[0].symbol == "table");
  CHECK(report.data_regions[0].section == ".text");
  CHECK_FALSE(report.data_regions[0].outside_segment);
  for (size_t i = 1; i < report.data_regions.size(); ++i) {
    CHECK(report.data_regions[i].outside_segment);
  }
  REQUIRE(report.syscall_sites.size() == 1);
}

// Like dav1d's hand-written assembly: the cases are reached only through `jmp *%rax` and a
// table of offsets in .rodata; nothing but their local labels says they are code.
std::string JumpTableProgram(const std::string& case1_body) {
  return "  .text\n"
         "  .globl _start\n"
         "  .type _start, @function\n"
         "_start:\n"
         "  lea table(%rip), %rsi\n"
         "  mov (%rsp), %rdi\n"  // argc: 1 -> case0
         "  and $1, %edi\n"
         "  xor $1, %edi\n"
         "  movslq (%rsi,%rdi,4), %rax\n"
         "  add %rsi, %rax\n"
         "  jmp *%rax\n"
         "case0:\n"
         "  mov $60, %eax\n"
         "  mov $3, %edi\n"
         "  syscall\n"
         "  hlt\n"
         "case1:\n" +
         case1_body +
         "  mov $60, %eax\n"
         "  xor %edi, %edi\n"
         "  syscall\n"
         "  hlt\n"
         "  .section .rodata\n"
         "  .balign 4\n"
         "table:\n"
         "  .long case0 - table\n"
         "  .long case1 - table\n"
         "  .section .note.GNU-stack,\"\",@progbits\n";
}

TEST_CASE("code reached only through a jump table behind local labels is decoded as code",
          "[sandbox]") {
  REQUIRE_GCC();
  TempDir dir;
  std::string log;
  SECTION("and accepted when it is clean") {
    const auto program = Compile(dir, "jump.S", JumpTableProgram("  rdtsc\n"), kNoLibc, &log);
    INFO(log);
    REQUIRE(program.has_value());
    const ValidationReport report = ValidateFile(*program, TinyProgram());
    INFO(ReportToJson(report));
    CHECK(report.accepted());
    CHECK(report.counts.label_seeds == 2);
    CHECK(report.noted_instructions.count("rdtsc") == 1);
    REQUIRE(report.syscall_sites.size() == 2);
    CHECK(report.syscall_sites[0].symbol.rfind("case0+", 0) == 0);
    CHECK(report.syscall_sites[1].symbol.rfind("case1+", 0) == 0);
    for (const DataRegion& region : report.data_regions) {
      CHECK(region.section != ".text");  // only page-rounding bytes and headers are left
    }
    CHECK(report.counts.executable_bytes == report.counts.decoded_bytes +
                                                report.counts.padding_bytes +
                                                report.counts.data_region_bytes);
    // It runs: argc is 1, so the table sends it to case0, which exits with 3.
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
      char name[] = "jump";
      char* argv[] = {name, nullptr};
      char* envp[] = {nullptr};
      ::execve(program->c_str(), argv, envp);
      ::_exit(127);
    }
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 3);
  }
  SECTION("and rejected when a case holds a forbidden instruction") {
    const auto program = Compile(dir, "jump.S", JumpTableProgram("  cli\n"), kNoLibc, &log);
    INFO(log);
    REQUIRE(program.has_value());
    const ValidationReport report = ValidateFile(*program, TinyProgram());
    INFO(ReportToJson(report));
    CHECK_FALSE(report.accepted());
    const Reason* r = Find(report, "forbidden_instruction");
    REQUIRE(r != nullptr);
    CHECK(r->symbol == "case1");
    CHECK_THAT(r->instruction, Contains("cli"));
  }
}

TEST_CASE("a stripped static program validates from its call-frame records and code pointers",
          "[sandbox]") {
  REQUIRE_GCC();
  TempDir dir;
  std::string log;
  const auto program = Compile(dir, "hello.c",
                               "#include <stdio.h>\n"
                               "#include <string.h>\n"
                               "int main(int argc, char** argv) {\n"
                               "  switch (argc > 1 ? strlen(argv[1]) : 0) {\n"
                               "    case 0: puts(\"none\"); break;\n"
                               "    case 1: puts(\"one\"); break;\n"
                               "    case 2: puts(\"two\"); break;\n"
                               "    case 3: puts(\"three\"); break;\n"
                               "    case 5: puts(\"five\"); break;\n"
                               "    case 8: puts(\"eight\"); break;\n"
                               "    default: puts(\"many\");\n"
                               "  }\n"
                               "  return 0;\n"
                               "}\n",
                               "-static -O2", &log);
  INFO(log);
  if (!program) {
    WARN("static linking failed (is libc6-dev's libc.a installed?): " << log);
    return;
  }
  const ValidationReport full = ValidateFile(*program);
  CHECK(full.accepted());
  if (!Strip(*program, &log)) {
    WARN("strip is not available; skipping: " << log);
    return;
  }
  const ValidationReport report = ValidateFile(*program);
  INFO(ReportToJson(report).substr(0, 20000));
  // No symbols: the function starts come from .eh_frame, switch targets from jump tables.
  CHECK(report.counts.sized_functions == 0);
  CHECK(report.accepted());
  CHECK(report.counts.data_region_bytes * 10 <= report.counts.executable_bytes);
  CHECK(report.counts.traversal_seeds > 100);

  SECTION("without its call-frame records most of it is unchecked and it is refused") {
    auto r = zerofarm::test::RunCommand(
        {"objcopy", "--remove-section=.eh_frame", program->string()}, std::chrono::seconds(60));
    if (!r.succeeded()) {
      WARN("objcopy is not available; skipping: " << r.err);
      return;
    }
    const ValidationReport bare = ValidateFile(*program);
    INFO(ReportToJson(bare).substr(0, 20000));
    CHECK_FALSE(bare.accepted());
    const Reason* why = Find(bare, "too_much_unverified_code");
    REQUIRE(why != nullptr);
    CHECK_THAT(why->message, Contains("stripped"));
  }
}

TEST_CASE("Debian's stripped busybox-static validates", "[sandbox]") {
  const std::filesystem::path busybox = "/bin/busybox";
  std::error_code ec;
  if (!std::filesystem::exists(busybox, ec)) {
    WARN("busybox-static is not installed (scripts/setup.sh installs it); skipping");
    return;
  }
  const ValidationReport report = ValidateFile(busybox);
  INFO(ReportToJson(report).substr(0, 20000));
  if (Find(report, "dynamic_program")) {
    WARN("/bin/busybox is not the static build; skipping");
    return;
  }
  CHECK(report.counts.sized_functions == 0);
  CHECK(report.accepted());
  CHECK(report.counts.data_region_bytes * 10 <= report.counts.executable_bytes);
}

TEST_CASE("ELF headers mapped executable by -z noseparate-code are reported as data", "[sandbox]") {
  REQUIRE_GCC();
  TempDir dir;
  std::string log;
  const auto program = Compile(dir, "compact.c", StartWith("rdtsc"),
                               std::string(kNoLibc) + " -Wl,-z,noseparate-code", &log);
  INFO(log);
  REQUIRE(program.has_value());
  const ValidationReport report = ValidateFile(*program, TinyProgram());
  INFO(ReportToJson(report));
  CHECK(report.accepted());
  REQUIRE_FALSE(report.data_regions.empty());
  CHECK(report.data_regions[0].file_offset == 0u);
  CHECK(report.data_regions[0].section == "(ELF headers)");
}

TEST_CASE("linker-made executable stacks and writable text are rejected", "[sandbox]") {
  REQUIRE_GCC();
  TempDir dir;
  const std::string exit_only = StartWith("nop");
  SECTION("-z execstack") {
    std::string log;
    const auto program =
        Compile(dir, "stack.c", exit_only, "-static -nostdlib -O1 -no-pie -Wl,-z,execstack", &log);
    INFO(log);
    REQUIRE(program.has_value());
    const ValidationReport report = ValidateFile(*program);
    REQUIRE(Find(report, "executable_stack") != nullptr);
  }
  SECTION("--omagic (text and data in one RWX segment)") {
    std::string log;
    const auto program = Compile(dir, "omagic.c", exit_only,
                                 "-static -nostdlib -O1 -no-pie -Wl,-z,noexecstack -Wl,-N", &log);
    INFO(log);
    REQUIRE(program.has_value());
    const ValidationReport report = ValidateFile(*program);
    INFO(ReportToJson(report));
    REQUIRE(Find(report, "writable_executable_segment") != nullptr);
  }
}

}  // namespace
}  // namespace zerofarm::sandbox
