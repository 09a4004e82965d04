// TenantObjects: the objects API's view of the store (PUT/GET/HEAD/DELETE/list under
// /v1/objects). Every store name it uses is made here, in one place:
//   record "objects/<tenant>/<container>/<name>"  (a metadata record: bytes, etag, time, data)
//   data   "objects-data/<tenant>/<container>/<version>"  (an object: the bytes themselves)
// No name of the video pipeline ("jobs/...", "videos/...") can be reached through it. An object
// is visible once its record points at its committed data: an overwrite writes new data under a
// fresh version, switches the record (one synced write), then deletes the old data, so a crash
// at any point leaves either the old or the new object whole, never a mix.
// Thread safety: safe for concurrent use; an ObjectUpload is used by one thread at a time and
// must not outlive its TenantObjects.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "zerofarm/base/status.h"
#include "zerofarm/storage/content_hash.h"
#include "zerofarm/storage/store.h"

namespace zerofarm::api {

// 1-64 of [A-Za-z0-9_.-], not "." or "..". Error "bad_container_name".
Status CheckContainerName(std::string_view container);
// 1-1024 bytes of valid UTF-8, no NUL, no leading "/", no "." or ".." segment.
// Error "bad_object_name".
Status CheckObjectName(std::string_view name);

// A stored static ELF is a program: validated when it is stored (sandbox/validator.h), the
// verdict kept in its record and the validator's whole report beside it.
struct ProgramVerdict {
  bool accepted = false;
  std::string reason;  // the first reason of a refusal: "<code>: <message>"
  std::string sha256;  // of the bytes validated, hex: a job runs exactly these bytes
};

struct ObjectRecord {
  std::string name;
  uint64_t bytes = 0;
  uint64_t hash = 0;                      // XXH64 (seed 0) of the content: the ETag
  int64_t modified = 0;                   // Unix seconds of the commit
  std::string data;                       // the store object holding the bytes
  std::optional<ProgramVerdict> program;  // set when the bytes are an ELF file
  std::string ETag() const;               // "\"<16 hex digits>\""
};

struct ObjectPage {
  std::vector<ObjectRecord> objects;
  std::optional<std::string> next_marker;  // the last name of this page when more follow
};

// Streams one object in; nothing is visible until Commit succeeds. Destroying it uncommitted
// abandons the bytes written so far.
class ObjectUpload {
 public:
  virtual ~ObjectUpload() = default;
  virtual Status Append(std::span<const std::byte> bytes) = 0;
  // Commits the data, then the record (replacing any object of the name); all synced.
  virtual Result<ObjectRecord> Commit() = 0;
};

class TenantObjects {
 public:
  explicit TenantObjects(storage::Store& store) : store_(store) {}

  // The names are checked by the caller (CheckContainerName, CheckObjectName).
  Result<std::unique_ptr<ObjectUpload>> Create(const std::string& tenant,
                                               const std::string& container,
                                               const std::string& name);
  // Errors: "not_found" when absent.
  Result<ObjectRecord> Stat(const std::string& tenant, const std::string& container,
                            const std::string& name);
  Result<std::unique_ptr<storage::ObjectReader>> Open(const ObjectRecord& record);
  // The validator's report (JSON) on a program object; "not_found" for other objects.
  Result<std::string> ValidationReport(const ObjectRecord& record);
  // A fresh store object for data of `container` (a job's output, before it is adopted).
  std::string NewDataName(const std::string& tenant, const std::string& container);
  // Makes the committed store object `data` (`bytes` long, ContentHash `hash`, named by
  // NewDataName for this container) the object `name`, replacing any older one.
  Result<ObjectRecord> Adopt(const std::string& tenant, const std::string& container,
                             const std::string& name, const std::string& data, uint64_t bytes,
                             uint64_t hash);
  // Removes a data object and the validation report kept with it.
  void DeleteData(const std::string& data);
  // Errors: "not_found" when absent.
  Status Delete(const std::string& tenant, const std::string& container, const std::string& name);
  // Names after `marker` that start with `prefix`, in byte order, at most `limit` of them.
  Result<ObjectPage> List(const std::string& tenant, const std::string& container,
                          const std::string& prefix, const std::string& marker, size_t limit);

 private:
  friend class ObjectUploadImpl;
  // Points the record at `rec` and deletes the data it pointed at before.
  Status Switch(const std::string& record_name, const ObjectRecord& rec);

  storage::Store& store_;
  std::mutex switch_mu_;  // record switches of overwrites, so no old data is left behind
};

}  // namespace zerofarm::api
