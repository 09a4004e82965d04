// A process killed with SIGKILL in the middle of writing: what it committed is intact, what it
// did not commit is invisible, and the next Open removes the blocks it left behind, in RocksDB
// or in block files.
//
// The child re-executes this test binary (fork + exec) to run a hidden test case that does the
// writing, so it starts from a clean process instead of a fork of a multi-threaded one.
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "store_test_support.h"
#include "zerofarm/base/unique_fd.h"

extern char** environ;

namespace zerofarm::storage {
namespace {

using testing::BlockFiles;
using testing::BlockKeyObjectId;
using testing::kTestBlockSize;
using testing::OpenStore;
using testing::RawDb;
using testing::TempDir;
using testing::TestBytes;
using testing::TestOptions;

constexpr const char* kChildTestName = "crash child writes to a store and waits to be killed";
constexpr const char* kDirVariable = "ZF_STORAGE_CRASH_DIR";
constexpr const char* kBlockFilesVariable = "ZF_STORAGE_CRASH_BLOCK_FILES";  // "1" or "0"
constexpr int kReadyFd = 3;  // the child reports "ready" on this descriptor

const std::string kCommitted = TestBytes(3 * kTestBlockSize + 100, 1);
const std::string kReplacement = TestBytes(2 * kTestBlockSize + 50, 2);
const std::string kUncommitted = TestBytes(3 * kTestBlockSize + 200, 3);

// Kills and reaps the child on every exit path of the parent.
class ChildGuard {
 public:
  explicit ChildGuard(pid_t pid) : pid_(pid) {}
  ~ChildGuard() {
    if (pid_ > 0) Kill();
  }
  ChildGuard(const ChildGuard&) = delete;
  ChildGuard& operator=(const ChildGuard&) = delete;

  // SIGKILLs the child and returns its wait status.
  int Kill() {
    ::kill(pid_, SIGKILL);
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
    return status;
  }

 private:
  pid_t pid_;
};

// The child's part: run only when the parent test re-executes the binary with kChildTestName.
TEST_CASE("crash child writes to a store and waits to be killed", "[.][storage-crash-child]") {
  const char* dir = std::getenv(kDirVariable);
  if (dir == nullptr) {
    WARN("only meaningful when started by the crash test");
    return;
  }
  Options options;
  options.dir = dir;
  options.block_size = kTestBlockSize;
  const char* block_files = std::getenv(kBlockFilesVariable);
  options.block_files = block_files != nullptr && std::string(block_files) == "1";
  std::unique_ptr<Store> store = OpenStore(options);

  // Committed: must survive.
  Result<std::unique_ptr<ObjectWriter>> committed = store->CreateObject("committed");
  REQUIRE(committed.ok());
  REQUIRE((*committed)->Append(kCommitted).ok());
  REQUIRE((*committed)->Commit().ok());

  // Not committed: a new object, and a replacement of the committed one. Full blocks of both
  // are already written (and synced) when the process dies.
  Result<std::unique_ptr<ObjectWriter>> fresh = store->CreateObject("uncommitted");
  REQUIRE(fresh.ok());
  REQUIRE((*fresh)->Append(kUncommitted).ok());
  Result<std::unique_ptr<ObjectWriter>> replacement = store->CreateObject("committed");
  REQUIRE(replacement.ok());
  REQUIRE((*replacement)->Append(kReplacement).ok());

  REQUIRE(::write(kReadyFd, "ready", 5) == 5);
  for (;;) ::pause();  // until SIGKILL
}

std::string SelfExe() {
  std::error_code ec;
  std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  REQUIRE_FALSE(ec);
  return self.string();
}

TEST_CASE("a crash before commit leaves committed objects intact and nothing else", "[storage]") {
  const bool block_files = GENERATE(false, true);
  CAPTURE(block_files);
  TempDir dir;
  Options options = TestOptions(dir);
  options.block_files = block_files;

  // Everything the child needs is prepared before fork: after it, only async-signal-safe calls.
  std::string exe = SelfExe();
  std::vector<std::string> args = {exe, kChildTestName};
  std::vector<std::string> env_strings = {
      std::string(kDirVariable) + "=" + options.dir.string(),
      std::string(kBlockFilesVariable) + "=" + (block_files ? "1" : "0")};
  for (char** e = environ; *e != nullptr; ++e) env_strings.emplace_back(*e);
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (std::string& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);

  Result<Pipe> pipe = MakePipe();
  REQUIRE(pipe.ok());
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    if (::dup2(pipe->write.get(), kReadyFd) < 0) ::_exit(126);
    ::execve(argv[0], argv.data(), envp.data());
    ::_exit(127);
  }
  ChildGuard child(pid);
  pipe->write.Close();

  // Wait for "ready"; end of stream means the child failed before getting there.
  std::string ready;
  std::byte buffer[16];
  for (;;) {
    Result<size_t> n = ReadSome(pipe->read.get(), buffer);
    REQUIRE(n.ok());
    if (*n == 0) break;
    ready.append(reinterpret_cast<const char*>(buffer), *n);
    if (ready == "ready") break;
  }
  REQUIRE(ready == "ready");
  int status = child.Kill();
  REQUIRE(WIFSIGNALED(status));
  REQUIRE(WTERMSIG(status) == SIGKILL);

  // The dead process left blocks of three objects on disk.
  std::set<uint64_t> ids_before;
  {
    RawDb raw(options.dir, options.blob_files);
    for (auto& [key, value] : raw.Scan("chunks")) ids_before.insert(BlockKeyObjectId(key));
  }
  if (block_files) {
    CHECK(ids_before.empty());
    REQUIRE(BlockFiles(options.dir).size() == 3);
  } else {
    REQUIRE(ids_before.size() == 3);
  }

  {
    std::unique_ptr<Store> store = OpenStore(options);
    Result<std::string> committed = store->GetObject("committed");
    INFO(committed.status().ToString());
    REQUIRE(committed.ok());
    CHECK(*committed == kCommitted);
    CHECK(store->Stat("uncommitted").status().code() == ErrorCode::kNotFound);
    CHECK(store->ListObjects("").value() == std::vector<std::string>{"committed"});
  }

  // Open removed the orphans: only the committed object's four blocks remain.
  RawDb raw(options.dir, options.blob_files);
  std::set<uint64_t> ids_after;
  size_t blocks = 0;
  for (auto& [key, value] : raw.Scan("chunks")) {
    ids_after.insert(BlockKeyObjectId(key));
    ++blocks;
  }
  if (block_files) {
    CHECK(ids_after.empty());
    std::vector<std::filesystem::path> files = BlockFiles(options.dir);
    REQUIRE(files.size() == 1);
    CHECK(std::filesystem::file_size(files[0]) == kCommitted.size());
  } else {
    CHECK(ids_after.size() == 1);
    CHECK(blocks == 4);
  }
  for (auto& [key, value] : raw.Scan("meta")) CHECK(key.rfind("p/", 0) != 0);
}

}  // namespace
}  // namespace zerofarm::storage
