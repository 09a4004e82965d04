// CodeAnalysis: finds and checks every instruction stream in a program's executable memory.
//
// 1. Linear sweep of each sized function symbol (a decode error there is a finding).
// 2. Recursive traversal from the entry point, unsized function symbols, extra seeds and every
//    direct branch target seen: follow fall-through and jcc/jmp/call targets, stop at ret,
//    jmp, hlt, ud2 or an instruction already decoded.
// 3. Traversal from local labels in executable sections and from candidate addresses (code
//    pointers found in data), each kept only when the straight line from it decodes cleanly
//    (otherwise it is data).
// 4. Every executable byte left unreached is padding (nop, int3, zero) or a data region.
// Each decoded instruction is judged by the instruction policy.
// Thread safety: Analyze is reentrant.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "zerofarm/sandbox/elf_reader.h"

namespace zerofarm::sandbox {

// Executable memory as the kernel maps it: one entry per executable PT_LOAD, rounded out to
// whole pages, with the bytes those pages hold. The bytes are the program's own (not a copy)
// up to a short tail, which holds the last file bytes and the zeros after them.
struct ExecRange {
  uint64_t vaddr = 0;
  uint64_t size = 0;         // bytes mapped
  uint64_t file_offset = 0;  // offset of byte 0 in the file
  uint64_t file_bytes = 0;   // bytes [0, file_bytes) come from the file; the rest are zeros
  // The segment's own file bytes, [segment_begin, segment_end) in vaddr; the rest of the range
  // is mapped only because the kernel maps whole pages.
  uint64_t segment_begin = 0;
  uint64_t segment_end = 0;
  // Bytes [0, tail_begin) are file[0, tail_begin), a view of the program; bytes [tail_begin,
  // size) are tail. file holds all file_bytes, so that a view from before tail_begin runs on
  // for at least the longest instruction.
  std::span<const std::byte> file;
  uint64_t tail_begin = 0;
  std::vector<std::byte> tail;

  uint64_t end() const { return vaddr + size; }
  std::byte At(uint64_t off) const { return off < tail_begin ? file[off] : tail[off - tail_begin]; }
  // The bytes from `off` (< size) up to `limit` (<= size), contiguous. Fewer when they would
  // run past the tail's start, but then still more than the longest instruction.
  std::span<const std::byte> From(uint64_t off, uint64_t limit) const {
    if (off < tail_begin) return file.subspan(off, std::min(limit, file_bytes) - off);
    return std::span<const std::byte>(tail).subspan(off - tail_begin, limit - off);
  }
};

// Bytes of the file kept in an ExecRange's tail before the zeros: more than the longest
// instruction (15 bytes), so that one decoded from the view never reads past file_bytes.
inline constexpr uint64_t kExecTailOverlap = 16;

// Non-executable loaded bytes (read-only data, mostly), where switch statements keep their
// jump tables.
struct DataRange {
  uint64_t vaddr = 0;
  std::span<const std::byte> bytes;
};

struct InstructionFinding {
  uint64_t vaddr = 0;
  std::string code;  // forbidden_instruction | decode_error
  std::string reason;
};

struct UnreachedRun {
  uint64_t vaddr = 0;
  uint64_t size = 0;
  bool outside_segment = false;
};

// How much of each list Analyze keeps; the totals always count everything, so a hostile
// program cannot make the analysis hold millions of entries.
struct AnalysisLimits {
  size_t max_findings = 1000;
  size_t max_syscall_sites = 100000;
  size_t max_data_regions = 1000;
  // Work budget: decode and skip steps allowed per executable byte, plus a floor. Real
  // programs need about one step per instruction; only pathological symbol tables exceed it.
  uint64_t steps_per_byte = 4;
  uint64_t min_steps = 1000000;
};

struct CodeAnalysis {
  std::vector<InstructionFinding> findings;  // sorted by address; the first max_findings found
  std::vector<uint64_t> syscall_sites;       // sorted
  std::vector<UnreachedRun> data_regions;    // sorted
  uint64_t findings_total = 0;
  uint64_t syscall_sites_total = 0;
  uint64_t data_regions_total = 0;
  std::map<std::string, uint64_t> noted;  // mnemonic -> count
  std::vector<std::string> notes;
  uint64_t executable_bytes = 0;
  uint64_t by_symbol_bytes = 0;
  uint64_t traversal_bytes = 0;
  uint64_t padding_bytes = 0;
  uint64_t data_region_bytes = 0;
  uint64_t instructions = 0;
  uint64_t sized_functions = 0;
  uint64_t traversal_seeds = 0;
  uint64_t traversal_stops = 0;
  uint64_t label_seeds = 0;  // local labels and candidates taken as code
  uint64_t label_data = 0;   // local labels and candidates whose line did not decode: data
  uint64_t steps = 0;
  bool budget_exhausted = false;  // the analysis stopped early: nothing can be concluded
};

// How instructions are decoded. Both give the same analysis; kReference decodes every
// instruction with Zydis alone and is kept to check the table-driven fast path against.
enum class DecodePath { kFast, kReference };

// `ranges` must be sorted by vaddr and disjoint; `extra_seeds` are further code addresses
// (e.g. .init_array entries, .eh_frame function starts); `candidates` may be code or data
// (e.g. values in data that point into code) and are treated as local labels are. In `data`,
// a table of 32-bit offsets that a decoded RIP-relative `lea` points at (a compiler's switch
// jump table, whose entries are relative to the table) gives candidates too.
CodeAnalysis Analyze(const std::vector<ExecRange>& ranges, const ElfImage& image,
                     std::span<const uint64_t> extra_seeds, std::span<const uint64_t> candidates,
                     std::span<const DataRange> data, const AnalysisLimits& limits,
                     DecodePath path = DecodePath::kFast);

}  // namespace zerofarm::sandbox
