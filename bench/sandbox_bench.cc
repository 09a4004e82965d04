// zerofarm-sandbox-bench: what the sandbox costs, against what one would use instead, side by
// side in one run.
//
// Spawn latency: a no-op static program (main returns 0) run to completion N times each, with
// the four methods interleaved (zerofarm, zerofarm unprepared, fork+exec, bwrap; the order
// rotates every round so drift and warm-up fall on all alike). One sample is the wall time from
// the call that starts the program to the moment its exit status has been collected (the call's
// return), so every method pays for its own setup and teardown:
//   zerofarm   RunSandboxed() as users meet it: a sandbox prepared in the background (fresh user,
//              mount, PID, network, IPC and UTS namespaces, id maps, a fresh memory cgroup, an
//              empty root) takes the run; the run adds its channels, rlimits, seccomp and the
//              exec. The program's verdict is validated once, before the loop. Between two of
//              its runs the other methods run, so the pool has time to refill: a paced load;
//   zerofarm_unprepared  the same with SandboxOptions::prepare_during_call: the run prepares
//              its own sandbox on its thread (every layer made during the call);
//   fork+exec  fork(), execve() of the program file, waitpid(): no isolation at all;
//   bwrap      bubblewrap with comparable isolation: --unshare-all (user, mount, PID, network,
//              IPC, UTS, cgroup), --die-with-parent, an empty tmpfs root holding only the
//              program (read-only bind), no /proc, no /dev, an empty environment.
// RunSandboxed's own report also gives spawn_ms (start to the program's execve): reported too.
// Then a burst: N zerofarm runs back to back (zerofarm_back_to_back), where the pool's thread
// refills while runs take its sandboxes: what a tight loop meets.
//
// Validator: Validate() of a program (the static worker) R times: MB/s of the program's bytes
// and of its executable bytes; then the verdict cache: a miss, memory hits, and disk hits from a
// cache reopened on the same directory (each hit still hashes the program: SHA-256).
//
// Prints one JSON object on stdout (the harness bench/harness reads it); progress on stderr.
#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "zerofarm/base/status.h"
#include "zerofarm/sandbox/host_layers.h"
#include "zerofarm/sandbox/runner.h"
#include "zerofarm/sandbox/sealed_program.h"
#include "zerofarm/sandbox/validator.h"
#include "zerofarm/sandbox/verdict_cache.h"

extern char** environ;

namespace zerofarm::bench {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

struct Config {
  std::string noop;             // the no-op static program; compiled into a temp dir when empty
  std::string validate_target;  // the program to validate (the static worker); skipped if empty
  std::string bwrap = "bwrap";
  std::string cc = "cc";
  int spawns = 200;
  int validate_reps = 3;
  int cache_hits = 20;
};

constexpr const char* kUsage =
    "usage: zerofarm-sandbox-bench [--spawns=N] [--noop=PROGRAM] [--validate=PROGRAM]\n"
    "                              [--validate-reps=N] [--cache-hits=N] [--bwrap=PATH] "
    "[--cc=PATH]\n"
    "\n"
    "Spawn latency of a no-op static program in the zerofarm sandbox, with fork+exec and with\n"
    "bwrap (interleaved, N runs each, p50/p99), and the validator's throughput and cached-verdict\n"
    "time on PROGRAM (the static worker). Prints JSON on stdout.\n";

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  // Nearest rank: the smallest value with at least p of the samples at or below it.
  size_t rank = static_cast<size_t>(std::ceil(p * static_cast<double>(v.size())));
  rank = std::clamp<size_t>(rank, 1, v.size());
  return v[rank - 1];
}

json Summary(const std::vector<double>& ms) {
  json j;
  j["n"] = ms.size();
  j["p50_ms"] = Percentile(ms, 0.50);
  j["p99_ms"] = Percentile(ms, 0.99);
  j["min_ms"] = ms.empty() ? NAN : *std::min_element(ms.begin(), ms.end());
  j["max_ms"] = ms.empty() ? NAN : *std::max_element(ms.begin(), ms.end());
  return j;
}

// Runs argv to completion through fork + execve; the wall time in ms, or an error.
Result<double> ForkExecRun(const std::vector<std::string>& args,
                           const std::vector<std::string>& env) {
  std::vector<char*> argv;
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (const std::string& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  const Clock::time_point t0 = Clock::now();
  const pid_t pid = ::fork();
  if (pid < 0) return ErrnoError("fork", errno);
  if (pid == 0) {
    ::execve(argv[0], argv.data(), envp.data());
    ::_exit(127);
  }
  int status = 0;
  if (::waitpid(pid, &status, 0) < 0) return ErrnoError("waitpid", errno);
  const double ms = Ms(Clock::now() - t0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return Status::Error(ErrorCode::kChildFailed,
                         args[0] + " did not exit 0 (status " + std::to_string(status) + ")");
  return ms;
}

std::optional<std::string> FindInPath(const std::string& name) {
  if (name.find('/') != std::string::npos) {
    if (::access(name.c_str(), X_OK) == 0) return name;
    return std::nullopt;
  }
  const char* path = std::getenv("PATH");
  std::string_view rest = path ? path : "/usr/bin:/bin";
  while (!rest.empty()) {
    const size_t colon = rest.find(':');
    const std::string dir(rest.substr(0, colon));
    const std::string candidate = dir + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    if (colon == std::string_view::npos) break;
    rest.remove_prefix(colon + 1);
  }
  return std::nullopt;
}

Result<std::string> CompileNoop(const fs::path& dir, const std::string& cc) {
  const fs::path src = dir / "noop.c";
  const fs::path out = dir / "noop";
  std::ofstream(src) << "int main(void) { return 0; }\n";
  const std::string cmd = cc + " -static -O2 -o '" + out.string() + "' '" + src.string() + "'";
  if (std::system(cmd.c_str()) != 0) return Status::Error(ErrorCode::kCompileFailed, cmd);
  return out.string();
}

json SpawnBench(const Config& config, const std::string& noop) {
  using namespace zerofarm::sandbox;
  json out;
  out["program"] = noop;
  out["program_bytes"] = fs::file_size(noop);
  out["spawns_per_method"] = config.spawns;

  // zerofarm: seal and validate once, as the pipeline does through the verdict cache.
  Result<SealedProgram> sealed = LoadProgram(noop);
  std::optional<ValidationReport> verdict;
  std::string zerofarm_unavailable;
  if (!sealed.ok()) {
    zerofarm_unavailable = "cannot load the program: " + sealed.status().ToString();
  } else {
    Result<ValidationReport> v = Validate(sealed->bytes());
    if (!v.ok()) {
      zerofarm_unavailable = "validator failed: " + v.status().ToString();
    } else if (!v->accepted()) {
      zerofarm_unavailable = "the validator rejected the no-op program";
    } else {
      verdict = std::move(*v);
    }
  }
  auto run_zerofarm = [&](double* spawn_ms, bool prepared) -> Result<double> {
    SandboxSpec spec;
    spec.options.prepare_during_call = !prepared;
    spec.program = &*sealed;
    spec.verdict = &*verdict;
    spec.argv = {"noop"};
    spec.channels = {
        {"stdin", 0, Direction::kIn, ChannelEnd::Memory(), 1 << 16},
        {"stdout", 1, Direction::kOut, ChannelEnd::Memory(), 1 << 16},
        {"stderr", 2, Direction::kOut, ChannelEnd::Memory(), 1 << 16},
    };
    spec.limits.memory_bytes = 64 << 20;
    spec.limits.wall_timeout = std::chrono::milliseconds(10000);
    spec.limits.cpu_seconds = 5;
    const Clock::time_point t0 = Clock::now();
    Result<RunReport> report = RunSandboxed(spec);
    const double ms = Ms(Clock::now() - t0);
    if (!report.ok()) return report.status();
    if (report->ended != sandbox::RunEnd::kExited || report->exit_code != 0)
      return Status::Error(ErrorCode::kChildFailed, "sandboxed no-op: " + RunReportToJson(*report));
    *spawn_ms = report->spawn_ms;
    return ms;
  };

  // bwrap with the isolation closest to the zerofarm sandbox's (no seccomp filter given).
  std::optional<std::string> bwrap = FindInPath(config.bwrap);
  std::vector<std::string> bwrap_argv;
  std::string bwrap_unavailable;
  if (!bwrap) {
    bwrap_unavailable = "bwrap not found (Debian package bubblewrap)";
  } else {
    bwrap_argv = {*bwrap,
                  "--unshare-all",
                  "--die-with-parent",
                  "--new-session",
                  "--tmpfs",
                  "/",
                  "--ro-bind",
                  noop,
                  "/noop",
                  "--remount-ro",
                  "/",
                  "--clearenv",
                  "/noop"};
    Result<double> probe = ForkExecRun(bwrap_argv, {});
    if (!probe.ok()) bwrap_unavailable = "bwrap cannot run here: " + probe.status().ToString();
  }
  out["bwrap_command"] = bwrap_argv;

  std::vector<double> zf_ms, zf_spawn_ms, zu_ms, zu_spawn_ms, fe_ms, bw_ms;
  std::string first_error;
  const std::vector<std::string> noop_argv = {noop};
  auto zerofarm_sample = [&](bool prepared, std::vector<double>* ms, std::vector<double>* spawn) {
    double spawn_ms = 0;
    Result<double> r = run_zerofarm(&spawn_ms, prepared);
    if (r.ok()) {
      ms->push_back(*r);
      spawn->push_back(spawn_ms);
    } else if (zerofarm_unavailable.empty()) {
      zerofarm_unavailable = r.status().ToString();
    }
  };
  // One untimed run starts the pool's thread, as a long-running process has.
  if (verdict) {
    double ignored = 0;
    (void)run_zerofarm(&ignored, true);
  }
  for (int i = 0; i < config.spawns; ++i) {
    for (int k = 0; k < 4; ++k) {
      const int method = (i + k) % 4;
      if (method == 0 && verdict) {
        zerofarm_sample(true, &zf_ms, &zf_spawn_ms);
      } else if (method == 3 && verdict) {
        zerofarm_sample(false, &zu_ms, &zu_spawn_ms);
      } else if (method == 1) {
        Result<double> r = ForkExecRun(noop_argv, {});
        if (r.ok())
          fe_ms.push_back(*r);
        else if (first_error.empty())
          first_error = r.status().ToString();
      } else if (method == 2 && bwrap_unavailable.empty()) {
        Result<double> r = ForkExecRun(bwrap_argv, {});
        if (r.ok())
          bw_ms.push_back(*r);
        else
          bwrap_unavailable = r.status().ToString();
      }
    }
    if ((i + 1) % 50 == 0)
      std::fprintf(stderr, "sandbox-bench: %d of %d spawn rounds\n", i + 1, config.spawns);
  }
  std::vector<double> burst_ms, burst_spawn_ms;
  for (int i = 0; verdict && i < config.spawns; ++i) {
    zerofarm_sample(true, &burst_ms, &burst_spawn_ms);
  }

  json methods = json::object();
  json zf = Summary(zf_ms);
  zf["what"] =
      "RunSandboxed, a prepared sandbox (namespaces, id maps, cgroup, empty root made in the "
      "background), seccomp, rlimits, channels; interleaved with the other methods (paced)";
  zf["report_spawn_ms"] = Summary(zf_spawn_ms);
  if (!zerofarm_unavailable.empty()) zf["not_available"] = zerofarm_unavailable;
  const HostLayers layers = ProbeHostLayers();
  zf["layers_active"] = layers.Active();
  zf["layers_missing"] = layers.Missing();
  methods["zerofarm"] = zf;
  json zu = Summary(zu_ms);
  zu["what"] = "RunSandboxed preparing its own sandbox during the call (every layer)";
  zu["report_spawn_ms"] = Summary(zu_spawn_ms);
  methods["zerofarm_unprepared"] = zu;
  json burst = Summary(burst_ms);
  burst["what"] = "RunSandboxed back to back, N runs: the pool refills while runs take from it";
  burst["report_spawn_ms"] = Summary(burst_spawn_ms);
  methods["zerofarm_back_to_back"] = burst;
  json fe = Summary(fe_ms);
  fe["what"] = "fork + execve + waitpid, no isolation";
  if (!first_error.empty()) fe["error"] = first_error;
  methods["fork_exec"] = fe;
  json bw = Summary(bw_ms);
  bw["what"] = "bwrap --unshare-all --die-with-parent, tmpfs root with only the program, no /proc";
  if (!bwrap_unavailable.empty()) bw["not_available"] = bwrap_unavailable;
  methods["bwrap"] = bw;
  out["methods"] = methods;
  const double fe_p50 = Percentile(fe_ms, 0.50);
  out["ratio_p50_to_fork_exec"] = {{"zerofarm", Percentile(zf_ms, 0.50) / fe_p50},
                                   {"zerofarm_unprepared", Percentile(zu_ms, 0.50) / fe_p50},
                                   {"zerofarm_back_to_back", Percentile(burst_ms, 0.50) / fe_p50},
                                   {"bwrap", Percentile(bw_ms, 0.50) / fe_p50}};
  return out;
}

json ValidatorBench(const Config& config, const fs::path& tmp) {
  using namespace zerofarm::sandbox;
  json out;
  out["program"] = config.validate_target;
  Result<SealedProgram> sealed = LoadProgram(config.validate_target);
  if (!sealed.ok()) {
    out["not_available"] =
        "cannot load " + config.validate_target + ": " + sealed.status().ToString();
    return out;
  }
  const auto bytes = sealed->bytes();
  out["program_bytes"] = bytes.size();
  std::vector<double> ms;
  std::optional<ValidationReport> last;
  for (int i = 0; i < config.validate_reps; ++i) {
    const Clock::time_point t0 = Clock::now();
    Result<ValidationReport> r = Validate(bytes);
    ms.push_back(Ms(Clock::now() - t0));
    if (!r.ok()) {
      out["not_available"] = "validator failed: " + r.status().ToString();
      return out;
    }
    last = std::move(*r);
    std::fprintf(stderr, "sandbox-bench: validate %d of %d: %.0f ms\n", i + 1, config.validate_reps,
                 ms.back());
  }
  const double median_ms = Percentile(ms, 0.5);
  out["verdict"] = last->accepted() ? "accepted" : "rejected";
  out["executable_bytes"] = last->counts.executable_bytes;
  out["decoded_bytes"] = last->counts.decoded_bytes;
  out["instructions"] = last->counts.instructions;
  out["validate_ms"] = ms;
  out["median_validate_ms"] = median_ms;
  out["mb_per_s_program"] = static_cast<double>(bytes.size()) / 1e6 / (median_ms / 1e3);
  out["mb_per_s_executable"] =
      static_cast<double>(last->counts.executable_bytes) / 1e6 / (median_ms / 1e3);

  // The verdict cache: a miss, then memory hits; then disk hits through a fresh cache object.
  const fs::path cache_dir = tmp / "verdicts";
  json cache;
  Result<std::unique_ptr<VerdictCache>> c = VerdictCache::Open({cache_dir, 16});
  if (!c.ok()) {
    cache["not_available"] = c.status().ToString();
  } else {
    Result<ValidationReport> miss = (*c)->Validate(bytes);
    if (miss.ok()) cache["miss_ms"] = miss->timing.total_ms;
    std::vector<double> mem, disk;
    for (int i = 0; i < config.cache_hits; ++i) {
      Result<ValidationReport> r = (*c)->Validate(bytes);
      if (r.ok() && r->timing.cache == "memory") mem.push_back(r->timing.total_ms);
      // A fresh object on the same directory: its memory is empty, the file answers.
      Result<std::unique_ptr<VerdictCache>> fresh = VerdictCache::Open({cache_dir, 16});
      if (fresh.ok()) {
        Result<ValidationReport> d = (*fresh)->Validate(bytes);
        if (d.ok() && d->timing.cache == "disk") disk.push_back(d->timing.total_ms);
      }
    }
    // The same sealed memfd again: answered by its identity, no hashing.
    std::vector<double> by_identity;
    Result<ValidationReport> seeded = (*c)->ValidateSealed(*sealed);
    for (int i = 0; seeded.ok() && i < config.cache_hits; ++i) {
      Result<ValidationReport> r = (*c)->ValidateSealed(*sealed);
      if (r.ok() && r->timing.cache == "sealed") by_identity.push_back(r->timing.total_ms);
    }
    cache["memory_hit"] = Summary(mem);
    cache["disk_hit"] = Summary(disk);
    cache["sealed_hit"] = Summary(by_identity);
    cache["note"] =
        "a memory or disk hit hashes the whole program (SHA-256) to find its key; a sealed hit "
        "knows the memfd it validated";
  }
  out["cache"] = cache;
  return out;
}

std::optional<Config> ParseArgs(int argc, char** argv) {
  Config c;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    auto value_of = [&](std::string_view prefix) -> std::optional<std::string> {
      if (arg.substr(0, prefix.size()) == prefix) return std::string(arg.substr(prefix.size()));
      return std::nullopt;
    };
    if (auto v = value_of("--spawns=")) {
      c.spawns = std::atoi(v->c_str());
    } else if (auto v2 = value_of("--noop=")) {
      c.noop = *v2;
    } else if (auto v3 = value_of("--validate=")) {
      c.validate_target = *v3;
    } else if (auto v4 = value_of("--validate-reps=")) {
      c.validate_reps = std::atoi(v4->c_str());
    } else if (auto v5 = value_of("--cache-hits=")) {
      c.cache_hits = std::atoi(v5->c_str());
    } else if (auto v6 = value_of("--bwrap=")) {
      c.bwrap = *v6;
    } else if (auto v7 = value_of("--cc=")) {
      c.cc = *v7;
    } else {
      std::fprintf(stderr, "zerofarm-sandbox-bench: unknown argument %s\n%s", argv[i], kUsage);
      return std::nullopt;
    }
  }
  if (c.spawns < 1 || c.validate_reps < 1 || c.cache_hits < 1) {
    std::fprintf(stderr, "zerofarm-sandbox-bench: counts must be positive\n");
    return std::nullopt;
  }
  return c;
}

int Main(int argc, char** argv) {
  if (argc == 2 && (std::string_view(argv[1]) == "--help" || std::string_view(argv[1]) == "-h")) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  std::optional<Config> config = ParseArgs(argc, argv);
  if (!config) return 2;
  const char* base = std::getenv("TMPDIR");
  std::string pattern =
      std::string(base && *base ? base : "/tmp") + "/zerofarm-sandbox-bench-XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) {
    std::perror("mkdtemp");
    return 1;
  }
  const fs::path tmp = pattern;
  json out;
  out["benchmark"] = "sandbox";
  std::string noop = config->noop;
  if (noop.empty()) {
    Result<std::string> built = CompileNoop(tmp, config->cc);
    if (!built.ok()) {
      out["spawn"] = {
          {"not_available", "cannot build the no-op program: " + built.status().ToString()}};
    } else {
      noop = *built;
      out["noop_build"] = config->cc + " -static -O2 (int main(void) { return 0; })";
    }
  }
  if (!noop.empty()) out["spawn"] = SpawnBench(*config, noop);
  if (config->validate_target.empty()) {
    out["validator"] = {{"not_available", "no program to validate given (--validate=)"}};
  } else {
    out["validator"] = ValidatorBench(*config, tmp);
  }
  std::error_code ec;
  fs::remove_all(tmp, ec);
  std::printf("%s\n", out.dump(2).c_str());
  return 0;
}

}  // namespace
}  // namespace zerofarm::bench

int main(int argc, char** argv) { return zerofarm::bench::Main(argc, argv); }
