#include "zerofarm/sandbox/sealed_program.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <thread>
#include <utility>
#include <vector>

namespace zerofarm::sandbox {
namespace {

constexpr unsigned kSeals = F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;
constexpr size_t kCopyChunk = 1 << 20;

Result<UniqueFd> CreateMemfd(const std::string& name) {
  UniqueFd fd(::memfd_create(name.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd.valid()) return ErrnoError("memfd_create", errno);
  return fd;
}

}  // namespace

Result<SealedProgram> SealedProgram::Seal(UniqueFd memfd, uint64_t size) {
  // F_SEAL_WRITE fails with EBUSY while the kernel still sees extra references to the memfd's
  // pages (its own page-cache work can hold them for a moment on a loaded machine, after the
  // bytes were copied in); the pins go away by themselves, so try again for up to about 2 s.
  for (int attempt = 0;; ++attempt) {
    if (::fcntl(memfd.get(), F_ADD_SEALS, kSeals) == 0) break;
    if (errno != EBUSY || attempt >= 30) return ErrnoError("F_ADD_SEALS", errno);
    std::this_thread::sleep_for(std::chrono::milliseconds(10 * (attempt + 1) / 3 + 10));
  }
  const int seals = ::fcntl(memfd.get(), F_GET_SEALS);
  if (seals < 0) return ErrnoError("F_GET_SEALS", errno);
  if ((static_cast<unsigned>(seals) & kSeals) != kSeals) {
    return Status::Error(ErrorCode::kNotSealed, "the program memfd did not take every seal");
  }
  struct stat st;
  if (::fstat(memfd.get(), &st) != 0) return ErrnoError("fstat memfd", errno);
  if (static_cast<uint64_t>(st.st_size) != size) {
    return Status::Error(ErrorCode::kIoError, "the program memfd has an unexpected size");
  }
  if (size == 0) return SealedProgram(std::move(memfd), nullptr, 0);
  // Read-only and shared: sealed against writes, so the mapping can never change.
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, memfd.get(), 0);
  if (map == MAP_FAILED) return ErrnoError("mmap program", errno);
  return SealedProgram(std::move(memfd), static_cast<const std::byte*>(map), size);
}

Result<SealedProgram> SealedProgram::FromBytes(std::span<const std::byte> data,
                                               const std::string& name) {
  Result<UniqueFd> fd = CreateMemfd(name);
  if (!fd.ok()) return fd.status();
  ZF_RETURN_IF_ERROR(WriteAll(fd->get(), data));
  return Seal(std::move(fd).value(), data.size());
}

SealedProgram::SealedProgram(SealedProgram&& other) noexcept
    : fd_(std::move(other.fd_)),
      data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)) {}

SealedProgram& SealedProgram::operator=(SealedProgram&& other) noexcept {
  if (this != &other) {
    Unmap();
    fd_ = std::move(other.fd_);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

SealedProgram::~SealedProgram() { Unmap(); }

void SealedProgram::Unmap() noexcept {
  if (data_ != nullptr) ::munmap(const_cast<std::byte*>(data_), size_);
  data_ = nullptr;
  size_ = 0;
}

Result<SealedProgram> LoadProgram(const std::string& path, uint64_t max_bytes) {
  // O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused just below); reads
  // from a regular file ignore the flag.
  UniqueFd in(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (!in.valid()) return ErrnoError("open " + path, errno);
  struct stat st;
  if (::fstat(in.get(), &st) != 0) return ErrnoError("fstat " + path, errno);
  if (!S_ISREG(st.st_mode))
    return Status::Error(ErrorCode::kNotAFile, path + " is not a regular file");
  if (static_cast<uint64_t>(st.st_size) > max_bytes) {
    return Status::Error(ErrorCode::kTooLarge,
                         path + " is larger than " + std::to_string(max_bytes) + " bytes");
  }
  Result<UniqueFd> memfd = CreateMemfd("zerofarm-program");
  if (!memfd.ok()) return memfd.status();
  // Copy until end of file (the file may change while we read; the memfd is what counts).
  std::vector<std::byte> buffer(kCopyChunk);
  uint64_t total = 0;
  for (;;) {
    Result<size_t> n = ReadSome(in.get(), buffer);
    if (!n.ok()) return n.status().WithContext(path);
    if (*n == 0) break;
    total += *n;
    if (total > max_bytes) {
      return Status::Error(ErrorCode::kTooLarge, path + " grew past " + std::to_string(max_bytes) +
                                                     " bytes while being read");
    }
    ZF_RETURN_IF_ERROR(WriteAll(memfd->get(), std::span(buffer).first(*n)));
  }
  return SealedProgram::Seal(std::move(memfd).value(), total);
}

}  // namespace zerofarm::sandbox
