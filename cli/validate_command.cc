// zerofarm validate: the pre-execution validator's verdict and report for one program.
#include <cinttypes>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>

#include "commands.h"
#include "zerofarm/sandbox/sealed_program.h"
#include "zerofarm/sandbox/validator.h"
#include "zerofarm/sandbox/verdict_cache.h"

namespace zerofarm::cli {
namespace {

constexpr int kExitAccepted = 0;
constexpr int kExitRejected = 1;
constexpr int kExitUsage = 2;

// The human summary lists this many reasons and data regions; --json has the rest.
constexpr size_t kListedInSummary = 10;

constexpr const char* kUsage =
    "usage: zerofarm validate [--json] [--cache DIR] PROGRAM\n"
    "       zerofarm validate --policy\n"
    "\n"
    "Checks PROGRAM before the sandbox may run it: a static x86-64 ELF executable, no\n"
    "writable+executable memory, a non-executable stack, and no privileged or system\n"
    "instruction in any instruction stream the validator can find. Every syscall site is\n"
    "listed; executable bytes no instruction stream reaches are reported as data regions.\n"
    "\n"
    "  --json        print the full report as JSON (default: a summary)\n"
    "  --cache DIR   reuse and store verdicts in DIR, keyed by the program's SHA-256\n"
    "                (created mode 0700; must be writable by this user only)\n"
    "  --policy      print the instruction policy (each rule and why) and exit\n"
    "  -h, --help    show this help\n"
    "\n"
    "Exit status: 0 accepted, 1 rejected, 2 usage or I/O error.\n";

struct Args {
  bool json = false;
  bool policy = false;
  bool help = false;
  std::string cache_dir;
  std::string program;
};

// Returns an error message, or empty when the arguments are usable.
std::string ParseArgs(int argc, char** argv, Args* args) {
  bool options_done = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (!options_done && arg == "--") {
      options_done = true;
    } else if (!options_done && (arg == "-h" || arg == "--help")) {
      args->help = true;
    } else if (!options_done && arg == "--json") {
      args->json = true;
    } else if (!options_done && arg == "--policy") {
      args->policy = true;
    } else if (!options_done && arg == "--cache") {
      if (i + 1 >= argc || argv[i + 1][0] == '\0') return "--cache needs a directory";
      args->cache_dir = argv[++i];
    } else if (!options_done && arg.rfind("--cache=", 0) == 0) {
      if (arg.size() == 8) return "--cache needs a directory";
      args->cache_dir = std::string(arg.substr(8));
    } else if (!options_done && arg.size() > 1 && arg[0] == '-') {
      return "unknown option " + std::string(arg);
    } else if (args->program.empty()) {
      args->program = std::string(arg);
    } else {
      return "only one PROGRAM may be given";
    }
  }
  if (!args->help && !args->policy && args->program.empty()) return "no PROGRAM given";
  return {};
}

std::string Hex(uint64_t v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%" PRIx64, v);
  return buf;
}

double Percent(uint64_t part, uint64_t whole) {
  return whole == 0 ? 0.0 : 100.0 * static_cast<double>(part) / static_cast<double>(whole);
}

void PrintSummary(const std::string& path, const sandbox::ValidationReport& r) {
  const sandbox::ValidationCounts& c = r.counts;
  if (r.accepted()) {
    std::printf("%s: accepted\n", path.c_str());
  } else {
    std::printf("%s: REJECTED (%" PRIu64 " reason%s)\n", path.c_str(), r.reasons_total,
                r.reasons_total == 1 ? "" : "s");
  }
  std::printf("  sha256        %s\n", r.sha256.c_str());
  for (size_t i = 0; i < r.reasons.size() && i < kListedInSummary; ++i) {
    const sandbox::Reason& reason = r.reasons[i];
    std::printf("  reason        %s: %s", reason.code.c_str(), reason.message.c_str());
    if (reason.file_offset) std::printf(" [file offset %s]", Hex(*reason.file_offset).c_str());
    std::printf("\n");
  }
  if (r.reasons_total > kListedInSummary) {
    std::printf("  ...           %" PRIu64 " more reasons (see --json)\n",
                r.reasons_total - kListedInSummary);
  }
  std::printf("  executable    %" PRIu64 " bytes: %" PRIu64
              " decoded (%.1f%% by sized symbols, "
              "%.1f%% by traversal), %" PRIu64 " padding, %" PRIu64 " in %" PRIu64
              " data regions\n",
              c.executable_bytes, c.decoded_bytes, Percent(c.by_symbol_bytes, c.executable_bytes),
              Percent(c.traversal_bytes, c.executable_bytes), c.padding_bytes, c.data_region_bytes,
              c.data_regions);
  std::printf("  instructions  %" PRIu64 " in %" PRIu64 " sized functions; %" PRIu64
              " syscall sites\n",
              c.instructions, c.sized_functions, c.syscall_sites);
  std::printf("  traversal     %" PRIu64 " seeds, %" PRIu64
              " local labels and code pointers followed as code, %" PRIu64 " left as data, %" PRIu64
              " stops at undecodable bytes\n",
              c.traversal_seeds, c.label_seeds, c.label_data, c.traversal_stops);
  if (!r.noted_instructions.empty()) {
    std::printf("  allowed, noted");
    for (const auto& [mnemonic, count] : r.noted_instructions) {
      std::printf(" %s x%" PRIu64, mnemonic.c_str(), count);
    }
    std::printf("\n");
  }
  for (size_t i = 0; i < r.data_regions.size() && i < kListedInSummary; ++i) {
    const sandbox::DataRegion& d = r.data_regions[i];
    std::printf("  data region   %s, %" PRIu64 " bytes", Hex(d.vaddr).c_str(), d.size);
    if (d.file_offset) std::printf(" at file offset %s", Hex(*d.file_offset).c_str());
    if (!d.section.empty()) std::printf(" in %s", d.section.c_str());
    if (!d.symbol.empty()) std::printf(" (%s)", d.symbol.c_str());
    if (d.outside_segment) std::printf(" (page rounding past the segment)");
    std::printf("\n");
  }
  if (c.data_regions > kListedInSummary) {
    std::printf("  ...           %" PRIu64 " more data regions (see --json)\n",
                c.data_regions - kListedInSummary);
  }
  for (const std::string& note : r.notes) std::printf("  note          %s\n", note.c_str());
  std::printf("  time          %.1f ms (validation %.1f ms, cache: %s)\n", r.timing.total_ms,
              r.timing.validate_ms, r.timing.cache.c_str());
}

}  // namespace

int ValidateCommand(int argc, char** argv) {
  Args args;
  if (const std::string error = ParseArgs(argc, argv, &args); !error.empty()) {
    std::fprintf(stderr,
                 "zerofarm validate: %s\nusage: zerofarm validate [--json] [--cache DIR] "
                 "PROGRAM (see --help)\n",
                 error.c_str());
    return kExitUsage;
  }
  if (args.help) {
    std::fputs(kUsage, stdout);
    return kExitAccepted;
  }
  if (args.policy) {
    std::fputs(sandbox::DescribeInstructionPolicy().c_str(), stdout);
    return kExitAccepted;
  }

  // The validator reads the sealed copy, the same bytes a runner would execute.
  Result<sandbox::SealedProgram> program = sandbox::LoadProgram(args.program);
  if (!program.ok()) {
    std::fprintf(stderr, "zerofarm validate: %s\n", program.status().ToString().c_str());
    return kExitUsage;
  }
  Result<std::unique_ptr<sandbox::VerdictCache>> cache =
      sandbox::VerdictCache::Open({args.cache_dir, 1});
  if (!cache.ok()) {
    std::fprintf(stderr, "zerofarm validate: verdict cache: %s\n",
                 cache.status().ToString().c_str());
    return kExitUsage;
  }
  Result<sandbox::ValidationReport> report = (*cache)->Validate(program->bytes());
  if (!report.ok()) {
    std::fprintf(stderr, "zerofarm validate: %s\n", report.status().ToString().c_str());
    return kExitUsage;
  }
  if (args.json) {
    std::printf("%s\n", sandbox::ReportToJson(*report).c_str());
  } else {
    PrintSummary(args.program, *report);
  }
  std::fflush(stdout);
  return report->accepted() ? kExitAccepted : kExitRejected;
}

}  // namespace zerofarm::cli
