// zerofarm-store-bench: synced chunk write and read throughput of the Store, with and without
// RocksDB blob files, against plain files (write + fsync), side by side in one run.
//
// For each repetition, value size and backend (in an order rotated per repetition), a fresh
// directory goes through three phases:
//   fill   `total` bytes as values of that size, each streamed in 1 MiB appends and synced
//          before the next starts; then the backend is closed and reopened;
//   read   every value, in 1 MiB reads (warm: the page cache cannot be dropped);
//   churn  another `total` bytes of new values, deleting the oldest value after each write so
//          the live data stays at `total` (chunks of finished jobs making way for new ones);
//          then closed and reopened.
// Reported: median MB/s (10^6 bytes/s) with the min-max spread, and the bytes the process wrote
// to disk per byte written by the caller (from /proc/self/io, through the reopen, so the WAL,
// flushes, compactions and blob garbage collection all count).
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <vector>

#include "zerofarm/base/status.h"
#include "zerofarm/base/unique_fd.h"
#include "zerofarm/storage/store.h"

namespace zerofarm::bench {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr size_t kMiB = 1 << 20;
constexpr size_t kIoSize = kMiB;  // append and read size, as an upload or a worker would stream

struct Config {
  fs::path dir;  // parent of the per-run directories; a fresh temp dir when empty
  size_t total_mib = 256;
  int reps = 5;
  std::vector<size_t> sizes_mib = {1, 4, 16};
  fs::path json;  // also write the medians there as JSON (for bench/harness) when not empty
};

// --- Backends: the same three operations over plain files and over the Store. ---

class Backend {
 public:
  virtual ~Backend() = default;
  virtual Status Write(const std::string& name, std::string_view value) = 0;
  // Closes and reopens, so reads do not come from writer-side state.
  virtual Status Reopen() = 0;
  // Reads a whole value; returns a byte sum so the reads cannot be optimized away.
  virtual Result<uint64_t> Read(const std::string& name, std::span<std::byte> buffer) = 0;
  // Deletes a value, durably.
  virtual Status Delete(const std::string& name) = 0;
};

uint64_t Sum(std::span<const std::byte> bytes) {
  uint64_t sum = 0;
  for (size_t i = 0; i < bytes.size(); i += 4096) sum += static_cast<uint8_t>(bytes[i]);
  return sum;
}

// One file per value: write in kIoSize pieces, fsync the file, fsync the directory (a new file
// is not durable until its directory entry is).
class FileBackend final : public Backend {
 public:
  static Result<std::unique_ptr<Backend>> Open(const fs::path& dir) {
    std::unique_ptr<FileBackend> backend(new FileBackend(dir));
    backend->dir_fd_ = UniqueFd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!backend->dir_fd_.valid()) return ErrnoError("open " + dir.string(), errno);
    return std::unique_ptr<Backend>(std::move(backend));
  }

  Status Write(const std::string& name, std::string_view value) override {
    fs::path path = dir_ / name;
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!fd.valid()) return ErrnoError("open " + path.string(), errno);
    auto bytes = std::as_bytes(std::span(value.data(), value.size()));
    for (size_t at = 0; at < bytes.size(); at += kIoSize) {
      ZF_RETURN_IF_ERROR(
          WriteAll(fd.get(), bytes.subspan(at, std::min(kIoSize, bytes.size() - at))));
    }
    if (::fsync(fd.get()) != 0) return ErrnoError("fsync " + path.string(), errno);
    if (::fsync(dir_fd_.get()) != 0) return ErrnoError("fsync " + dir_.string(), errno);
    return Status::Ok();
  }

  Status Reopen() override { return Status::Ok(); }

  Status Delete(const std::string& name) override {
    fs::path path = dir_ / name;
    if (::unlink(path.c_str()) != 0) return ErrnoError("unlink " + path.string(), errno);
    if (::fsync(dir_fd_.get()) != 0) return ErrnoError("fsync " + dir_.string(), errno);
    return Status::Ok();
  }

  Result<uint64_t> Read(const std::string& name, std::span<std::byte> buffer) override {
    fs::path path = dir_ / name;
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) return ErrnoError("open " + path.string(), errno);
    uint64_t sum = 0;
    for (;;) {
      Result<size_t> n = ReadSome(fd.get(), buffer);
      if (!n.ok()) return n.status();
      if (*n == 0) return sum;
      sum += Sum(buffer.first(*n));
    }
  }

 private:
  explicit FileBackend(fs::path dir) : dir_(std::move(dir)) {}
  fs::path dir_;
  UniqueFd dir_fd_;
};

class StoreBackend final : public Backend {
 public:
  static Result<std::unique_ptr<Backend>> Open(const fs::path& dir, bool blob_files) {
    std::unique_ptr<StoreBackend> backend(new StoreBackend());
    backend->options_.dir = dir;
    backend->options_.sync = true;
    backend->options_.blob_files = blob_files;
    ZF_RETURN_IF_ERROR(backend->Reopen());
    return std::unique_ptr<Backend>(std::move(backend));
  }

  Status Write(const std::string& name, std::string_view value) override {
    Result<std::unique_ptr<storage::ObjectWriter>> writer = store_->CreateObject(name);
    if (!writer.ok()) return writer.status();
    for (size_t at = 0; at < value.size(); at += kIoSize) {
      ZF_RETURN_IF_ERROR((*writer)->Append(value.substr(at, kIoSize)));
    }
    return (*writer)->Commit();
  }

  Status Reopen() override {
    store_.reset();
    Result<std::unique_ptr<storage::Store>> store = storage::Store::Open(options_);
    if (!store.ok()) return store.status();
    store_ = std::move(*store);
    return Status::Ok();
  }

  Status Delete(const std::string& name) override { return store_->DeleteObject(name); }

  Result<uint64_t> Read(const std::string& name, std::span<std::byte> buffer) override {
    Result<std::unique_ptr<storage::ObjectReader>> reader = store_->OpenObject(name);
    if (!reader.ok()) return reader.status();
    uint64_t sum = 0;
    for (;;) {
      Result<size_t> n = (*reader)->Read(buffer);
      if (!n.ok()) return n.status();
      if (*n == 0) return sum;
      sum += Sum(buffer.first(*n));
    }
  }

 private:
  storage::Options options_;
  std::unique_ptr<storage::Store> store_;
};

// --- Measurement. ---

enum class Kind { kFiles, kStoreBlob, kStoreNoBlob };
constexpr Kind kKinds[] = {Kind::kFiles, Kind::kStoreBlob, Kind::kStoreNoBlob};

const char* KindName(Kind kind) {
  switch (kind) {
    case Kind::kFiles:
      return "files (write+fsync)";
    case Kind::kStoreBlob:
      return "Store, blob_files=true";
    case Kind::kStoreNoBlob:
      return "Store, blob_files=false";
  }
  return "?";
}

Result<std::unique_ptr<Backend>> OpenBackend(Kind kind, const fs::path& dir) {
  if (kind == Kind::kFiles) return FileBackend::Open(dir);
  return StoreBackend::Open(dir, kind == Kind::kStoreBlob);
}

// Bytes this process has caused to be written to storage so far.
uint64_t ProcessWriteBytes() {
  std::ifstream io("/proc/self/io");
  std::string field;
  uint64_t value = 0;
  while (io >> field >> value) {
    if (field == "write_bytes:") return value;
  }
  return 0;
}

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

struct Sample {
  double write_mbps = 0;
  double read_mbps = 0;
  double churn_mbps = 0;
  double write_disk_per_byte = 0;
  double churn_disk_per_byte = 0;
};

std::string ValueName(size_t i) { return "chunk-" + std::to_string(i); }

Result<Sample> RunCell(Kind kind, size_t value_size, size_t count, const fs::path& dir) {
  std::error_code ec;
  fs::remove_all(dir, ec);
  if (!fs::create_directories(dir, ec)) {
    return Status::Error(ErrorCode::kIoError, "create " + dir.string() + ": " + ec.message());
  }
  std::string value(value_size, '\0');
  std::mt19937_64 rng(value_size);
  for (char& c : value) c = static_cast<char>(rng());
  std::vector<std::byte> buffer(kIoSize);
  const double bytes = static_cast<double>(value_size) * static_cast<double>(count);
  Sample sample;

  // Fill.
  uint64_t disk_before = ProcessWriteBytes();
  Result<std::unique_ptr<Backend>> backend = OpenBackend(kind, dir);
  if (!backend.ok()) return backend.status();
  Clock::time_point start = Clock::now();
  for (size_t i = 0; i < count; ++i) {
    std::memcpy(value.data(), &i, sizeof i);  // every value differs
    ZF_RETURN_IF_ERROR((*backend)->Write(ValueName(i), value));
  }
  sample.write_mbps = bytes / Seconds(Clock::now() - start) / 1e6;
  ZF_RETURN_IF_ERROR((*backend)->Reopen());
  sample.write_disk_per_byte = static_cast<double>(ProcessWriteBytes() - disk_before) / bytes;

  // Read.
  uint64_t sum = 0;
  start = Clock::now();
  for (size_t i = 0; i < count; ++i) {
    Result<uint64_t> s = (*backend)->Read(ValueName(i), buffer);
    if (!s.ok()) return s.status();
    sum += *s;
  }
  sample.read_mbps = bytes / Seconds(Clock::now() - start) / 1e6;
  if (sum == 0) return Status::Error(ErrorCode::kIoError, "read back only zero bytes");

  // Churn.
  disk_before = ProcessWriteBytes();
  start = Clock::now();
  for (size_t i = count; i < 2 * count; ++i) {
    std::memcpy(value.data(), &i, sizeof i);
    ZF_RETURN_IF_ERROR((*backend)->Write(ValueName(i), value));
    ZF_RETURN_IF_ERROR((*backend)->Delete(ValueName(i - count)));
  }
  sample.churn_mbps = bytes / Seconds(Clock::now() - start) / 1e6;
  ZF_RETURN_IF_ERROR((*backend)->Reopen());
  sample.churn_disk_per_byte = static_cast<double>(ProcessWriteBytes() - disk_before) / bytes;

  backend->reset();
  fs::remove_all(dir, ec);
  return sample;
}

struct Cell {
  std::vector<double> write, read, churn, write_disk, churn_disk;
};

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

std::string Spread(const std::vector<double>& v) {
  char out[64];
  auto [lo, hi] = std::minmax_element(v.begin(), v.end());
  std::snprintf(out, sizeof out, "%.0f (%.0f–%.0f)", Median(v), *lo, *hi);
  return out;
}

// --- Command line. ---

std::optional<size_t> ParseSize(std::string_view text) {
  if (text.empty()) return std::nullopt;
  size_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9' || value > (size_t{1} << 40)) return std::nullopt;
    value = value * 10 + static_cast<size_t>(c - '0');
  }
  return value;
}

std::optional<Config> ParseArgs(int argc, char** argv) {
  Config config;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    auto value_of = [&](std::string_view flag) -> std::optional<std::string_view> {
      if (!arg.starts_with(flag)) return std::nullopt;
      return arg.substr(flag.size());
    };
    if (auto v = value_of("--dir=")) {
      config.dir = std::string(*v);
    } else if (auto j = value_of("--json=")) {
      config.json = std::string(*j);
    } else if (auto reps = value_of("--reps=")) {
      std::optional<size_t> n = ParseSize(*reps);
      if (!n || *n == 0 || *n > 1000) return std::nullopt;
      config.reps = static_cast<int>(*n);
    } else if (auto total = value_of("--total-mib=")) {
      std::optional<size_t> n = ParseSize(*total);
      if (!n || *n == 0) return std::nullopt;
      config.total_mib = *n;
    } else if (auto sizes = value_of("--sizes-mib=")) {
      config.sizes_mib.clear();
      std::string_view rest = *sizes;
      while (!rest.empty()) {
        size_t comma = rest.find(',');
        std::optional<size_t> n = ParseSize(rest.substr(0, comma));
        if (!n || *n == 0) return std::nullopt;
        config.sizes_mib.push_back(*n);
        rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
      }
    } else {
      return std::nullopt;
    }
  }
  return config;
}

constexpr const char* kUsage =
    "usage: zerofarm-store-bench [--reps=N] [--total-mib=N] [--sizes-mib=1,4,16] [--dir=PATH]\n"
    "                            [--json=FILE]\n"
    "  Per value size, backend and repetition: fills N MiB (synced), reopens, reads it all\n"
    "  back, then writes N MiB more while deleting the oldest values, and reopens.\n"
    "  --dir: where the scratch directories go (default: a new directory under $TMPDIR).\n"
    "  --json: also write every sample and the medians to FILE.\n";

// Every sample and median as JSON: {"reps", "total_mib", "sizes": [{"value_mib", "backends":
// [{"backend", "fill_mbps": [...], "median_fill_mbps", ...}]}]}.
Status WriteJson(const Config& config, const std::vector<std::vector<Cell>>& cells) {
  std::FILE* f = std::fopen(config.json.c_str(), "w");
  if (f == nullptr) return ErrnoError("fopen " + config.json.string(), errno);
  auto array = [&](const std::vector<double>& v) {
    std::fputc('[', f);
    for (size_t i = 0; i < v.size(); ++i) std::fprintf(f, "%s%.3f", i ? ", " : "", v[i]);
    std::fputc(']', f);
  };
  std::fprintf(f, "{\"benchmark\": \"store\", \"reps\": %d, \"total_mib\": %zu, \"sizes\": [",
               config.reps, config.total_mib);
  for (size_t s = 0; s < config.sizes_mib.size(); ++s) {
    std::fprintf(f, "%s{\"value_mib\": %zu, \"backends\": [", s ? ", " : "", config.sizes_mib[s]);
    for (size_t k = 0; k < 3; ++k) {
      const Cell& cell = cells[s][k];
      std::fprintf(f, "%s{\"backend\": \"%s\", \"fill_mbps\": ", k ? ", " : "",
                   KindName(kKinds[k]));
      array(cell.write);
      std::fputs(", \"read_mbps\": ", f);
      array(cell.read);
      std::fputs(", \"churn_mbps\": ", f);
      array(cell.churn);
      std::fprintf(f,
                   ", \"median_fill_mbps\": %.3f, \"median_read_mbps\": %.3f, "
                   "\"median_churn_mbps\": %.3f, \"disk_bytes_per_byte_fill\": %.3f, "
                   "\"disk_bytes_per_byte_churn\": %.3f}",
                   Median(cell.write), Median(cell.read), Median(cell.churn),
                   Median(cell.write_disk), Median(cell.churn_disk));
    }
    std::fputs("]}", f);
  }
  std::fputs("]}\n", f);
  if (std::fclose(f) != 0) return ErrnoError("fclose " + config.json.string(), errno);
  return Status::Ok();
}

int Run(const Config& config) {
  fs::path root = config.dir;
  bool own_root = root.empty();
  if (own_root) {
    std::string pattern = (fs::temp_directory_path() / "zerofarm-store-bench-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) {
      std::perror("mkdtemp");
      return 1;
    }
    root = pattern;
  }
  const long pages = ::sysconf(_SC_PHYS_PAGES);
  const long page_size = ::sysconf(_SC_PAGESIZE);
  std::printf(
      "machine: %u CPUs, %.1f GiB RAM; %d repetitions of %zu MiB per value size and "
      "backend; 1 MiB appends and reads; synced writes; warm reads\n",
      std::thread::hardware_concurrency(),
      static_cast<double>(pages) * static_cast<double>(page_size) / (1 << 30), config.reps,
      config.total_mib);

  std::vector<std::vector<Cell>> cells(config.sizes_mib.size(), std::vector<Cell>(3));
  for (int rep = 0; rep < config.reps; ++rep) {
    for (size_t s = 0; s < config.sizes_mib.size(); ++s) {
      const size_t value_size = config.sizes_mib[s] * kMiB;
      const size_t count = std::max<size_t>(1, config.total_mib / config.sizes_mib[s]);
      for (size_t k = 0; k < 3; ++k) {
        size_t kind_index = (k + static_cast<size_t>(rep)) % 3;  // rotate who goes first
        Kind kind = kKinds[kind_index];
        Result<Sample> sample = RunCell(kind, value_size, count, root / "run");
        if (!sample.ok()) {
          std::fprintf(stderr, "%s, %zu MiB: %s\n", KindName(kind), config.sizes_mib[s],
                       sample.status().ToString().c_str());
          return 1;
        }
        Cell& cell = cells[s][kind_index];
        cell.write.push_back(sample->write_mbps);
        cell.read.push_back(sample->read_mbps);
        cell.churn.push_back(sample->churn_mbps);
        cell.write_disk.push_back(sample->write_disk_per_byte);
        cell.churn_disk.push_back(sample->churn_disk_per_byte);
      }
    }
    std::fprintf(stderr, "repetition %d of %d done\n", rep + 1, config.reps);
  }

  std::printf(
      "\n| value | backend | fill MB/s | read MB/s | churn MB/s | fill / read / churn vs "
      "files | disk bytes per byte, fill / churn |\n|---|---|---|---|---|---|---|\n");
  for (size_t s = 0; s < config.sizes_mib.size(); ++s) {
    const Cell& files = cells[s][0];
    for (size_t k = 0; k < 3; ++k) {
      const Cell& cell = cells[s][k];
      std::printf("| %zu MiB | %s | %s | %s | %s | %.2f / %.2f / %.2f | %.2f / %.2f |\n",
                  config.sizes_mib[s], KindName(kKinds[k]), Spread(cell.write).c_str(),
                  Spread(cell.read).c_str(), Spread(cell.churn).c_str(),
                  Median(cell.write) / Median(files.write), Median(cell.read) / Median(files.read),
                  Median(cell.churn) / Median(files.churn), Median(cell.write_disk),
                  Median(cell.churn_disk));
    }
  }
  std::printf("\nMB/s: median (min–max) over repetitions.\n");
  if (!config.json.empty()) {
    Status written = WriteJson(config, cells);
    if (!written.ok()) {
      std::fprintf(stderr, "%s\n", written.ToString().c_str());
      return 1;
    }
  }

  std::error_code ec;
  if (own_root) fs::remove_all(root, ec);
  return 0;
}

}  // namespace
}  // namespace zerofarm::bench

int main(int argc, char** argv) {
  if (argc == 2 && std::string_view(argv[1]) == "--help") {
    std::fputs(zerofarm::bench::kUsage, stdout);
    return 0;
  }
  std::optional<zerofarm::bench::Config> config = zerofarm::bench::ParseArgs(argc, argv);
  if (!config) {
    std::fputs(zerofarm::bench::kUsage, stderr);
    return 2;
  }
  return zerofarm::bench::Run(*config);
}
