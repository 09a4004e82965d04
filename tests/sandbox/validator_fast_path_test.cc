// The validator's table-driven decoder against Zydis: instruction by instruction over every
// opcode, ModRM and SIB pattern it takes, and report by report over a corpus of programs (byte-
// built, hostile, random, compiled, and the static programs the build makes), where the fast
// path and the reference decoding must reach the same verdict and the same report.
#include <elf.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "elf_builder.h"
#include "test_programs.h"
#include "validate_internal.h"
#include "zerofarm/base/sha256.h"
#include "zerofarm/sandbox/elf_reader.h"
#include "zerofarm/sandbox/validator.h"

namespace zerofarm::sandbox {
namespace {

using sandbox_test::ElfBuilder;
using Bytes = std::vector<uint8_t>;

// A small deterministic generator, so that failures reproduce.
class Random {
 public:
  explicit Random(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    state_ = state_ * 6364136223846793005ull + 1442695040888963407ull;
    return state_ >> 33;
  }
  uint8_t Byte() { return static_cast<uint8_t>(Next()); }

 private:
  uint64_t state_;
};

TEST_CASE("the table-driven decoder agrees with Zydis on every opcode, ModRM and SIB it takes",
          "[sandbox][validator]") {
  // Every legacy prefix, in sequences of up to two (and the padding nops' longer ones), with
  // and without REX prefixes that set each of its bits.
  const Bytes legacy = {0x66, 0xF2, 0xF3, 0xF0, 0x2E, 0x3E, 0x26, 0x36, 0x64, 0x65, 0x67};
  std::vector<std::pair<Bytes, Bytes>> prefixes;  // legacy sequence, REX choices
  const Bytes all_rex = {0x00, 0x40, 0x41, 0x42, 0x44, 0x48, 0x4F};
  const Bytes few_rex = {0x00, 0x41, 0x48};
  prefixes.push_back({{}, all_rex});
  for (uint8_t a : legacy) {
    prefixes.push_back({{a}, all_rex});
    for (uint8_t b : legacy) prefixes.push_back({{a, b}, few_rex});
  }
  prefixes.push_back({{0x66, 0x66, 0x2E}, few_rex});
  prefixes.push_back({{0x66, 0x66, 0x66, 0x2E}, few_rex});
  prefixes.push_back({{0x66, 0x66, 0x66, 0x66, 0x2E}, few_rex});
  const Bytes sibs = {0x24, 0x05, 0x25, 0x65, 0xE5, 0x8C};

  Random random(1);
  uint64_t taken = 0;
  uint64_t mismatches = 0;
  uint8_t buffer[32];
  auto check = [&](const uint8_t* bytes, size_t size) {
    const DecoderComparison c = CompareDecoders({bytes, size});
    if (!c.fast) return;
    ++taken;
    if (!c.same && ++mismatches <= 20) FAIL_CHECK(DescribeDecoders({bytes, size}));
    // Cut short by one byte, it must not decode on the fast path.
    if (c.length > 0 && random.Next() % 64 == 0) {
      const DecoderComparison cut = CompareDecoders({bytes, c.length - 1u});
      if ((cut.fast || cut.zydis) && ++mismatches <= 20) {
        FAIL_CHECK("decodes when cut short: " + DescribeDecoders({bytes, c.length - 1u}));
      }
    }
  };
  for (const auto& [sequence, rexes] : prefixes) {
    for (uint8_t rex : rexes) {
      for (int map = 0; map < 2; ++map) {
        for (int opcode = 0; opcode < 256; ++opcode) {
          if (map == 0 && opcode == 0x0F) continue;
          for (int modrm = 0; modrm < 256; ++modrm) {
            const bool has_sib = (modrm >> 6) != 3 && (modrm & 7) == 4;
            for (size_t s = 0; s < (has_sib ? sibs.size() : 1); ++s) {
              size_t n = 0;
              for (uint8_t p : sequence) buffer[n++] = p;
              if (rex != 0) buffer[n++] = rex;
              if (map == 1) buffer[n++] = 0x0F;
              buffer[n++] = static_cast<uint8_t>(opcode);
              buffer[n++] = static_cast<uint8_t>(modrm);
              if (has_sib) buffer[n++] = sibs[s];
              while (n < sizeof buffer) buffer[n++] = random.Byte();
              check(buffer, sizeof buffer);
            }
          }
        }
      }
    }
  }
  // The two-byte VEX form: every payload (register extension, second source, length, implied
  // prefix), every opcode of the 0F map, every ModRM and the SIB patterns.
  for (int payload = 0; payload < 256; ++payload) {
    for (int opcode = 0; opcode < 256; ++opcode) {
      for (int modrm = 0; modrm < 256; ++modrm) {
        const bool has_sib = (modrm >> 6) != 3 && (modrm & 7) == 4;
        for (size_t s = 0; s < (has_sib ? sibs.size() : 1); ++s) {
          size_t n = 0;
          buffer[n++] = 0xC5;
          buffer[n++] = static_cast<uint8_t>(payload);
          buffer[n++] = static_cast<uint8_t>(opcode);
          buffer[n++] = static_cast<uint8_t>(modrm);
          if (has_sib) buffer[n++] = sibs[s];
          while (n < sizeof buffer) buffer[n++] = random.Byte();
          check(buffer, sizeof buffer);
        }
      }
    }
  }
  INFO(taken << " encodings taken by the fast path");
  CHECK(taken > 1000000);
  CHECK(mismatches == 0);
}

// The report without its timing, which differs from run to run.
std::string Comparable(ValidationReport report) {
  report.timing = {};
  return ReportToJson(report);
}

struct Program {
  std::string name;
  std::vector<std::byte> bytes;
};

// Every instruction a linear sweep of the executable sections finds: where the fast path takes
// one, it must give what Zydis gives. Returns how many the fast path took.
uint64_t CheckEveryInstruction(const Program& program, uint64_t* total) {
  Result<ElfImage> image = ParseElf(program.bytes);
  if (!image.ok()) return 0;
  uint64_t taken = 0;
  uint64_t mismatches = 0;
  for (const ElfSection& s : image->sections) {
    if ((s.flags & SHF_EXECINSTR) == 0 || s.type != SHT_PROGBITS) continue;
    if (s.offset > program.bytes.size() || s.size > program.bytes.size() - s.offset) continue;
    const auto* code = reinterpret_cast<const uint8_t*>(program.bytes.data() + s.offset);
    for (uint64_t off = 0; off < s.size;) {
      const std::span<const uint8_t> at(code + off, s.size - off);
      const DecoderComparison c = CompareDecoders(at);
      if (c.fast) {
        ++taken;
        if (!c.same && ++mismatches <= 20) {
          FAIL_CHECK(program.name + " at section offset " + std::to_string(off) + ": " +
                     DescribeDecoders(at));
        }
      }
      ++*total;
      off += c.zydis ? c.length : 1;
    }
  }
  return taken;
}

void AddFile(std::vector<Program>* corpus, const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    WARN(path.string() + " does not exist; left out of the corpus");
    return;
  }
  corpus->push_back({path.filename().string(), sandbox_test::ReadFile(path)});
}

std::vector<Program> Corpus() {
  std::vector<Program> corpus;
  // Programs written byte by byte: accepted, refused and broken ones.
  const Bytes exit_code = {0xb8, 0x3c, 0x00, 0x00, 0x00, 0x31, 0xff, 0x0f, 0x05};
  corpus.push_back({"minimal exit", ElfBuilder(exit_code).Build()});
  const Bytes privileged = {0xec, 0xfa, 0x0f, 0x01, 0x10, 0xff, 0x28, 0xcd, 0x80, 0x0f,
                            0x34, 0x8e, 0xd8, 0x0f, 0xa1, 0x48, 0xcf, 0xf4, 0x0f, 0x31,
                            0xcc, 0x0f, 0xa2, 0x0f, 0x0b, 0x0f, 0x05, 0xc3};
  corpus.push_back({"privileged instructions", ElfBuilder(privileged).Build()});
  corpus.push_back({"privileged instructions in a sized function",
                    ElfBuilder(privileged).Symbol("f", 0, privileged.size()).Build()});
  // Branches past a data table, a RIP-relative lea to a table, padding nops and endbr64.
  const Bytes branches = {0xf3, 0x0f, 0x1e, 0xfa, 0x48, 0x8d, 0x05, 0x20, 0x00, 0x00, 0x00,
                          0x74, 0x08, 0xe8, 0x0a, 0x00, 0x00, 0x00, 0xeb, 0x0c, 0xde, 0xad,
                          0xbe, 0xef, 0x66, 0x2e, 0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00,
                          0x00, 0x90, 0xc3, 0x0f, 0x0b, 0x66, 0x90, 0xc3, 0x00, 0x00, 0x00};
  corpus.push_back({"branches, data and padding", ElfBuilder(branches).Build()});
  corpus.push_back({"undecodable bytes in a sized function",
                    ElfBuilder({0x90, 0x0f, 0xff, 0xff, 0xc3}).Symbol("f", 0, 5).Build()});
  corpus.push_back({"writable code", ElfBuilder(exit_code).CodeFlags(7).Build()});
  corpus.push_back({"executable stack", ElfBuilder(exit_code).Stack(false).Build()});
  corpus.push_back(
      {"dynamic", ElfBuilder(exit_code).Interpreter("/lib64/ld-linux-x86-64.so.2").Build()});
  // Hostile programs of random bytes: as one sized function, with local labels and unsized
  // symbols scattered through them, and as bare code from the entry point; and random bytes
  // biased towards prefixes and the common opcodes, so that the fast path meets odd mixtures.
  Random random(7);
  const Bytes biased = {0x66, 0xF2, 0xF3, 0x2E, 0x3E, 0x64, 0x65, 0x48, 0x41, 0x0F, 0x0F,
                        0x89, 0x8B, 0x8D, 0xE8, 0xE9, 0xEB, 0x74, 0xFF, 0xC3, 0x90, 0xCC};
  for (int i = 0; i < 48; ++i) {
    Bytes code(4096 + random.Next() % 8192);
    for (uint8_t& b : code) {
      b = i % 2 == 0 ? random.Byte() : biased[random.Next() % biased.size()];
      if (i % 2 == 1 && random.Next() % 3 == 0) b = random.Byte();
    }
    ElfBuilder builder(code);
    if (i % 3 == 0) builder.Symbol("blob", 0, code.size());
    if (i % 3 == 1) {
      for (int k = 0; k < 16; ++k) {
        builder.Symbol(".L" + std::to_string(k), random.Next() % code.size(), 0, STT_NOTYPE);
        builder.Symbol("f" + std::to_string(k), random.Next() % code.size(), 0);
      }
    }
    corpus.push_back({"random " + std::to_string(i), builder.Build()});
  }
  // Compiled programs: a static glibc program, plain and stripped.
  if (sandbox_test::HaveGcc()) {
    static const sandbox_test::TempDir dir;
    std::string log;
    const auto hello =
        sandbox_test::Compile(dir, "hello.c",
                              "#include <stdio.h>\n#include <x86intrin.h>\n"
                              "int main(void) { printf(\"%llu\\n\", __rdtsc()); return 0; }\n",
                              "-static -O2", &log);
    if (hello) {
      AddFile(&corpus, *hello);
      if (sandbox_test::Strip(*hello, &log)) {
        corpus.push_back({"stripped hello", sandbox_test::ReadFile(*hello)});
      }
    } else {
      WARN("cannot compile the static hello world: " + log);
    }
  } else {
    WARN("gcc does not run here; compiled programs are left out of the corpus");
  }
  // The static programs of the build and the system.
  AddFile(&corpus, "/bin/busybox");
  if (const char* dir = std::getenv("ZEROFARM_PROGRAMS_DIR"); dir != nullptr && *dir != '\0') {
    for (const char* name : {"grep", "sqlite3"})
      AddFile(&corpus, std::filesystem::path(dir) / name);
  } else {
    WARN("ZEROFARM_PROGRAMS_DIR is unset (not run by ctest); grep and sqlite3 are left out");
  }
#ifdef ZF_WORKER_BIN
  AddFile(&corpus, ZF_WORKER_BIN);
#endif
  return corpus;
}

TEST_CASE(
    "the fast validator reaches the same verdict and report as the reference decoding on every "
    "program of the corpus",
    "[sandbox][validator]") {
  const std::vector<Program> corpus = Corpus();
  uint64_t accepted = 0;
  uint64_t taken = 0;
  uint64_t instructions = 0;
  for (const Program& program : corpus) {
    INFO(program.name);
    const std::string sha256 = Sha256Hex(program.bytes);
    Result<ValidationReport> fast = ValidateWithDigest(program.bytes, {}, sha256);
    Result<ValidationReport> reference =
        ValidateWithDigest(program.bytes, {}, sha256, DecodePath::kReference);
    REQUIRE(fast.ok());
    REQUIRE(reference.ok());
    CHECK(fast->verdict == reference->verdict);
    const std::string fast_json = Comparable(*fast);
    const std::string reference_json = Comparable(*reference);
    if (fast_json != reference_json) {
      // The first difference, with some context on either side.
      size_t at = 0;
      while (at < fast_json.size() && at < reference_json.size() &&
             fast_json[at] == reference_json[at]) {
        ++at;
      }
      const size_t from = at > 200 ? at - 200 : 0;
      FAIL_CHECK("the reports differ at byte " + std::to_string(at) +
                 "\n  fast:      " + fast_json.substr(from, 400) +
                 "\n  reference: " + reference_json.substr(from, 400));
    }
    accepted += fast->accepted() ? 1 : 0;
    taken += CheckEveryInstruction(program, &instructions);
  }
  // The corpus must hold both verdicts, and the fast path must carry most real instructions.
  CHECK(accepted > 0);
  CHECK(accepted < corpus.size());
  INFO(taken << " of " << instructions << " instructions taken by the fast path");
  CHECK(taken * 2 > instructions);
}

}  // namespace
}  // namespace zerofarm::sandbox
