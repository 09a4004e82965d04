// Fuzz target: the node protocol's decoder, which every storage node runs on every message a
// peer sends (and every client on every reply). The input is cut into frames at each "\n--\n";
// the decoders must return a value or a Status, never crash, throw or recurse without bound.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "zerofarm/storage/node_protocol.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  std::vector<std::string_view> frames;
  size_t start = 0;
  while (frames.size() < 8) {
    const size_t cut = bytes.find("\n--\n", start);
    frames.push_back(bytes.substr(start, cut == std::string_view::npos ? cut : cut - start));
    if (cut == std::string_view::npos) break;
    start = cut + 4;
  }
  // As sent: the magic first. Also as read raw, so the magic check itself is exercised.
  std::vector<std::string_view> with_magic = {zerofarm::storage::kProtocolMagic};
  with_magic.insert(with_magic.end(), frames.begin(), frames.end());
  for (const auto* f : {&frames, &with_magic}) {
    auto request = zerofarm::storage::DecodeRequest(*f);
    if (request.ok()) {
      // What decodes must encode again and decode to the same request.
      const auto encoded = zerofarm::storage::EncodeRequest(*request);
      const std::vector<std::string_view> views(encoded.begin(), encoded.end());
      auto again = zerofarm::storage::DecodeRequest(views);
      if (!again.ok() || again->op != request->op || again->name != request->name ||
          again->ts != request->ts ||
          (request->op == zerofarm::storage::Op::kRunTask && again->task != request->task) ||
          (request->op == zerofarm::storage::Op::kList && again->partition != request->partition))
        __builtin_trap();
      if (!request->prefix.empty()) (void)zerofarm::storage::CheckDeletePrefix(request->prefix);
    }
    auto reply = zerofarm::storage::DecodeReply(*f);
    if (reply.ok()) (void)zerofarm::storage::EncodeReply(*reply);
    (void)zerofarm::storage::PeekRequestId(*f);
  }
  return 0;
}
