// libFuzzer target: the whole validator on arbitrary bytes, and its JSON report round trip.
// Validate must give a report (accepted or rejected) for any input; the report must survive
// ReportToJson/ReportFromJson with the same verdict.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "zerofarm/sandbox/validator.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace zerofarm::sandbox;
  const std::span<const std::byte> bytes = std::as_bytes(std::span(data, size));
  zerofarm::Result<ValidationReport> report = Validate(bytes);
  if (!report.ok()) std::abort();
  zerofarm::Result<ValidationReport> back = ReportFromJson(ReportToJson(*report));
  if (!back.ok() || back->verdict != report->verdict || back->sha256 != report->sha256) {
    std::abort();
  }
  return 0;
}
