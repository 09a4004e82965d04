// zerofarm sandbox run: validate a program (through the verdict cache), run it in the sandbox
// with the given channels, and print the run report as JSON.
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "commands.h"
#include "flags.h"
#include "zerofarm/sandbox/host_layers.h"
#include "zerofarm/sandbox/runner.h"
#include "zerofarm/sandbox/sealed_program.h"
#include "zerofarm/sandbox/validator.h"
#include "zerofarm/sandbox/verdict_cache.h"

namespace zerofarm::cli {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitProgramFailed = 1;
constexpr int kExitUsage = 2;
constexpr int kExitRejected = 3;

// Channels get these quotas unless --quota says otherwise.
constexpr uint64_t kDefaultQuota = uint64_t{1} << 30;
constexpr uint64_t kStdQuota = uint64_t{16} << 20;  // stdout and stderr, relayed to stderr

constexpr const char* kUsage =
    "usage: zerofarm sandbox run [OPTIONS] PROGRAM [ARGS]\n"
    "       zerofarm sandbox policy      (print the seccomp policy table)\n"
    "\n"
    "Validates PROGRAM, then runs exactly the validated bytes in the sandbox: fresh user,\n"
    "mount, PID, network, IPC and UTS namespaces, an empty root, only its channels open,\n"
    "the seccomp allow-list, rlimits and a memory limit. Prints the run report as JSON.\n"
    "\n"
    "  --memory SIZE      memory limit (default 512M; K, M, G suffixes)\n"
    "  --timeout TIME     wall-clock limit (default 10s; ms, s, m suffixes)\n"
    "  --cpu SECONDS      CPU-time limit (default 60)\n"
    "  --in NAME=FILE     an input channel read from FILE (repeatable)\n"
    "  --out NAME=FILE    an output channel written to FILE (repeatable)\n"
    "  --quota SIZE       byte quota of each --in/--out channel (default 1G)\n"
    "  --cache DIR        verdict cache directory (default: memory only)\n"
    "  -h, --help         show this help\n"
    "\n"
    "--in stdin=FILE, --out stdout=FILE and --out stderr=FILE bind the standard descriptors\n"
    "0, 1 and 2 (by default stdin is empty, stdout and stderr go to this command's stderr);\n"
    "other channels are descriptors 3, 4, ... in the order given. The program finds the list in\n"
    "ZEROFARM_CHANNELS (\"in:0:stdin,out:1:stdout,out:2:stderr,in:3:NAME,...\"), the only\n"
    "variable of its environment.\n"
    "\n"
    "Exit status: 0 when the program exited 0, 1 when it did not, 2 usage or runner error,\n"
    "3 when the validator rejected the program.\n";

int Usage(const std::string& error) {
  std::fprintf(stderr, "zerofarm sandbox: %s\n(see zerofarm sandbox run --help)\n", error.c_str());
  return kExitUsage;
}

}  // namespace

int SandboxCommand(int argc, char** argv) {
  // argv[0] = "sandbox", argv[1] = "run".
  if (argc < 2) return Usage("missing subcommand (run)");
  const std::string sub = argv[1];
  if (sub == "--help" || sub == "-h") {
    std::fputs(kUsage, stdout);
    return kExitOk;
  }
  if (sub == "policy") {
    std::fputs(sandbox::DescribeSyscallPolicy().c_str(), stdout);
    return kExitOk;
  }
  if (sub != "run") return Usage("unknown subcommand '" + sub + "'");
  // The host probe warns about missing isolation layers before anything runs.
  (void)sandbox::ProbeHostLayers();

  // Options end at PROGRAM: everything after it belongs to the program.
  int program_at = 2;
  while (program_at < argc) {
    const std::string a = argv[program_at];
    if (a == "--") {
      ++program_at;
      break;
    }
    if (a.size() < 2 || a[0] != '-') break;
    const bool takes_value = a != "--help" && a != "-h" && a.find('=') == std::string::npos;
    program_at += takes_value ? 2 : 1;
  }
  std::vector<char*> option_args(argv + 1, argv + std::min(program_at, argc));
  Flags flags(static_cast<int>(option_args.size()), option_args.data());
  if (!flags.error().empty()) return Usage(flags.error());
  if (flags.Has("help") || flags.Has("h")) {
    std::fputs(kUsage, stdout);
    return kExitOk;
  }
  sandbox::SandboxLimits limits;
  if (auto v = flags.Take("memory")) {
    auto size = ParseByteSize(*v);
    if (!size || *size == 0) return Usage("bad --memory '" + *v + "'");
    limits.memory_bytes = *size;
  }
  if (auto v = flags.Take("timeout")) {
    auto d = ParseDuration(*v);
    if (!d || d->count() == 0) return Usage("bad --timeout '" + *v + "'");
    limits.wall_timeout = *d;
  }
  if (auto v = flags.Take("cpu")) {
    auto d = ParseByteSize(*v);
    if (!d) return Usage("bad --cpu '" + *v + "'");
    limits.cpu_seconds = *d;
  }
  uint64_t quota = kDefaultQuota;
  if (auto v = flags.Take("quota")) {
    auto size = ParseByteSize(*v);
    if (!size) return Usage("bad --quota '" + *v + "'");
    quota = *size;
  }
  const std::string cache_dir = flags.Take("cache").value_or("");
  const std::vector<std::string> ins = flags.TakeAll("in");
  const std::vector<std::string> outs = flags.TakeAll("out");
  if (!flags.Unknown().empty()) return Usage("unknown option " + flags.Unknown().front());
  if (!flags.Positional().empty()) return Usage("unexpected '" + flags.Positional().front() + "'");
  if (program_at >= argc) return Usage("no PROGRAM given");

  sandbox::SandboxSpec spec;
  spec.limits = limits;
  spec.channels = {
      {"stdin", 0, sandbox::Direction::kIn, sandbox::ChannelEnd::Memory(), 0},
      {"stdout", 1, sandbox::Direction::kOut, sandbox::ChannelEnd::Descriptor(STDERR_FILENO),
       kStdQuota},
      {"stderr", 2, sandbox::Direction::kOut, sandbox::ChannelEnd::Descriptor(STDERR_FILENO),
       kStdQuota},
  };
  int next_fd = 3;
  // `stdin`, `stdout` and `stderr` rebind descriptors 0, 1 and 2 (in the direction each has);
  // any other name is the next descriptor from 3.
  std::string bad;
  auto add = [&](const std::string& arg, sandbox::Direction dir) -> bool {
    const size_t eq = arg.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == arg.size()) return false;
    const std::string name = arg.substr(0, eq);
    sandbox::ChannelEnd end = sandbox::ChannelEnd::File(arg.substr(eq + 1));
    for (auto& c : spec.channels) {
      if (c.name != name) continue;
      if (c.target_fd > 2 || c.direction != dir) {
        bad = c.target_fd > 2 ? "channel '" + name + "' is named twice"
                              : "'" + name + "' is an " +
                                    (c.direction == sandbox::Direction::kIn ? "input (--in)"
                                                                            : "output (--out)");
        return false;
      }
      c.end = std::move(end);
      c.quota_bytes = quota;
      return true;
    }
    spec.channels.push_back({name, next_fd++, dir, std::move(end), quota});
    return true;
  };
  for (const std::string& in : ins) {
    if (!add(in, sandbox::Direction::kIn))
      return Usage("bad --in '" + in + "' (" + (bad.empty() ? "NAME=FILE" : bad) + ")");
  }
  for (const std::string& out : outs) {
    if (!add(out, sandbox::Direction::kOut))
      return Usage("bad --out '" + out + "' (" + (bad.empty() ? "NAME=FILE" : bad) + ")");
  }
  for (int i = program_at; i < argc; ++i) spec.argv.emplace_back(argv[i]);
  const std::string program_path = argv[program_at];

  Result<sandbox::SealedProgram> program = sandbox::LoadProgram(program_path);
  if (!program.ok()) {
    std::fprintf(stderr, "zerofarm sandbox: %s\n", program.status().ToString().c_str());
    return kExitUsage;
  }
  Result<std::unique_ptr<sandbox::VerdictCache>> cache =
      sandbox::VerdictCache::Open({cache_dir, 16});
  if (!cache.ok()) {
    std::fprintf(stderr, "zerofarm sandbox: verdict cache: %s\n",
                 cache.status().ToString().c_str());
    return kExitUsage;
  }
  Result<sandbox::ValidationReport> verdict = (*cache)->Validate(program->bytes());
  if (!verdict.ok()) {
    std::fprintf(stderr, "zerofarm sandbox: %s\n", verdict.status().ToString().c_str());
    return kExitUsage;
  }
  if (!verdict->accepted()) {
    std::fprintf(stderr, "zerofarm sandbox: %s: rejected by the validator\n", program_path.c_str());
    for (const sandbox::Reason& r : verdict->reasons) {
      std::fprintf(stderr, "  %s: %s\n", r.code.c_str(), r.message.c_str());
    }
    return kExitRejected;
  }
  spec.program = &*program;
  spec.verdict = &*verdict;
  Result<sandbox::RunReport> report = sandbox::RunSandboxed(spec);
  if (!report.ok()) {
    std::fprintf(stderr, "zerofarm sandbox: %s\n", report.status().ToString().c_str());
    return kExitUsage;
  }
  std::printf("%s\n", sandbox::RunReportToJson(*report).c_str());
  std::fflush(stdout);
  return report->status == "exited" && report->exit_code == 0 ? kExitOk : kExitProgramFailed;
}

}  // namespace zerofarm::cli
