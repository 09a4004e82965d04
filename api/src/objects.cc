// TenantObjects (objects.h).
#include "objects.h"

#include <algorithm>
#include <ctime>
#include <nlohmann/json.hpp>

#include "http_util.h"
#include "zerofarm/base/hex.h"
#include "zerofarm/sandbox/sealed_program.h"
#include "zerofarm/sandbox/validator.h"

namespace zerofarm::api {
namespace {

using json = nlohmann::json;

constexpr size_t kMaxContainerBytes = 64;
constexpr size_t kMaxNameBytes = 1024;

std::string RecordPrefix(const std::string& tenant, const std::string& container) {
  return "objects/" + tenant + "/" + container + "/";
}

// A fresh version for an object's data: 64 random bits, so an overwrite never writes over the
// bytes the current record points at.
std::string DataName(const std::string& tenant, const std::string& container) {
  return "objects-data/" + tenant + "/" + container + "/" + RandomHex(8);
}

// Where the validator's report on a program's data is kept (a metadata record).
std::string ReportKey(const std::string& data) { return "objects-validation/" + data; }

std::string EncodeRecord(const ObjectRecord& r) {
  json j{{"bytes", r.bytes},
         {"hash", storage::ContentHashHex(r.hash)},
         {"modified", r.modified},
         {"data", r.data}};
  if (r.program)
    j["program"] = {{"verdict", r.program->accepted ? "accepted" : "rejected"},
                    {"reason", r.program->reason},
                    {"sha256", r.program->sha256}};
  return j.dump();
}

Result<ObjectRecord> DecodeRecord(std::string name, const std::string& value) {
  json j = json::parse(value, nullptr, false);
  std::optional<uint64_t> hash;
  if (j.is_object() && j.contains("hash") && j["hash"].is_string())
    hash = storage::ParseContentHashHex(j["hash"].get<std::string>());
  if (!hash || !j.contains("bytes") || !j["bytes"].is_number_unsigned() || !j.contains("data") ||
      !j["data"].is_string())
    return Status::Error(ErrorCode::kCorrupt, "the record of object " + name + " is unreadable");
  ObjectRecord r;
  r.name = std::move(name);
  r.bytes = j["bytes"].get<uint64_t>();
  r.hash = *hash;
  r.modified = j.value("modified", int64_t{0});
  r.data = j["data"].get<std::string>();
  if (j.contains("program") && j["program"].is_object()) {
    const json& p = j["program"];
    r.program = ProgramVerdict{p.value("verdict", "") == "accepted", p.value("reason", ""),
                               p.value("sha256", "")};
  }
  return r;
}

}  // namespace

Status CheckContainerName(std::string_view c) {
  const bool chars_ok = std::all_of(c.begin(), c.end(), [](char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '_' || ch == '.' || ch == '-';
  });
  if (c.empty() || c.size() > kMaxContainerBytes || !chars_ok || c == "." || c == "..")
    return Status::Error(ErrorCode::kBadContainerName,
                         "a container name is 1-64 of [A-Za-z0-9_.-], not \".\" or \"..\"");
  return Status::Ok();
}

Status CheckObjectName(std::string_view name) {
  auto bad = [](const std::string& why) {
    return Status::Error(ErrorCode::kBadObjectName, "bad object name: " + why);
  };
  if (name.empty() || name.size() > kMaxNameBytes) return bad("it is 1-1024 bytes");
  if (!IsValidUtf8(name)) return bad("it is not valid UTF-8");
  if (name.find('\0') != std::string_view::npos) return bad("it holds a NUL byte");
  if (name.front() == '/') return bad("it starts with \"/\"");
  size_t start = 0;
  while (true) {
    const size_t slash = name.find('/', start);
    const std::string_view seg = name.substr(start, slash - start);
    if (seg == "." || seg == "..") return bad("it has a \".\" or \"..\" segment");
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return Status::Ok();
}

std::string ObjectRecord::ETag() const { return "\"" + storage::ContentHashHex(hash) + "\""; }

class ObjectUploadImpl final : public ObjectUpload {
 public:
  ObjectUploadImpl(TenantObjects& owner, std::string record_name, std::string data,
                   std::unique_ptr<storage::ObjectWriter> writer)
      : owner_(owner),
        record_name_(std::move(record_name)),
        data_(std::move(data)),
        writer_(std::move(writer)) {}

  Status Append(std::span<const std::byte> bytes) override {
    hash_.Update(bytes);
    for (size_t i = 0; i < bytes.size() && head_.size() < 4; ++i)
      head_.push_back(static_cast<char>(bytes[i]));
    return writer_->Append(bytes);
  }

  Result<ObjectRecord> Commit() override {
    ZF_RETURN_IF_ERROR(writer_->Commit());
    ObjectRecord rec;
    rec.name = record_name_;
    rec.bytes = writer_->size();
    rec.hash = hash_.value();
    rec.modified = static_cast<int64_t>(std::time(nullptr));
    rec.data = data_;
    Status s = head_ == "\x7f"
                        "ELF"
                   ? ValidateProgram(&rec)
                   : Status::Ok();
    if (s.ok()) s = owner_.Switch(record_name_, rec);
    if (!s.ok()) {
      owner_.DeleteData(data_);  // committed but never visible
      return s;
    }
    return rec;
  }

 private:
  // Validates the stored bytes as a program and keeps the verdict and the report.
  Status ValidateProgram(ObjectRecord* rec) {
    ProgramVerdict verdict;
    std::string report_json;
    if (rec->bytes > sandbox::kDefaultMaxProgramBytes) {
      verdict.reason = "too_large: a program is at most " +
                       std::to_string(sandbox::kDefaultMaxProgramBytes >> 20) + " MiB";
    } else {
      auto bytes = owner_.store_.GetObject(data_);
      if (!bytes.ok()) return bytes.status();
      auto report = sandbox::Validate(std::as_bytes(std::span(bytes->data(), bytes->size())));
      if (!report.ok()) return report.status().WithContext("validating the program");
      verdict.accepted = report->accepted();
      verdict.sha256 = report->sha256;
      if (!report->reasons.empty())
        verdict.reason = report->reasons.front().code + ": " + report->reasons.front().message;
      report_json = sandbox::ReportToJson(*report);
    }
    if (!report_json.empty())
      ZF_RETURN_IF_ERROR(owner_.store_.PutMeta(ReportKey(data_), report_json));
    rec->program = std::move(verdict);
    return Status::Ok();
  }

 public:
 private:
  TenantObjects& owner_;
  std::string record_name_;
  std::string data_;
  std::unique_ptr<storage::ObjectWriter> writer_;
  storage::ContentHash hash_;
  std::string head_;  // the first 4 bytes: "\x7fELF" makes a program
};

Result<std::unique_ptr<ObjectUpload>> TenantObjects::Create(const std::string& tenant,
                                                            const std::string& container,
                                                            const std::string& name) {
  std::string data = DataName(tenant, container);
  auto writer = store_.CreateObject(data);
  if (!writer.ok()) return writer.status();
  return std::unique_ptr<ObjectUpload>(std::make_unique<ObjectUploadImpl>(
      *this, RecordPrefix(tenant, container) + name, std::move(data), std::move(*writer)));
}

Status TenantObjects::Switch(const std::string& record_name, const ObjectRecord& rec) {
  std::optional<std::string> old_data;
  {
    std::lock_guard lock(switch_mu_);
    auto old = store_.GetMeta(record_name);
    if (!old.ok()) return old.status();
    ZF_RETURN_IF_ERROR(store_.PutMeta(record_name, EncodeRecord(rec)));
    if (*old)
      if (auto prev = DecodeRecord(record_name, **old); prev.ok() && prev->data != rec.data)
        old_data = prev->data;
  }
  if (old_data) DeleteData(*old_data);  // the new object is already visible
  return Status::Ok();
}

std::string TenantObjects::NewDataName(const std::string& tenant, const std::string& container) {
  return DataName(tenant, container);
}

Result<ObjectRecord> TenantObjects::Adopt(const std::string& tenant, const std::string& container,
                                          const std::string& name, const std::string& data,
                                          uint64_t bytes, uint64_t hash) {
  const std::string own = "objects-data/" + tenant + "/" + container + "/";
  if (!data.starts_with(own) || data.find('/', own.size()) != std::string::npos)
    return Status::Error(ErrorCode::kInvalidArgument, "data of another container");
  ObjectRecord rec;
  rec.name = name;
  rec.bytes = bytes;
  rec.hash = hash;
  rec.modified = static_cast<int64_t>(std::time(nullptr));
  rec.data = data;
  ZF_RETURN_IF_ERROR(Switch(RecordPrefix(tenant, container) + name, rec));
  return rec;
}

void TenantObjects::DeleteData(const std::string& data) {
  (void)store_.DeleteObject(data);
  (void)store_.DeleteMeta(ReportKey(data));
}

Result<std::string> TenantObjects::ValidationReport(const ObjectRecord& record) {
  if (!record.program)
    return Status::Error(ErrorCode::kNotFound, "the object " + record.name + " is not a program");
  auto report = store_.GetMeta(ReportKey(record.data));
  if (!report.ok()) return report.status();
  if (!*report)
    return Status::Error(ErrorCode::kNotFound, "no validation report is kept for " + record.name);
  return std::move(**report);
}

Result<ObjectRecord> TenantObjects::Stat(const std::string& tenant, const std::string& container,
                                         const std::string& name) {
  auto value = store_.GetMeta(RecordPrefix(tenant, container) + name);
  if (!value.ok()) return value.status();
  if (!*value) return Status::Error(ErrorCode::kNotFound, "no object " + container + "/" + name);
  return DecodeRecord(name, **value);
}

Result<std::unique_ptr<storage::ObjectReader>> TenantObjects::Open(const ObjectRecord& record) {
  return store_.OpenObject(record.data);
}

Status TenantObjects::Delete(const std::string& tenant, const std::string& container,
                             const std::string& name) {
  const std::string record_name = RecordPrefix(tenant, container) + name;
  std::optional<std::string> value;
  {
    std::lock_guard lock(switch_mu_);
    auto found = store_.GetMeta(record_name);
    if (!found.ok()) return found.status();
    if (!*found) return Status::Error(ErrorCode::kNotFound, "no object " + container + "/" + name);
    ZF_RETURN_IF_ERROR(store_.DeleteMeta(record_name));
    value = std::move(*found);
  }
  if (auto rec = DecodeRecord(name, *value); rec.ok()) DeleteData(rec->data);
  return Status::Ok();
}

Result<ObjectPage> TenantObjects::List(const std::string& tenant, const std::string& container,
                                       const std::string& prefix, const std::string& marker,
                                       size_t limit) {
  const std::string base = RecordPrefix(tenant, container);
  auto records = store_.ListMeta(base + prefix);
  if (!records.ok()) return records.status();
  ObjectPage page;
  for (const auto& [key, value] : *records) {
    std::string name = key.substr(base.size());
    if (!marker.empty() && name <= marker) continue;
    if (page.objects.size() == limit) {
      page.next_marker = page.objects.back().name;
      break;
    }
    auto rec = DecodeRecord(std::move(name), value);
    if (!rec.ok()) return rec.status();
    page.objects.push_back(std::move(*rec));
  }
  return page;
}

}  // namespace zerofarm::api
