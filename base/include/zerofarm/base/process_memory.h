// What this process holds: resident memory, the C allocator's heap, open descriptors. For
// /metrics and the soak run, so a growing RSS can be told apart as live heap, heap the allocator
// keeps free, or something else (RocksDB memtables report themselves, store.h). Thread-safe.
#pragma once

#include <cstdint>

namespace zerofarm {

struct ProcessMemory {
  uint64_t resident_bytes = 0;  // VmRSS of /proc/self/status
  // glibc's mallinfo2: bytes handed out and not freed (arenas + mmapped chunks), and bytes the
  // allocator holds free in its arenas (not yet given back to the kernel).
  uint64_t heap_in_use_bytes = 0;
  uint64_t heap_free_bytes = 0;
  uint64_t open_fds = 0;  // entries of /proc/self/fd
};

// Reads the figures now. A figure that cannot be read is 0. mallinfo2 walks every arena under
// its lock: call it at scrape rates (seconds), not per request.
ProcessMemory ReadProcessMemory();

// For long-running servers (serve, proxy, node), once at start before threads exist: glibc's
// default lets each thread grow an arena of its own and raises the mmap threshold after a large
// block is freed, so buffers of several MiB (chunk blocks, cluster parts, segments) are later
// carved from arenas and their pages stay in the process after they are freed. A fixed threshold
// of 1 MiB serves every such buffer with mmap and returns it to the kernel when freed, and a cap
// of 4 arenas bounds what idle threads keep. Returns false if glibc refused a setting.
bool TuneAllocatorForServer();

}  // namespace zerofarm
