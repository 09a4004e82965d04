// Fuzzes the streaming multipart/form-data reader. The input is a Content-Type line, then the
// body; the body is fed once whole and once in pieces whose sizes come from the input. Both
// runs must agree exactly (same file bytes, same filename, same outcome): a boundary split
// across two reads must never change what is stored.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "http_util.h"

namespace {

struct Run {
  zerofarm::Status status;
  std::string file;
  std::string filename;
  bool done = false;
};

template <class Split>
Run Feed(std::string_view content_type, std::string_view body, Split next_piece) {
  Run run;
  auto reader = zerofarm::api::MultipartReader::ForContentType(content_type);
  if (!reader) return run;
  auto sink = [&](std::string_view name, std::span<const std::byte> bytes) {
    run.filename = std::string(name);
    run.file.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    return zerofarm::Status::Ok();
  };
  while (!body.empty() && run.status.ok()) {
    const size_t n = std::min(body.size(), next_piece());
    run.status = reader->Feed(std::as_bytes(std::span(body.data(), n)), sink);
    body.remove_prefix(n);
  }
  run.done = reader->file_done();
  if (run.done) run.filename = reader->filename();
  return run;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  const size_t eol = in.find('\n');
  if (eol == std::string_view::npos) return 0;
  const std::string_view content_type = in.substr(0, eol);
  const std::string_view body = in.substr(eol + 1);
  const Run whole = Feed(content_type, body, [&] { return body.size(); });
  size_t i = 0;
  const Run pieces = Feed(content_type, body, [&] {
    const size_t n = 1 + static_cast<unsigned char>(body[i++ % body.size()]) % 97;
    return n;
  });
  // An error may come at a different piece, but not a different verdict or different bytes
  // before it.
  if (whole.status.ok() != pieces.status.ok()) __builtin_trap();
  if (whole.status.ok() &&
      (whole.file != pieces.file || whole.done != pieces.done || whole.filename != pieces.filename))
    __builtin_trap();
  return 0;
}
