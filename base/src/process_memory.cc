// ReadProcessMemory, TuneAllocatorForServer (process_memory.h).
#include "zerofarm/base/process_memory.h"

#include <dirent.h>
#include <malloc.h>

#include <cstdio>
#include <cstring>

namespace zerofarm {
namespace {

uint64_t ResidentBytes() {
  std::FILE* f = std::fopen("/proc/self/status", "re");
  if (f == nullptr) return 0;
  char line[256];
  uint64_t kib = 0;
  while (std::fgets(line, sizeof line, f) != nullptr) {
    if (std::strncmp(line, "VmRSS:", 6) == 0) {
      unsigned long long v = 0;
      if (std::sscanf(line + 6, "%llu", &v) == 1) kib = v;
      break;
    }
  }
  std::fclose(f);
  return kib * 1024;
}

uint64_t OpenDescriptors() {
  DIR* d = ::opendir("/proc/self/fd");
  if (d == nullptr) return 0;
  uint64_t n = 0;
  while (const dirent* e = ::readdir(d)) {
    if (e->d_name[0] != '.') ++n;
  }
  ::closedir(d);
  return n > 0 ? n - 1 : 0;  // less the descriptor opendir itself holds
}

}  // namespace

ProcessMemory ReadProcessMemory() {
  ProcessMemory m;
  m.resident_bytes = ResidentBytes();
  const struct mallinfo2 info = ::mallinfo2();
  m.heap_in_use_bytes = info.uordblks + info.hblkhd;
  m.heap_free_bytes = info.fordblks;
  m.open_fds = OpenDescriptors();
  return m;
}

bool TuneAllocatorForServer() {
  const bool threshold = ::mallopt(M_MMAP_THRESHOLD, 1 << 20) == 1;
  const bool arenas = ::mallopt(M_ARENA_MAX, 4) == 1;
  return threshold && arenas;
}

}  // namespace zerofarm
