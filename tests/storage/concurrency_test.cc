// Many threads writing, replacing, reading and listing through one Store at once.
#include <atomic>
#include <catch2/catch.hpp>
#include <string>
#include <thread>
#include <vector>

#include "store_test_support.h"

namespace zerofarm::storage {
namespace {

using testing::kTestBlockSize;
using testing::OpenStore;
using testing::RawDb;
using testing::TempDir;
using testing::TestBytes;
using testing::TestOptions;

constexpr int kThreads = 6;
constexpr int kObjectsPerThread = 12;

std::string ObjectName(int thread, int i) {
  return "t" + std::to_string(thread) + "/obj" + std::to_string(i);
}
std::string ObjectBytes(int thread, int i) {
  return TestBytes(static_cast<size_t>(i) * kTestBlockSize / 3 + static_cast<size_t>(thread),
                   static_cast<uint64_t>(thread * 1000 + i));
}
std::string SharedBytes(int thread) { return TestBytes(2 * kTestBlockSize + 1, 99 + thread); }

TEST_CASE("concurrent writers readers and replacements leave a consistent store", "[storage]") {
  TempDir dir;
  Options options = TestOptions(dir);
  const std::string stable = TestBytes(4 * kTestBlockSize + 5, 12345);
  std::atomic<int> failures{0};
  {
    std::unique_ptr<Store> store = OpenStore(options);
    REQUIRE(store->PutObject("stable", stable).ok());

    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kObjectsPerThread; ++i) {
          const std::string bytes = ObjectBytes(t, i);
          Result<std::unique_ptr<ObjectWriter>> writer = store->CreateObject(ObjectName(t, i));
          if (!writer.ok() || !(*writer)->Append(bytes).ok() || !(*writer)->Commit().ok()) {
            ++failures;
          }
          // Every thread also replaces one shared object and reads a stable one.
          if (!store->PutObject("shared", SharedBytes(t)).ok()) ++failures;
          Result<std::string> read = store->GetObject("stable");
          if (!read.ok() || *read != stable) ++failures;
          if (!store->PutMeta("progress/" + std::to_string(t), std::to_string(i)).ok()) {
            ++failures;
          }
          if (!store->ListObjects("t").ok()) ++failures;
        }
      });
    }
    for (std::thread& thread : threads) thread.join();
    REQUIRE(failures == 0);

    for (int t = 0; t < kThreads; ++t) {
      for (int i = 0; i < kObjectsPerThread; ++i) {
        CAPTURE(t, i);
        CHECK(store->GetObject(ObjectName(t, i)).value() == ObjectBytes(t, i));
      }
      CHECK(store->GetMeta("progress/" + std::to_string(t)).value() ==
            std::optional<std::string>(std::to_string(kObjectsPerThread - 1)));
    }
    const std::string shared = store->GetObject("shared").value();
    bool matches_one = false;
    for (int t = 0; t < kThreads; ++t) matches_one = matches_one || shared == SharedBytes(t);
    CHECK(matches_one);
    CHECK(store->ListObjects("").value().size() == kThreads * kObjectsPerThread + 2);
  }

  // No replaced or abandoned blocks are left: the chunks column family holds exactly the blocks
  // of the objects that are visible.
  uint64_t expected_blocks = 5 + 3;  // "stable" and "shared"
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kObjectsPerThread; ++i) {
      expected_blocks += (ObjectBytes(t, i).size() + kTestBlockSize - 1) / kTestBlockSize;
    }
  }
  RawDb raw(options.dir, options.blob_files);
  CHECK(raw.Scan("chunks").size() == expected_blocks);
}

TEST_CASE("file-backed objects committed from many threads at once all survive a reopen",
          "[storage]") {
  TempDir dir;
  Options options = testing::FileTestOptions(dir);
  std::atomic<int> failures{0};
  auto bytes_of = [](int t, int i) {
    return TestBytes(
        kTestBlockSize + static_cast<size_t>(i) * kTestBlockSize / 2 + static_cast<size_t>(t),
        static_cast<uint64_t>(t * 1000 + i));
  };
  {
    std::unique_ptr<Store> store = OpenStore(options);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kObjectsPerThread; ++i) {
          const std::string bytes = bytes_of(t, i);
          Result<std::unique_ptr<ObjectWriter>> writer = store->CreateObject(ObjectName(t, i));
          bool ok = writer.ok();
          // Uneven pieces, so blocks complete in the middle of appends.
          for (size_t at = 0; ok && at < bytes.size(); at += 10007) {
            ok = (*writer)->Append(std::string_view(bytes).substr(at, 10007)).ok();
          }
          if (!ok || !(*writer)->Commit().ok()) ++failures;
        }
      });
    }
    for (std::thread& thread : threads) thread.join();
    REQUIRE(failures == 0);
  }
  std::unique_ptr<Store> store = OpenStore(options);
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kObjectsPerThread; ++i) {
      CAPTURE(t, i);
      CHECK(store->GetObject(ObjectName(t, i)).value() == bytes_of(t, i));
    }
  }
  CHECK(testing::BlockFiles(options.dir).size() == kThreads * kObjectsPerThread);
}

}  // namespace
}  // namespace zerofarm::storage
