// CpuHog: busy loops on threads of the test process, so that a fault test meets the load of a
// shared machine (two other transcodes on the same cores) on every run instead of by chance.
// The loops stop and are joined on destruction. Thread-compatible: one owner.
#pragma once

#include <atomic>
#include <thread>
#include <vector>

namespace zerofarm::test {

class CpuHog {
 public:
  // Starts `threads` busy loops (none when 0).
  explicit CpuHog(int threads);
  ~CpuHog();
  CpuHog(const CpuHog&) = delete;
  CpuHog& operator=(const CpuHog&) = delete;

  int threads() const { return static_cast<int>(threads_.size()); }

  // The number of busy loops $ZEROFARM_TEST_CPU_HOG asks every farm test to run beside it
  // (0 when unset or not a number from 0 to 64).
  static int FromEnvironment();

 private:
  std::atomic<bool> stop_{false};
  std::vector<std::thread> threads_;
};

}  // namespace zerofarm::test
