// `zerofarm sandbox run` as users call it with ordinary programs: a filter that reads stdin
// and writes stdout, bound to files with --in stdin=FILE and --out stdout=FILE.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "corpus.h"
#include "run_command.h"

namespace zerofarm::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// Upper-cases stdin onto stdout: a filter, as grep or sort are.
constexpr const char* kFilter = R"(#include <ctype.h>
#include <unistd.h>
int main(void) {
  char buf[4096];
  ssize_t n;
  while ((n = read(0, buf, sizeof buf)) > 0) {
    for (ssize_t i = 0; i < n; ++i) buf[i] = (char)toupper((unsigned char)buf[i]);
    if (write(1, buf, (size_t)n) != n) return 2;
  }
  return n < 0 ? 3 : 0;
}
)";

std::string Slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

TEST_CASE("sandbox run binds --in stdin and --out stdout to the standard descriptors",
          "[integration][sandbox][cli][slow]") {
  auto scratch = ScratchDir::Create("sandbox-cli");
  REQUIRE(scratch.ok());
  const fs::path src = scratch->path() / "upper.c";
  const fs::path prog = scratch->path() / "upper";
  std::ofstream(src) << kFilter;
  auto cc = RunCommand({"gcc", "-static", "-O2", "-o", prog.string(), src.string()}, 120s);
  if (!cc.started || cc.exit_code != 0) {
    WARN("gcc -static is not usable here, skipping: " << cc.err);
    return;
  }
  const fs::path in = scratch->path() / "in.txt";
  const fs::path out = scratch->path() / "out.txt";
  std::ofstream(in) << "error: disk full\nwarning: slow\n";

  auto run = RunCommand({ZF_ZEROFARM_BIN, "sandbox", "run", "--in", "stdin=" + in.string(), "--out",
                         "stdout=" + out.string(), prog.string()},
                        120s);
  INFO("stdout: " << run.out << "\nstderr: " << run.err);
  REQUIRE(run.exit_code == 0);
  CHECK(Slurp(out) == "ERROR: DISK FULL\nWARNING: SLOW\n");
  auto report = nlohmann::json::parse(run.out);
  bool saw_stdin = false;
  for (const auto& c : report["channels"])
    if (c["name"] == "stdin") {
      saw_stdin = true;
      CHECK(c["fd"] == 0);
      CHECK(c["bytes"] == fs::file_size(in));
    }
  CHECK(saw_stdin);

  SECTION("a standard name in the wrong direction is refused") {
    auto wrong = RunCommand(
        {ZF_ZEROFARM_BIN, "sandbox", "run", "--out", "stdin=" + out.string(), prog.string()}, 60s);
    CHECK(wrong.exit_code == 2);
    CHECK(wrong.err.find("'stdin' is an input") != std::string::npos);
  }
}

TEST_CASE("Debian's stripped busybox runs grep on stdin in the sandbox",
          "[integration][sandbox][cli][slow]") {
  const fs::path busybox = "/bin/busybox";
  if (!fs::exists(busybox)) {
    WARN("busybox-static is not installed (scripts/setup.sh installs it); skipping");
    return;
  }
  auto scratch = ScratchDir::Create("sandbox-busybox");
  REQUIRE(scratch.ok());
  const fs::path in = scratch->path() / "log.txt";
  const fs::path out = scratch->path() / "count.txt";
  {
    std::ofstream log(in);
    for (int i = 0; i < 1000; ++i) log << (i % 7 == 0 ? "ERROR " : "ok ") << i << "\n";
  }
  auto run = RunCommand({ZF_ZEROFARM_BIN, "sandbox", "run", "--in", "stdin=" + in.string(), "--out",
                         "stdout=" + out.string(), busybox.string(), "grep", "-c", "ERROR"},
                        120s);
  INFO("stdout: " << run.out << "\nstderr: " << run.err);
  REQUIRE(run.exit_code == 0);
  CHECK(Slurp(out) == "143\n");
  auto report = nlohmann::json::parse(run.out);
  CHECK(report["status"] == "exited");
}

}  // namespace zerofarm::test
