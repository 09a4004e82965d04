// SealedProgram: a program's bytes copied into a sealed memfd, so that the bytes the validator
// checks are the bytes the runner executes. The memfd carries F_SEAL_WRITE, F_SEAL_SHRINK,
// F_SEAL_GROW and F_SEAL_SEAL: nobody, including this process, can change it afterwards, and
// changing or replacing the original file has no effect on it. Validate bytes(), then execute
// fd() (execveat(fd, "", argv, envp, AT_EMPTY_PATH)).
// Ownership: move-only; owns the memfd (close-on-exec) and a read-only mapping of it, both
// released by the destructor; bytes() is valid while the SealedProgram lives.
// Thread safety: const members may be used from many threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <utility>

#include "zerofarm/base/status.h"
#include "zerofarm/base/unique_fd.h"

namespace zerofarm::sandbox {

// Programs larger than this are refused before any copy (a static FFmpeg is about 20 MB; the
// validator needs a few times a program's code size in memory).
inline constexpr uint64_t kDefaultMaxProgramBytes = uint64_t{256} << 20;

class SealedProgram {
 public:
  // Copies `data` into a new sealed memfd named `name` (the name is for /proc only).
  static Result<SealedProgram> FromBytes(std::span<const std::byte> data, const std::string& name);
  // Seals `memfd` (created with MFD_ALLOW_SEALING, holding the program's `size` bytes) and
  // maps it. Errors: "io_error" with errno, "not_sealed" when a seal did not take.
  static Result<SealedProgram> Seal(UniqueFd memfd, uint64_t size);

  SealedProgram(SealedProgram&& other) noexcept;
  SealedProgram& operator=(SealedProgram&& other) noexcept;
  SealedProgram(const SealedProgram&) = delete;
  SealedProgram& operator=(const SealedProgram&) = delete;
  ~SealedProgram();

  std::span<const std::byte> bytes() const { return {data_, size_}; }
  int fd() const { return fd_.get(); }

 private:
  SealedProgram(UniqueFd fd, const std::byte* data, size_t size)
      : fd_(std::move(fd)), data_(data), size_(size) {}
  void Unmap() noexcept;

  UniqueFd fd_;
  const std::byte* data_ = nullptr;
  size_t size_ = 0;
};

// Reads the file at `path` into a sealed memfd and maps it read-only. Errors: "io_error"
// (with errno), "too_large", "not_a_file".
Result<SealedProgram> LoadProgram(const std::string& path,
                                  uint64_t max_bytes = kDefaultMaxProgramBytes);

}  // namespace zerofarm::sandbox
