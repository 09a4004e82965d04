// TenantObjects (objects.h).
#include "objects.h"

#include <algorithm>
#include <ctime>
#include <nlohmann/json.hpp>

#include "http_util.h"
#include "zerofarm/base/hex.h"

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

std::string EncodeRecord(const ObjectRecord& r) {
  return json{{"bytes", r.bytes},
              {"hash", storage::ContentHashHex(r.hash)},
              {"modified", r.modified},
              {"data", r.data}}
      .dump();
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
    if (Status s = owner_.Switch(record_name_, rec); !s.ok()) {
      (void)owner_.store_.DeleteObject(data_);  // committed but never visible
      return s;
    }
    return rec;
  }

 private:
  TenantObjects& owner_;
  std::string record_name_;
  std::string data_;
  std::unique_ptr<storage::ObjectWriter> writer_;
  storage::ContentHash hash_;
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
  if (old_data) (void)store_.DeleteObject(*old_data);  // the new object is already visible
  return Status::Ok();
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
  if (auto rec = DecodeRecord(name, *value); rec.ok()) (void)store_.DeleteObject(rec->data);
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
