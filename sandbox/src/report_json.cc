// ValidationReport <-> JSON. Addresses are hex strings ("0x401000"); offsets, sizes and
// counts are numbers.
#include <charconv>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "zerofarm/sandbox/validator.h"

namespace zerofarm::sandbox {
namespace {

// Keys keep the order they are written in, so the verdict comes first.
using json = nlohmann::ordered_json;

std::string Hex(uint64_t v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

bool ParseHex(const std::string& s, uint64_t* out) {
  if (s.size() < 3 || s[0] != '0' || s[1] != 'x') return false;
  const char* end = s.data() + s.size();
  auto [ptr, ec] = std::from_chars(s.data() + 2, end, *out, 16);
  return ec == std::errc() && ptr == end;
}

void PutLocation(json& j, const std::optional<uint64_t>& vaddr,
                 const std::optional<uint64_t>& file_offset) {
  if (vaddr) j["vaddr"] = Hex(*vaddr);
  if (file_offset) j["file_offset"] = *file_offset;
}

// Reads optional "vaddr" / "file_offset"; throws json::exception on wrong types.
void GetLocation(const json& j, std::optional<uint64_t>* vaddr,
                 std::optional<uint64_t>* file_offset) {
  if (j.contains("vaddr")) {
    uint64_t v;
    if (!ParseHex(j.at("vaddr").get<std::string>(), &v)) {
      throw json::other_error::create(501, "bad vaddr", &j);
    }
    *vaddr = v;
  }
  if (j.contains("file_offset")) *file_offset = j.at("file_offset").get<uint64_t>();
}

json CountsToJson(const ValidationCounts& c) {
  return json{{"program_bytes", c.program_bytes},
              {"executable_bytes", c.executable_bytes},
              {"decoded_bytes", c.decoded_bytes},
              {"by_symbol_bytes", c.by_symbol_bytes},
              {"traversal_bytes", c.traversal_bytes},
              {"padding_bytes", c.padding_bytes},
              {"data_region_bytes", c.data_region_bytes},
              {"data_regions", c.data_regions},
              {"instructions", c.instructions},
              {"syscall_sites", c.syscall_sites},
              {"sized_functions", c.sized_functions},
              {"traversal_seeds", c.traversal_seeds},
              {"traversal_stops", c.traversal_stops},
              {"label_seeds", c.label_seeds},
              {"label_data", c.label_data}};
}

ValidationCounts CountsFromJson(const json& j) {
  ValidationCounts c;
  c.program_bytes = j.at("program_bytes").get<uint64_t>();
  c.executable_bytes = j.at("executable_bytes").get<uint64_t>();
  c.decoded_bytes = j.at("decoded_bytes").get<uint64_t>();
  c.by_symbol_bytes = j.at("by_symbol_bytes").get<uint64_t>();
  c.traversal_bytes = j.at("traversal_bytes").get<uint64_t>();
  c.padding_bytes = j.at("padding_bytes").get<uint64_t>();
  c.data_region_bytes = j.at("data_region_bytes").get<uint64_t>();
  c.data_regions = j.at("data_regions").get<uint64_t>();
  c.instructions = j.at("instructions").get<uint64_t>();
  c.syscall_sites = j.at("syscall_sites").get<uint64_t>();
  c.sized_functions = j.at("sized_functions").get<uint64_t>();
  c.traversal_seeds = j.at("traversal_seeds").get<uint64_t>();
  c.traversal_stops = j.at("traversal_stops").get<uint64_t>();
  c.label_seeds = j.value("label_seeds", uint64_t{0});
  c.label_data = j.value("label_data", uint64_t{0});
  return c;
}

ValidationReport FromJsonOrThrow(const json& j) {
  ValidationReport r;
  const json& validator = j.at("validator");
  r.validator_version = validator.at("version").get<int>();
  r.zydis_version = validator.at("zydis").get<std::string>();
  const std::string verdict = j.at("verdict").get<std::string>();
  if (verdict != "accepted" && verdict != "rejected") {
    throw json::other_error::create(501, "bad verdict", &j);
  }
  r.verdict = verdict == "accepted" ? Verdict::kAccepted : Verdict::kRejected;
  r.sha256 = j.at("sha256").get<std::string>();
  for (const json& e : j.at("reasons")) {
    Reason reason;
    reason.code = e.at("code").get<std::string>();
    reason.message = e.at("message").get<std::string>();
    GetLocation(e, &reason.vaddr, &reason.file_offset);
    reason.instruction = e.value("instruction", "");
    reason.bytes = e.value("bytes", "");
    reason.symbol = e.value("symbol", "");
    r.reasons.push_back(std::move(reason));
  }
  r.reasons_total = j.at("reasons_total").get<uint64_t>();
  for (const json& e : j.at("syscall_sites")) {
    CodeSite site;
    std::optional<uint64_t> vaddr;
    GetLocation(e, &vaddr, &site.file_offset);
    site.vaddr = vaddr.value_or(0);
    site.symbol = e.value("symbol", "");
    r.syscall_sites.push_back(std::move(site));
  }
  for (const json& e : j.at("data_regions")) {
    DataRegion region;
    std::optional<uint64_t> vaddr;
    GetLocation(e, &vaddr, &region.file_offset);
    region.vaddr = vaddr.value_or(0);
    region.size = e.at("size").get<uint64_t>();
    region.section = e.value("section", "");
    region.symbol = e.value("symbol", "");
    region.outside_segment = e.value("outside_segment", false);
    r.data_regions.push_back(std::move(region));
  }
  r.noted_instructions = j.at("noted_instructions").get<std::map<std::string, uint64_t>>();
  r.notes = j.at("notes").get<std::vector<std::string>>();
  r.counts = CountsFromJson(j.at("counts"));
  const json& timing = j.at("timing");
  r.timing.validate_ms = timing.at("validate_ms").get<double>();
  r.timing.total_ms = timing.at("total_ms").get<double>();
  r.timing.cache = timing.at("cache").get<std::string>();
  // A verdict must agree with its reasons, whatever the file says.
  if ((r.verdict == Verdict::kAccepted) != (r.reasons_total == 0)) {
    throw json::other_error::create(501, "verdict disagrees with reasons", &j);
  }
  return r;
}

}  // namespace

std::string ReportToJson(const ValidationReport& r) {
  json j;
  j["verdict"] = r.accepted() ? "accepted" : "rejected";
  j["sha256"] = r.sha256;
  j["validator"] = {{"version", r.validator_version}, {"zydis", r.zydis_version}};
  j["reasons_total"] = r.reasons_total;
  json reasons = json::array();
  for (const Reason& reason : r.reasons) {
    json e{{"code", reason.code}, {"message", reason.message}};
    PutLocation(e, reason.vaddr, reason.file_offset);
    if (!reason.instruction.empty()) e["instruction"] = reason.instruction;
    if (!reason.bytes.empty()) e["bytes"] = reason.bytes;
    if (!reason.symbol.empty()) e["symbol"] = reason.symbol;
    reasons.push_back(std::move(e));
  }
  j["reasons"] = std::move(reasons);
  j["counts"] = CountsToJson(r.counts);
  j["noted_instructions"] = r.noted_instructions;
  json sites = json::array();
  for (const CodeSite& site : r.syscall_sites) {
    json e;
    PutLocation(e, site.vaddr, site.file_offset);
    if (!site.symbol.empty()) e["symbol"] = site.symbol;
    sites.push_back(std::move(e));
  }
  j["syscall_sites"] = std::move(sites);
  j["syscall_sites_truncated"] = r.syscall_sites.size() < r.counts.syscall_sites;
  json regions = json::array();
  for (const DataRegion& region : r.data_regions) {
    json e;
    PutLocation(e, region.vaddr, region.file_offset);
    e["size"] = region.size;
    if (!region.section.empty()) e["section"] = region.section;
    if (!region.symbol.empty()) e["symbol"] = region.symbol;
    if (region.outside_segment) e["outside_segment"] = true;
    regions.push_back(std::move(e));
  }
  j["data_regions"] = std::move(regions);
  j["data_regions_truncated"] = r.data_regions.size() < r.counts.data_regions;
  j["notes"] = r.notes;
  j["timing"] = {{"validate_ms", r.timing.validate_ms},
                 {"total_ms", r.timing.total_ms},
                 {"cache", r.timing.cache}};
  // Strings from the program are sanitized before they get here; replace anything invalid.
  return j.dump(2, ' ', false, json::error_handler_t::replace);
}

Result<ValidationReport> ReportFromJson(std::string_view text) {
  const json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return Status::Error(ErrorCode::kBadReport, "not JSON");
  try {
    return FromJsonOrThrow(j);
  } catch (const json::exception& e) {
    return Status::Error(ErrorCode::kBadReport, e.what());
  }
}

}  // namespace zerofarm::sandbox
