// zerofarm bench: runs the benchmark harness (bench/harness/zerofarm_bench.py, Python 3 standard
// library only) with the paths of this zerofarm and of the tools built beside it. Every option
// is the harness's own; this command only finds the harness and python3, then execs.
// The harness is looked up in $ZEROFARM_BENCH_HARNESS, then in the source tree this binary was
// built from, then in <prefix>/share/zerofarm/bench/harness next to <prefix>/bin.
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include "commands.h"

#ifndef ZEROFARM_SOURCE_DIR
#define ZEROFARM_SOURCE_DIR ""
#endif

namespace zerofarm::cli {
namespace {

namespace fs = std::filesystem;

constexpr const char* kHarness = "zerofarm_bench.py";

constexpr const char* kUsage =
    "usage: zerofarm bench [--quick] [--scenario NAME]... [--out DIR] [--repeat N] [--plots]\n"
    "                      [--clip FILE] [HARNESS OPTIONS]\n"
    "\n"
    "Runs zerofarm's benchmarks against what you would use instead, side by side in one run\n"
    "(interleaved), and reports medians and ratios: a table per scenario on stdout, JSON in\n"
    "DIR (default bench-results/<date>/). Scenarios: ladder, ttfs, publish, quality, sandbox,\n"
    "store, serve, upload, scale, cluster, grep. --quick is a two-minute smoke run. Needs\n"
    "python3, ffmpeg; wrk, nginx, curl, bwrap and gnuplot for some scenarios (scripts/setup.sh\n"
    "installs them), root, ip and tc for the grep scenario's capped farm.\n"
    "`zerofarm bench --help-all` prints every harness option; BENCHMARKS.md describes the\n"
    "method.\n";

fs::path SelfDir() {
  std::error_code ec;
  fs::path self = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::path() : self.parent_path();
}

fs::path FindHarness(const fs::path& self_dir) {
  std::vector<fs::path> candidates;
  if (const char* env = std::getenv("ZEROFARM_BENCH_HARNESS"); env && *env)
    candidates.emplace_back(env);
  if (*ZEROFARM_SOURCE_DIR) candidates.push_back(fs::path(ZEROFARM_SOURCE_DIR) / "bench/harness");
  if (!self_dir.empty())
    candidates.push_back(self_dir.parent_path() / "share/zerofarm/bench/harness");
  for (const fs::path& dir : candidates) {
    std::error_code ec;
    if (fs::is_regular_file(dir / kHarness, ec)) return dir / kHarness;
  }
  return {};
}

}  // namespace

int BenchCommand(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  bool help_all = false;
  for (std::string& a : args) {
    if (a == "-h" || a == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (a == "--help-all") {
      help_all = true;
      a = "--help";
    }
  }
  const fs::path self_dir = SelfDir();
  const fs::path harness = FindHarness(self_dir);
  if (harness.empty()) {
    std::fprintf(stderr,
                 "zerofarm: error: bench: no benchmark harness found (set ZEROFARM_BENCH_HARNESS "
                 "to the folder holding %s)\n",
                 kHarness);
    return 1;
  }
  std::vector<std::string> cmd = {"python3", harness.string()};
  if (!help_all) {
    cmd.push_back("--zerofarm");
    cmd.push_back((self_dir / "zerofarm").string());
    cmd.push_back("--bin-dir");
    cmd.push_back(self_dir.string());
    if (*ZEROFARM_SOURCE_DIR && fs::exists(fs::path(ZEROFARM_SOURCE_DIR) / "sample-media")) {
      cmd.push_back("--source-dir");
      cmd.push_back(ZEROFARM_SOURCE_DIR);
    }
  }
  cmd.insert(cmd.end(), args.begin(), args.end());
  std::vector<char*> exec_argv;
  for (std::string& s : cmd) exec_argv.push_back(s.data());
  exec_argv.push_back(nullptr);
  std::fflush(stdout);
  ::execvp("python3", exec_argv.data());
  std::fprintf(stderr, "zerofarm: error: bench: cannot run python3: %s\n", std::strerror(errno));
  return 1;
}

}  // namespace zerofarm::cli
