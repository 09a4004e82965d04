// zerofarm ring build/show as users run them.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "corpus.h"
#include "run_command.h"

namespace fs = std::filesystem;
using namespace zerofarm;

TEST_CASE("zerofarm ring build writes a ring file and a rebuild with a fourth node moves a quarter",
          "[integration][ring][slow]") {
  auto scratch = test::ScratchDir::Create("ring-cli");
  REQUIRE(scratch.ok());
  const std::string ring = (scratch->path() / "ring").string();
  auto first = test::RunCommand(
      {ZF_ZEROFARM_BIN, "ring", "build", "--replicas", "3", "--part-power", "8", "-o", ring,
       "tcp://127.0.0.1:7001,zone=a", "tcp://127.0.0.1:7002,zone=b", "tcp://127.0.0.1:7003,zone=c"},
      std::chrono::seconds(60));
  INFO(first.err);
  REQUIRE(first.succeeded());
  CHECK(first.out.find("256 partitions x 3 replicas over 3 nodes") != std::string::npos);
  std::ifstream in(ring);
  std::string magic;
  std::getline(in, magic);
  while (magic.rfind("#", 0) == 0) std::getline(in, magic);
  CHECK(magic == "zerofarm-ring 1");

  auto second =
      test::RunCommand({ZF_ZEROFARM_BIN, "ring", "build", "--replicas", "3", "--part-power", "8",
                        "-o", ring, "tcp://127.0.0.1:7001,zone=a", "tcp://127.0.0.1:7002,zone=b",
                        "tcp://127.0.0.1:7003,zone=c", "tcp://127.0.0.1:7004,zone=d"},
                       std::chrono::seconds(60));
  INFO(second.err);
  REQUIRE(second.succeeded());
  CHECK(second.out.find("192 of 768 partition replicas move (25.0%)") != std::string::npos);

  auto show = test::RunCommand({ZF_ZEROFARM_BIN, "ring", "show", ring}, std::chrono::seconds(60));
  REQUIRE(show.succeeded());
  CHECK(show.out.find("tcp://127.0.0.1:7004") != std::string::npos);

  auto bad = test::RunCommand({ZF_ZEROFARM_BIN, "ring", "build", "-o", ring, "localhost:7001"},
                              std::chrono::seconds(60));
  CHECK(bad.exit_code == 2);
  CHECK(bad.err.find("not a ZeroMQ endpoint") != std::string::npos);
}
