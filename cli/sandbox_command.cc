// zerofarm sandbox run: validate a program (through the verdict cache), run it in the sandbox
// with the given channels, and print the run report as JSON.
#include <unistd.h>

#include <algorithm>
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

// What a checked `sandbox run` command line asks for.
struct RunOptions {
  sandbox::SandboxSpec spec;  // without program and verdict
  std::string program_path;
  std::string cache_dir;
};

// Options end at PROGRAM: everything after it belongs to the program. The index of PROGRAM in
// argv (argc when there is none).
int FindProgram(int argc, char** argv) {
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
  return program_at;
}

// Takes --memory, --timeout, --cpu and --quota; a usage error's text, or nullopt.
std::optional<std::string> TakeLimits(Flags& flags, sandbox::SandboxLimits* limits,
                                      uint64_t* quota) {
  if (auto v = flags.Take("memory")) {
    auto size = ParseByteSize(*v);
    if (!size || *size == 0) return "bad --memory '" + *v + "'";
    limits->memory_bytes = *size;
  }
  if (auto v = flags.Take("timeout")) {
    auto d = ParseDuration(*v);
    if (!d || d->count() == 0) return "bad --timeout '" + *v + "'";
    limits->wall_timeout = *d;
  }
  if (auto v = flags.Take("cpu")) {
    auto d = ParseByteSize(*v);
    if (!d) return "bad --cpu '" + *v + "'";
    limits->cpu_seconds = *d;
  }
  if (auto v = flags.Take("quota")) {
    auto size = ParseByteSize(*v);
    if (!size) return "bad --quota '" + *v + "'";
    *quota = *size;
  }
  return std::nullopt;
}

// The standard descriptors: stdin empty, stdout and stderr relayed to this command's stderr.
std::vector<sandbox::Channel> StandardChannels() {
  return {
      {"stdin", 0, sandbox::Direction::kIn, sandbox::ChannelEnd::Memory(), 0},
      {"stdout", 1, sandbox::Direction::kOut, sandbox::ChannelEnd::Descriptor(STDERR_FILENO),
       kStdQuota},
      {"stderr", 2, sandbox::Direction::kOut, sandbox::ChannelEnd::Descriptor(STDERR_FILENO),
       kStdQuota},
  };
}

// Binds a NAME=FILE argument of --in or --out: `stdin`, `stdout` and `stderr` rebind
// descriptors 0, 1 and 2 (in the direction each has); any other name is the next descriptor
// from 3. Empty on success, else why the argument is refused.
std::string AddChannel(std::vector<sandbox::Channel>& channels, const std::string& arg,
                       sandbox::Direction dir, uint64_t quota) {
  const size_t eq = arg.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == arg.size()) return "NAME=FILE";
  const std::string name = arg.substr(0, eq);
  sandbox::ChannelEnd end = sandbox::ChannelEnd::File(arg.substr(eq + 1));
  int next_fd = 3;
  for (auto& c : channels) {
    next_fd = std::max(next_fd, c.target_fd + 1);
    if (c.name != name) continue;
    if (c.target_fd > 2 || c.direction != dir)
      return c.target_fd > 2
                 ? "channel '" + name + "' is named twice"
                 : "'" + name + "' is an " +
                       (c.direction == sandbox::Direction::kIn ? "input (--in)" : "output (--out)");
    c.end = std::move(end);
    c.quota_bytes = quota;
    return "";
  }
  channels.push_back({name, next_fd, dir, std::move(end), quota});
  return "";
}

// Every default and every flag error of `sandbox run`. Returns the exit status to stop with
// (0 after --help, 2: usage), or nullopt to run.
std::optional<int> ParseRunFlags(int argc, char** argv, RunOptions* o) {
  const int program_at = FindProgram(argc, argv);
  std::vector<char*> option_args(argv + 1, argv + std::min(program_at, argc));
  Flags flags(static_cast<int>(option_args.size()), option_args.data());
  if (!flags.error().empty()) return Usage(flags.error());
  if (flags.Has("help") || flags.Has("h")) {
    std::fputs(kUsage, stdout);
    return kExitOk;
  }
  uint64_t quota = kDefaultQuota;
  if (auto why = TakeLimits(flags, &o->spec.limits, &quota)) return Usage(*why);
  o->cache_dir = flags.Take("cache").value_or("");
  const std::vector<std::string> ins = flags.TakeAll("in");
  const std::vector<std::string> outs = flags.TakeAll("out");
  if (!flags.Unknown().empty()) return Usage("unknown option " + flags.Unknown().front());
  if (!flags.Positional().empty()) return Usage("unexpected '" + flags.Positional().front() + "'");
  if (program_at >= argc) return Usage("no PROGRAM given");

  o->spec.channels = StandardChannels();
  for (const std::string& in : ins)
    if (auto why = AddChannel(o->spec.channels, in, sandbox::Direction::kIn, quota); !why.empty())
      return Usage("bad --in '" + in + "' (" + why + ")");
  for (const std::string& out : outs)
    if (auto why = AddChannel(o->spec.channels, out, sandbox::Direction::kOut, quota); !why.empty())
      return Usage("bad --out '" + out + "' (" + why + ")");
  for (int i = program_at; i < argc; ++i) o->spec.argv.emplace_back(argv[i]);
  o->program_path = argv[program_at];
  return std::nullopt;
}

// Validates the program (through the verdict cache) and runs it in the sandbox; prints the run
// report as JSON and returns the exit status.
int ValidateAndRun(RunOptions& o) {
  Result<sandbox::SealedProgram> program = sandbox::LoadProgram(o.program_path);
  if (!program.ok()) {
    std::fprintf(stderr, "zerofarm sandbox: %s\n", program.status().ToString().c_str());
    return kExitUsage;
  }
  Result<std::unique_ptr<sandbox::VerdictCache>> cache =
      sandbox::VerdictCache::Open({o.cache_dir, 16});
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
    std::fprintf(stderr, "zerofarm sandbox: %s: rejected by the validator\n",
                 o.program_path.c_str());
    for (const sandbox::Reason& r : verdict->reasons) {
      std::fprintf(stderr, "  %s: %s\n", r.code.c_str(), r.message.c_str());
    }
    return kExitRejected;
  }
  o.spec.program = &*program;
  o.spec.verdict = &*verdict;
  Result<sandbox::RunReport> report = sandbox::RunSandboxed(o.spec);
  if (!report.ok()) {
    std::fprintf(stderr, "zerofarm sandbox: %s\n", report.status().ToString().c_str());
    return kExitUsage;
  }
  std::printf("%s\n", sandbox::RunReportToJson(*report).c_str());
  std::fflush(stdout);
  return report->ended == sandbox::RunEnd::kExited && report->exit_code == 0 ? kExitOk
                                                                             : kExitProgramFailed;
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
  RunOptions o;
  if (auto stop = ParseRunFlags(argc, argv, &o)) return *stop;
  return ValidateAndRun(o);
}

}  // namespace zerofarm::cli
