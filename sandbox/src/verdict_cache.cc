#include "zerofarm/sandbox/verdict_cache.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <system_error>
#include <tuple>
#include <unordered_map>
#include <utility>

#include "validate_internal.h"
#include "zerofarm/base/sha256.h"
#include "zerofarm/base/unique_fd.h"

namespace zerofarm::sandbox {
namespace {

// A cached report is a few kilobytes to a few megabytes; anything bigger is not one of ours.
constexpr off_t kMaxCacheFileBytes = 64 << 20;

double MillisecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
      .count();
}

// Refuses a directory that another user could write: whoever writes verdicts decides what runs.
Status CheckDirectory(const std::filesystem::path& dir) {
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) return ErrnoError("stat " + dir.string(), errno);
  if (!S_ISDIR(st.st_mode)) {
    return Status::Error(ErrorCode::kCacheDirUnsafe, dir.string() + " is not a directory");
  }
  if (st.st_uid != ::geteuid() || (st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    return Status::Error(ErrorCode::kCacheDirUnsafe,
                         dir.string() + " must be owned by this user and writable by no one else");
  }
  return Status::Ok();
}

Result<std::string> ReadSmallFile(const std::filesystem::path& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd.valid()) return ErrnoError("open " + path.string(), errno);
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return ErrnoError("fstat " + path.string(), errno);
  if (!S_ISREG(st.st_mode) || st.st_size > kMaxCacheFileBytes) {
    return Status::Error(ErrorCode::kBadReport, path.string() + " is not a cached report");
  }
  std::string text(static_cast<size_t>(st.st_size), '\0');
  size_t done = 0;
  while (done < text.size()) {
    Result<size_t> n = ReadSome(
        fd.get(), std::as_writable_bytes(std::span(text.data() + done, text.size() - done)));
    if (!n.ok()) return n.status();
    if (*n == 0) break;
    done += *n;
  }
  text.resize(done);
  return text;
}

// Writes `text` to `path` atomically: a synced temporary file renamed over it.
Status WriteFileAtomically(const std::filesystem::path& path, const std::string& text) {
  static std::atomic<uint64_t> counter{0};
  const std::filesystem::path tmp =
      path.string() + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(++counter);
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!fd.valid()) return ErrnoError("create " + tmp.string(), errno);
  Status s = WriteAll(fd.get(), std::as_bytes(std::span(text.data(), text.size())));
  if (s.ok() && ::fsync(fd.get()) != 0) s = ErrnoError("fsync " + tmp.string(), errno);
  fd.Close();
  if (s.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) {
    s = ErrnoError("rename " + tmp.string(), errno);
  }
  if (!s.ok()) ::unlink(tmp.c_str());
  return s;
}

class VerdictCacheImpl final : public VerdictCache {
 public:
  explicit VerdictCacheImpl(CacheOptions options) : options_(std::move(options)) {}

  Result<ValidationReport> Validate(std::span<const std::byte> program,
                                    const ValidatorOptions& options) override {
    const auto start = std::chrono::steady_clock::now();
    std::string sha256 = Sha256Hex(program);
    if (sha256.empty()) return Status::Error(ErrorCode::kInternal, "SHA-256 failed");
    const std::string key = Key(sha256, options);

    if (std::optional<ValidationReport> hit = LookUpMemory(key)) {
      return Finish(std::move(*hit), "memory", start);
    }
    if (std::optional<ValidationReport> hit = LookUpDisk(key, sha256)) {
      Remember(key, *hit);
      std::lock_guard lock(mu_);
      ++stats_.disk_hits;
      return Finish(std::move(*hit), "disk", start);
    }

    Result<ValidationReport> fresh = ValidateWithDigest(program, options, sha256);
    if (!fresh.ok()) return fresh.status();
    ValidationReport report = std::move(fresh).value();
    report.timing.cache = "miss";
    {
      std::lock_guard lock(mu_);
      ++stats_.misses;
    }
    if (!options_.directory.empty()) {
      const Status written = WriteFileAtomically(Path(key), ReportToJson(report));
      if (!written.ok()) report.notes.push_back("verdict not cached on disk: " + written.message());
    }
    Remember(key, report);
    return Finish(std::move(report), "miss", start);
  }

  Result<ValidationReport> ValidateSealed(const SealedProgram& program,
                                          const ValidatorOptions& options) override {
    const auto start = std::chrono::steady_clock::now();
    struct stat st {};
    if (::fstat(program.fd(), &st) != 0) return ErrnoError("fstat of a sealed program", errno);
    constexpr int kSeals = F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;
    const int seals = ::fcntl(program.fd(), F_GET_SEALS);
    if (seals < 0 || (seals & kSeals) != kSeals ||
        static_cast<uint64_t>(st.st_size) != program.bytes().size())
      return Validate(program.bytes(), options);  // not provably immutable: by content
    SealedKey key{st.st_dev, st.st_ino, options.Fingerprint()};
    {
      std::lock_guard lock(mu_);
      if (auto it = sealed_.find(key); it != sealed_.end()) {
        ++stats_.sealed_hits;
        return Finish(it->second.report, "sealed", start);
      }
    }
    Result<ValidationReport> report = Validate(program.bytes(), options);
    if (!report.ok()) return report;
    // The pin keeps the inode alive, so (st_dev, st_ino) names these bytes while cached.
    UniqueFd pin(::fcntl(program.fd(), F_DUPFD_CLOEXEC, 0));
    if (pin.valid()) {
      std::lock_guard lock(mu_);
      if (sealed_.emplace(key, SealedEntry{std::move(pin), *report}).second)
        sealed_order_.push_back(key);
      while (sealed_order_.size() > kMaxSealedEntries) {
        sealed_.erase(sealed_order_.front());
        sealed_order_.pop_front();
      }
    }
    return report;
  }

  Stats stats() const override {
    std::lock_guard lock(mu_);
    return stats_;
  }

 private:
  // Everything a verdict depends on besides the bytes.
  static std::string Key(const std::string& sha256, const ValidatorOptions& options) {
    const std::string fingerprint = options.Fingerprint();
    const std::string options_hash =
        Sha256Hex(std::as_bytes(std::span(fingerprint.data(), fingerprint.size()))).substr(0, 16);
    return sha256 + "-v" + std::to_string(kValidatorVersion) + "-zydis" + ZydisVersionString() +
           "-" + options_hash;
  }

  std::filesystem::path Path(const std::string& key) const {
    return options_.directory / (key + ".json");
  }

  std::optional<ValidationReport> LookUpMemory(const std::string& key) {
    std::lock_guard lock(mu_);
    auto it = memory_.find(key);
    if (it == memory_.end()) return std::nullopt;
    ++stats_.memory_hits;
    return it->second;
  }

  std::optional<ValidationReport> LookUpDisk(const std::string& key, const std::string& sha256) {
    if (options_.directory.empty()) return std::nullopt;
    Result<std::string> text = ReadSmallFile(Path(key));
    if (!text.ok()) return std::nullopt;
    Result<ValidationReport> report = ReportFromJson(*text);
    // The file must be a report about these very bytes, from this validator.
    if (!report.ok() || report->sha256 != sha256 ||
        report->validator_version != kValidatorVersion ||
        report->zydis_version != ZydisVersionString()) {
      return std::nullopt;
    }
    return std::move(report).value();
  }

  void Remember(const std::string& key, const ValidationReport& report) {
    std::lock_guard lock(mu_);
    if (options_.max_memory_entries == 0) return;
    if (memory_.emplace(key, report).second) order_.push_back(key);
    while (order_.size() > options_.max_memory_entries) {
      memory_.erase(order_.front());
      order_.pop_front();
    }
  }

  static ValidationReport Finish(ValidationReport report, const char* cache,
                                 std::chrono::steady_clock::time_point start) {
    report.timing.cache = cache;
    report.timing.total_ms = MillisecondsSince(start);
    return report;
  }

  // A sealed memfd this cache validated: its identity and the options, pinned by a duplicate.
  struct SealedKey {
    dev_t dev;
    ino_t ino;
    std::string options;
    bool operator<(const SealedKey& o) const {
      return std::tie(dev, ino, options) < std::tie(o.dev, o.ino, o.options);
    }
  };
  struct SealedEntry {
    UniqueFd pin;
    ValidationReport report;
  };
  static constexpr size_t kMaxSealedEntries = 64;

  const CacheOptions options_;
  mutable std::mutex mu_;
  std::map<SealedKey, SealedEntry> sealed_;                   // guarded by mu_
  std::deque<SealedKey> sealed_order_;                        // insertion order, for eviction
  std::unordered_map<std::string, ValidationReport> memory_;  // guarded by mu_
  std::deque<std::string> order_;                             // insertion order, for eviction
  Stats stats_;                                               // guarded by mu_
};

}  // namespace

Result<std::unique_ptr<VerdictCache>> VerdictCache::Open(const CacheOptions& options) {
  if (!options.directory.empty()) {
    std::error_code ec;
    if (!std::filesystem::exists(options.directory, ec)) {
      std::filesystem::create_directories(options.directory, ec);
      if (ec) {
        return Status::Error(ErrorCode::kIoError,
                             "create " + options.directory.string() + ": " + ec.message());
      }
      std::filesystem::permissions(options.directory, std::filesystem::perms::owner_all, ec);
      if (ec) {
        return Status::Error(ErrorCode::kIoError,
                             "chmod " + options.directory.string() + ": " + ec.message());
      }
    }
    ZF_RETURN_IF_ERROR(CheckDirectory(options.directory));
  }
  return std::unique_ptr<VerdictCache>(new VerdictCacheImpl(options));
}

}  // namespace zerofarm::sandbox
