#include "cpu_hog.h"

#include <cstdlib>
#include <string>

namespace zerofarm::test {

CpuHog::CpuHog(int threads) {
  for (int i = 0; i < threads; ++i) {
    threads_.emplace_back([this] {
      // Spins without a system call; the relaxed load keeps the loop from being optimized out.
      volatile unsigned long sink = 0;
      while (!stop_.load(std::memory_order_relaxed)) sink = sink + 1;
    });
  }
}

CpuHog::~CpuHog() {
  stop_ = true;
  for (auto& t : threads_) t.join();
}

int CpuHog::FromEnvironment() {
  const char* v = std::getenv("ZEROFARM_TEST_CPU_HOG");
  if (!v || !*v) return 0;
  const std::string s = v;
  if (s.find_first_not_of("0123456789") != std::string::npos || s.size() > 2) return 0;
  const int n = std::stoi(s);
  return n <= 64 ? n : 0;
}

}  // namespace zerofarm::test
