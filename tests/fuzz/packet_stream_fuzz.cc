// Fuzz target: the packet-stream reader, the parser the worker runs on every chunk it is fed.
#include <cstddef>
#include <cstdint>
#include <string>

#include "zerofarm/transcode/packet_stream.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  size_t cursor = 0;
  auto reader = zerofarm::transcode::ReaderOverString(bytes, &cursor);
  if (!reader.ReadHeader().ok()) return 0;
  for (int i = 0; i < 100000; ++i) {
    auto p = reader.Next();
    if (!p.ok() || !p->has_value()) break;
  }
  return 0;
}
