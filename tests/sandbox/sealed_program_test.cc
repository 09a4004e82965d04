#include "zerofarm/sandbox/sealed_program.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>

#include "test_programs.h"

namespace zerofarm::sandbox {
namespace {

using sandbox_test::TempDir;
using sandbox_test::WriteFile;

std::vector<std::byte> Bytes(const std::string& s) {
  std::vector<std::byte> out(s.size());
  for (size_t i = 0; i < s.size(); ++i) out[i] = static_cast<std::byte>(s[i]);
  return out;
}

TEST_CASE("a loaded program is a sealed copy that nobody can change", "[sandbox]") {
  TempDir dir;
  const auto path = dir.path() / "program";
  WriteFile(path, Bytes("original program bytes"));
  Result<SealedProgram> sealed = LoadProgram(path.string());
  REQUIRE(sealed.ok());
  CHECK(std::vector<std::byte>(sealed->bytes().begin(), sealed->bytes().end()) ==
        Bytes("original program bytes"));

  const int seals = ::fcntl(sealed->fd(), F_GET_SEALS);
  CHECK((seals & F_SEAL_WRITE) != 0);
  CHECK((seals & F_SEAL_SHRINK) != 0);
  CHECK((seals & F_SEAL_GROW) != 0);
  CHECK((seals & F_SEAL_SEAL) != 0);
  CHECK((::fcntl(sealed->fd(), F_GETFD) & FD_CLOEXEC) != 0);

  SECTION("writes, truncation, growth, writable mappings and unsealing all fail") {
    CHECK(::pwrite(sealed->fd(), "X", 1, 0) == -1);
    CHECK(errno == EPERM);
    CHECK(::ftruncate(sealed->fd(), 1) == -1);
    CHECK(::ftruncate(sealed->fd(), 1 << 20) == -1);
    CHECK(::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, sealed->fd(), 0) == MAP_FAILED);
    CHECK(::fcntl(sealed->fd(), F_ADD_SEALS, 0) == -1);
    // A writable descriptor reopened through /proc is still bound by the seals.
    const std::string proc = "/proc/self/fd/" + std::to_string(sealed->fd());
    const int rw = ::open(proc.c_str(), O_RDWR | O_CLOEXEC);
    if (rw >= 0) {
      CHECK(::write(rw, "X", 1) == -1);
      ::close(rw);
    }
  }
  SECTION("changing the original file afterwards changes nothing") {
    WriteFile(path, Bytes("replaced"));
    CHECK(std::vector<std::byte>(sealed->bytes().begin(), sealed->bytes().end()) ==
          Bytes("original program bytes"));
  }
  SECTION("moving the owner keeps the mapping valid") {
    SealedProgram moved = std::move(sealed).value();
    CHECK(moved.bytes().size() == 22);
    CHECK(moved.fd() >= 0);
  }
}

TEST_CASE("loading refuses missing files, directories and oversized files", "[sandbox]") {
  TempDir dir;
  SECTION("missing") {
    Result<SealedProgram> sealed = LoadProgram((dir.path() / "absent").string());
    REQUIRE_FALSE(sealed.ok());
    CHECK(sealed.status().code() == ErrorCode::kIoError);
  }
  SECTION("a directory") {
    Result<SealedProgram> sealed = LoadProgram(dir.path().string());
    REQUIRE_FALSE(sealed.ok());
    CHECK(sealed.status().code() == ErrorCode::kNotAFile);
  }
  SECTION("a FIFO, without waiting for a writer") {
    const auto fifo = dir.path() / "fifo";
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    Result<SealedProgram> sealed = LoadProgram(fifo.string());
    REQUIRE_FALSE(sealed.ok());
    CHECK(sealed.status().code() == ErrorCode::kNotAFile);
  }
  SECTION("over the size limit") {
    WriteFile(dir.path() / "big", std::vector<std::byte>(1000));
    Result<SealedProgram> sealed = LoadProgram((dir.path() / "big").string(), 999);
    REQUIRE_FALSE(sealed.ok());
    CHECK(sealed.status().code() == ErrorCode::kTooLarge);
  }
  SECTION("an empty file loads as empty bytes") {
    WriteFile(dir.path() / "empty", {});
    Result<SealedProgram> sealed = LoadProgram((dir.path() / "empty").string());
    REQUIRE(sealed.ok());
    CHECK(sealed->bytes().empty());
  }
}

TEST_CASE("bytes already in memory can be sealed the same way", "[sandbox]") {
  Result<SealedProgram> sealed = SealedProgram::FromBytes(Bytes("abc"), "test");
  REQUIRE(sealed.ok());
  CHECK(sealed->bytes().size() == 3);
  CHECK((::fcntl(sealed->fd(), F_GET_SEALS) & F_SEAL_WRITE) != 0);
}

}  // namespace
}  // namespace zerofarm::sandbox
