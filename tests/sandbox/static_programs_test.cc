// Real third-party programs in the sandbox: GNU grep and SQLite's sqlite3 shell, built static and
// stripped from Debian's source packages by scripts/build-static-tools.sh (cmake/
// static_tools.cmake copies them to the directory ZEROFARM_PROGRAMS_DIR names). Each must pass
// the validator as distributed (stripped: no symbol table) and do real work on its stdin, with
// no file system at all; the answers are checked against the same figures computed here.
#include <catch2/catch.hpp>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "zerofarm/sandbox/host_layers.h"
#include "zerofarm/sandbox/runner.h"
#include "zerofarm/sandbox/sealed_program.h"
#include "zerofarm/sandbox/validator.h"

namespace zerofarm::sandbox {
namespace {

// The program's path, or nullopt (with a warning) when the build made none.
std::optional<std::filesystem::path> FindProgram(const std::string& name) {
  const char* dir = std::getenv("ZEROFARM_PROGRAMS_DIR");
  if (dir == nullptr || *dir == '\0') {
    WARN(
        "ZEROFARM_PROGRAMS_DIR is unset (ZEROFARM_STATIC_TOOLS=OFF, or not run by ctest); "
        "skipping");
    return std::nullopt;
  }
  std::filesystem::path path = std::filesystem::path(dir) / name;
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    WARN(path.string() + " does not exist (scripts/build-static-tools.sh builds it); skipping");
    return std::nullopt;
  }
  return path;
}

bool HaveLayers() {
  for (const char* needed : {"user_ns", "mount_ns", "pid_ns", "seccomp"}) {
    bool found = false;
    for (const std::string& layer : ProbeHostLayers().Active()) found = found || layer == needed;
    if (!found) {
      WARN(std::string("SKIPPED: this host lacks the isolation layer ") + needed);
      return false;
    }
  }
  return true;
}

struct Validated {
  SealedProgram program;
  ValidationReport verdict;
};

// Loads and validates a stripped program: accepted, with no sized symbol to lean on and at most
// a tenth of its executable bytes left unverified.
Validated MustValidate(const std::filesystem::path& path) {
  Result<SealedProgram> sealed = LoadProgram(path.string());
  INFO((sealed.ok() ? std::string() : sealed.status().ToString()));
  REQUIRE(sealed.ok());
  Result<ValidationReport> verdict = Validate(sealed->bytes());
  REQUIRE(verdict.ok());
  INFO(ReportToJson(*verdict).substr(0, 20000));
  CHECK(verdict->counts.sized_functions == 0);
  REQUIRE(verdict->accepted());
  CHECK(verdict->counts.data_region_bytes * 10 <= verdict->counts.executable_bytes);
  return {std::move(*sealed), std::move(*verdict)};
}

// Runs the program with `input` on stdin; stdout and stderr are captured.
RunReport MustRun(const Validated& v, const std::string& name, std::vector<std::string> args,
                  const std::string& input) {
  SandboxSpec spec;
  spec.program = &v.program;
  spec.verdict = &v.verdict;
  spec.argv = {name};
  spec.argv.insert(spec.argv.end(), args.begin(), args.end());
  spec.channels = {
      {"stdin", 0, Direction::kIn, ChannelEnd::Memory(input), 64 << 20},
      {"stdout", 1, Direction::kOut, ChannelEnd::Memory(), 1 << 20},
      {"stderr", 2, Direction::kOut, ChannelEnd::Memory(), 1 << 20},
  };
  spec.limits.memory_bytes = 256 << 20;
  spec.limits.wall_timeout = std::chrono::milliseconds(30000);
  spec.limits.cpu_seconds = 30;
  Result<RunReport> report = RunSandboxed(spec);
  INFO((report.ok() ? std::string() : report.status().ToString()));
  REQUIRE(report.ok());
  INFO(RunReportToJson(*report));
  INFO("stderr: " + report->channels.at(2).captured);
  CHECK(report->ended == RunEnd::kExited);
  CHECK(report->exit_code == 0);
  CHECK(report->stopped_by == StopRule::kNone);
  return std::move(report).value();
}

// A small deterministic generator (64-bit LCG, high bits): the same text on every run.
class Lcg {
 public:
  explicit Lcg(uint64_t seed) : state_(seed) {}
  uint32_t Next(uint32_t bound) {
    state_ = state_ * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<uint32_t>((state_ >> 33) % bound);
  }

 private:
  uint64_t state_;
};

constexpr const char* kLevels[] = {"DEBUG", "INFO", "WARN", "ERROR"};
constexpr const char* kServices[] = {"api", "db", "cache", "worker", "scheduler"};

TEST_CASE(
    "GNU grep built static from Debian's source validates and counts matching lines in the "
    "sandbox",
    "[sandbox]") {
  const auto path = FindProgram("grep");
  if (!path || !HaveLayers()) return;
  const Validated grep = MustValidate(*path);

  // Log lines; grep counts those of level ERROR or WARN from the db service (an extended
  // regular expression), which the generator counts as it writes them.
  Lcg rng(20261207);
  std::string log;
  int64_t expected = 0;
  const int lines = 50000;
  for (int i = 0; i < lines; ++i) {
    const char* level = kLevels[rng.Next(4)];
    const char* service = kServices[rng.Next(5)];
    const uint32_t ms = rng.Next(5000);
    log += "2026-12-07T10:" + std::to_string(i / 1000 % 60) + ":" + std::to_string(i % 60) +
           " level=" + level + " service=" + service + " latency_ms=" + std::to_string(ms) +
           " msg=\"request " + std::to_string(i) + "\"\n";
    const std::string l = level;
    if ((l == "ERROR" || l == "WARN") && std::string(service) == "db") ++expected;
  }
  REQUIRE(expected > 0);

  const RunReport r = MustRun(grep, "grep", {"-c", "-E", "level=(ERROR|WARN) service=db "}, log);
  CHECK(r.channels.at(1).captured == std::to_string(expected) + "\n");
  CHECK(r.channels.at(0).bytes == log.size());
}

TEST_CASE(
    "sqlite3 built static from Debian's source validates and aggregates CSV from stdin in the "
    "sandbox",
    "[sandbox]") {
  const auto path = FindProgram("sqlite3");
  if (!path || !HaveLayers()) return;
  const Validated sqlite3 = MustValidate(*path);

  // Requests as CSV (with a header line); the query counts the server errors and sums the
  // bytes of every service.
  Lcg rng(7);
  std::string csv = "service,status,bytes\n";
  struct Sums {
    int64_t requests = 0;
    int64_t errors = 0;
    int64_t bytes = 0;
  };
  std::map<std::string, Sums> expected;  // ordered by name, as ORDER BY service
  const int rows = 20000;
  for (int i = 0; i < rows; ++i) {
    const std::string service = kServices[rng.Next(5)];
    const int status = rng.Next(10) == 0 ? 500 + static_cast<int>(rng.Next(4)) : 200;
    const int64_t bytes = rng.Next(1000000);
    csv += service + "," + std::to_string(status) + "," + std::to_string(bytes) + "\n";
    Sums& s = expected[service];
    ++s.requests;
    s.errors += status >= 500 ? 1 : 0;
    s.bytes += bytes;
  }
  std::string want;
  for (const auto& [service, s] : expected) {
    want += service + "|" + std::to_string(s.requests) + "|" + std::to_string(s.errors) + "|" +
            std::to_string(s.bytes) + "\n";
  }

  // An in-memory database; `.import stdin` reads the descriptor the program already holds
  // (the script's patch to the shell), into a table typed beforehand. The SQL comes from the
  // command line, so stdin carries only the CSV.
  const RunReport r = MustRun(
      sqlite3, "sqlite3",
      {"-batch", "-bail", "-cmd", "CREATE TABLE t(service TEXT, status INTEGER, bytes INTEGER);",
       "-cmd", ".import --csv --skip 1 stdin t", ":memory:",
       "SELECT service, COUNT(*), SUM(status >= 500), SUM(bytes) FROM t GROUP BY service "
       "ORDER BY service;"},
      csv);
  CHECK(r.channels.at(1).captured == want);
  CHECK(r.channels.at(0).bytes == csv.size());
}

}  // namespace
}  // namespace zerofarm::sandbox
