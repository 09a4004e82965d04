// TokenStore (tokens.h).
#include "zerofarm/api/tokens.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <ctime>
#include <fstream>
#include <sstream>

#include "zerofarm/base/hex.h"
#include "zerofarm/base/sha256.h"
#include "zerofarm/base/unique_fd.h"

namespace zerofarm::api {

bool IsTenantName(std::string_view name) {
  return !name.empty() && name.size() <= 64 && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
  });
}

Result<std::string> TokenStore::Create(const std::string& tenant) {
  if (!IsTenantName(tenant))
    return Status::Error(ErrorCode::kInvalidArgument, "a tenant name is 1-64 of [A-Za-z0-9._-]");
  const std::string token = "zf_" + RandomHex(32);
  char when[32];
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  std::strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
  const std::string line = Sha256Hex(token) + "\t" + tenant + "\t" + when + "\n";
  std::error_code ec;
  std::filesystem::create_directories(file_.parent_path(), ec);
  UniqueFd fd(::open(file_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
  if (!fd.valid()) return ErrnoError("open " + file_.string(), errno);
  ZF_RETURN_IF_ERROR(WriteAll(fd.get(), std::as_bytes(std::span(line.data(), line.size()))));
  if (::fsync(fd.get()) != 0) return ErrnoError("fsync " + file_.string(), errno);
  return token;
}

Status TokenStore::ReloadIfChanged() {
  struct stat st {};
  if (::stat(file_.c_str(), &st) != 0) {
    if (errno == ENOENT) {
      tenants_.clear();
      loaded_mtime_ = -1;
      return Status::Ok();
    }
    return ErrnoError("stat " + file_.string(), errno);
  }
  const int64_t mtime = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  if (mtime == loaded_mtime_ && static_cast<uint64_t>(st.st_size) == loaded_size_)
    return Status::Ok();
  std::ifstream in(file_);
  if (!in) return Status::Error(ErrorCode::kIoError, "cannot read " + file_.string());
  std::unordered_map<std::string, std::string> fresh;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string hash, tenant;
    if (std::getline(fields, hash, '\t') && std::getline(fields, tenant, '\t') &&
        hash.size() == 64 && IsTenantName(tenant))
      fresh[hash] = tenant;
  }
  tenants_ = std::move(fresh);
  loaded_mtime_ = mtime;
  loaded_size_ = static_cast<uint64_t>(st.st_size);
  return Status::Ok();
}

std::optional<std::string> TokenStore::Lookup(std::string_view token) {
  if (token.empty() || token.size() > 256) return std::nullopt;
  const std::string hash = Sha256Hex(token);
  std::lock_guard lock(mu_);
  // A known token is answered from memory when the file was checked less than a second ago (a
  // line removed by hand stops working within a second); an unknown one always checks the file,
  // so a token just made by `zerofarm token create` works at once.
  const auto now = std::chrono::steady_clock::now();
  auto it = tenants_.find(hash);
  if (it != tenants_.end() && now - checked_ < std::chrono::seconds(1)) return it->second;
  if (!ReloadIfChanged().ok()) return std::nullopt;
  checked_ = now;
  it = tenants_.find(hash);
  if (it == tenants_.end()) return std::nullopt;
  return it->second;
}

Result<size_t> TokenStore::Count() {
  std::lock_guard lock(mu_);
  ZF_RETURN_IF_ERROR(ReloadIfChanged());
  return tenants_.size();
}

}  // namespace zerofarm::api
