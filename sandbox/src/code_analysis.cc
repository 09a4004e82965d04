#include "code_analysis.h"

#include <Zydis/Zydis.h>
#include <elf.h>
#include <sys/mman.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <new>
#include <optional>
#include <set>
#include <utility>

#include "instruction_policy.h"

namespace zerofarm::sandbox {
namespace {

// Per-byte state of executable memory: unvisited, inside an instruction, or the first byte of
// an instruction of length 1..15 (so a sweep can skip an instruction already decoded).
constexpr uint8_t kUnvisited = 0;
constexpr uint8_t kBody = 0xFF;

// Notes about individual addresses are capped; their counts are not.
constexpr size_t kMaxAddressNotes = 20;
// Jump tables: how many RIP-relative references are kept, entries read per table, and rounds
// of (read tables, traverse what they name).
constexpr size_t kMaxRipRefs = 1u << 20;
constexpr uint64_t kMaxTableEntries = 4096;
constexpr int kMaxTableRounds = 8;

std::string Hex(uint64_t v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

bool IsStart(uint8_t s) { return s != kUnvisited && s != kBody; }

// Zero, int3 and nop: what linkers and assemblers fill gaps with.
bool IsPaddingByte(std::byte b) {
  return b == std::byte{0x00} || b == std::byte{0xCC} || b == std::byte{0x90};
}

// Zeroed memory for the per-byte state of executable memory. Large arrays are mapped fresh
// and asked for transparent huge pages: their first touch then costs a few faults instead of
// one per 4 KiB page, which is most of what touching them costs.
class ZeroedBytes {
 public:
  explicit ZeroedBytes(size_t size) : size_(size) {
    if (size < kHugePage) {
      small_.assign(size, kUnvisited);
      data_ = small_.data();
      return;
    }
    mapped_size_ = size + kHugePage;
    void* map =
        mmap(nullptr, mapped_size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED) throw std::bad_alloc();
    mapped_ = static_cast<uint8_t*>(map);
    const uintptr_t at = reinterpret_cast<uintptr_t>(mapped_);
    data_ = mapped_ + ((kHugePage - at % kHugePage) % kHugePage);
    (void)madvise(data_, size, MADV_HUGEPAGE);  // a hint: without it, ordinary pages
  }
  ~ZeroedBytes() {
    if (mapped_ != nullptr) munmap(mapped_, mapped_size_);
  }
  ZeroedBytes(const ZeroedBytes&) = delete;
  ZeroedBytes& operator=(const ZeroedBytes&) = delete;

  uint8_t* data() { return data_; }
  size_t size() const { return size_; }

 private:
  static constexpr size_t kHugePage = 2u << 20;
  size_t size_;
  std::vector<uint8_t> small_;
  uint8_t* mapped_ = nullptr;
  size_t mapped_size_ = 0;
  uint8_t* data_ = nullptr;
};

// Marks `length` (1..15) state bytes as instruction bodies when none of them was visited
// before (the usual case), counting them; false, with nothing done, otherwise. `room` is how
// many state bytes there are from `state` on.
bool MarkFresh(uint8_t* state, uint64_t room, unsigned length, uint64_t* counter) {
  if (room < 16) return false;
  uint64_t low;
  uint64_t high;
  std::memcpy(&low, state, 8);
  std::memcpy(&high, state + 8, 8);
  const uint64_t low_mask = length >= 8 ? ~uint64_t{0} : (uint64_t{1} << (8 * length)) - 1;
  const uint64_t high_mask = length <= 8 ? 0 : (uint64_t{1} << (8 * (length - 8))) - 1;
  if (((low & low_mask) | (high & high_mask)) != 0) return false;
  std::memset(state, kBody, length);
  *counter += length;
  return true;
}

uint64_t TotalSize(const std::vector<ExecRange>& ranges) {
  uint64_t total = 0;
  for (const ExecRange& r : ranges) total += r.size;
  return total;
}

class Analyzer {
 public:
  Analyzer(const std::vector<ExecRange>& ranges, const AnalysisLimits& limits, DecodePath path)
      : ranges_(ranges),
        limits_(limits),
        state_memory_(TotalSize(ranges)),
        decoder_(path == DecodePath::kReference) {
    state_.reserve(ranges.size());
    for (const ExecRange& r : ranges) {
      state_.push_back(state_memory_.data() + out_.executable_bytes);
      out_.executable_bytes += r.size;
    }
    budget_ = limits_.steps_per_byte * out_.executable_bytes + limits_.min_steps;
  }

  CodeAnalysis Run(const ElfImage& image, std::span<const uint64_t> extra_seeds,
                   std::span<const uint64_t> candidates, std::span<const DataRange> data) {
    data_ = data;
    SweepSizedFunctions(image);
    std::vector<uint64_t> seeds = std::move(pending_);
    pending_.clear();
    seeds.push_back(image.entry);
    seeds.insert(seeds.end(), extra_seeds.begin(), extra_seeds.end());
    for (const ElfSymbol& s : image.symbols) {
      if (s.is_function() && s.size == 0) seeds.push_back(s.value);
    }
    out_.traversal_seeds = seeds.size();
    Traverse(std::move(seeds));
    TraverseLocalLabels(image);
    TraverseCandidates({candidates.begin(), candidates.end()}, /*guessed=*/true);
    // Code found through jump tables may hold further tables; each round only reads tables not
    // read before, so this ends.
    for (int round = 0; round < kMaxTableRounds && !out_.budget_exhausted; ++round) {
      std::vector<uint64_t> found = JumpTableCandidates();
      if (found.empty()) break;
      TraverseCandidates(std::move(found), /*guessed=*/true);
    }
    ClassifyUnreached();
    for (size_t m = 0; m < noted_.size(); ++m) {
      if (noted_[m] != 0) {
        out_.noted[ZydisMnemonicGetString(static_cast<ZydisMnemonic>(m))] = noted_[m];
      }
    }
    std::sort(out_.syscall_sites.begin(), out_.syscall_sites.end());
    std::stable_sort(
        out_.findings.begin(), out_.findings.end(),
        [](const InstructionFinding& a, const InstructionFinding& b) { return a.vaddr < b.vaddr; });
    return std::move(out_);
  }

 private:
  // Index of the range holding `vaddr`, or -1.
  int Find(uint64_t vaddr) const {
    auto it = std::upper_bound(ranges_.begin(), ranges_.end(), vaddr,
                               [](uint64_t v, const ExecRange& r) { return v < r.vaddr; });
    if (it == ranges_.begin()) return -1;
    --it;
    return vaddr < it->end() ? static_cast<int>(it - ranges_.begin()) : -1;
  }

  bool Decode(const ExecRange& r, uint64_t off, uint64_t limit, InstructionFacts* in) {
    const std::span<const std::byte> bytes = r.From(off, limit);
    return decoder_.Decode(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), in);
  }

  // Records the instruction at [off, off + length) and applies the policy to it.
  void Accept(size_t ri, uint64_t off, const InstructionFacts& in, uint64_t* counter) {
    uint8_t* st = state_[ri];
    if (!MarkFresh(st + off, ranges_[ri].size - off, in.length, counter)) {
      for (uint64_t i = off; i < off + in.length; ++i) {
        if (st[i] == kUnvisited) {
          ++*counter;
          st[i] = kBody;
        }
      }
    }
    st[off] = in.length;
    ++out_.instructions;

    const uint64_t vaddr = ranges_[ri].vaddr + off;
    if (in.rip_lea && rip_refs_.size() < kMaxRipRefs) {
      rip_refs_.push_back(vaddr + in.length + static_cast<uint64_t>(in.displacement));
    }
    switch (in.decision) {
      case Decision::kAllow:
        break;
      case Decision::kAllowNoted:
        ++noted_[in.mnemonic];
        break;
      case Decision::kAllowListed:
        if (++out_.syscall_sites_total <= limits_.max_syscall_sites) {
          out_.syscall_sites.push_back(vaddr);
        }
        break;
      case Decision::kDeny:
        AddFinding(vaddr, "forbidden_instruction", in.reason);
        break;
    }
    if (in.relative) {
      // The target of a direct branch (jcc, jmp, call, loop, jrcxz, xbegin), mod 2^64. One
      // already decoded as an instruction start needs no traversal (loops, mostly).
      const uint64_t target = vaddr + in.length + static_cast<uint64_t>(in.displacement);
      const int ti = Find(target);
      if (ti < 0 || !IsStart(state_[static_cast<size_t>(ti)][target - ranges_[ti].vaddr])) {
        pending_.push_back(target);
      }
    }
  }

  // Counts one step of work; false once the budget is spent. Overlapping sized symbols could
  // otherwise make the sweeps quadratic in the code size.
  bool Spend() {
    if (++out_.steps <= budget_) return true;
    out_.budget_exhausted = true;
    return false;
  }

  void AddFinding(uint64_t vaddr, const char* code, const char* reason) {
    if (++out_.findings_total <= limits_.max_findings) {
      out_.findings.push_back({vaddr, code, reason});
    }
  }

  void SweepSizedFunctions(const ElfImage& image) {
    std::vector<std::pair<uint64_t, uint64_t>> functions;  // [begin, end)
    uint64_t outside = 0;
    for (const ElfSymbol& s : image.symbols) {
      if (!s.is_function() || s.size == 0) continue;
      const int ri = Find(s.value);
      if (ri < 0 || s.size > ranges_[ri].end() - s.value) {
        ++outside;
        if (ri >= 0) pending_.push_back(s.value);  // still a place where code starts
        continue;
      }
      functions.emplace_back(s.value, s.value + s.size);
    }
    std::sort(functions.begin(), functions.end());
    functions.erase(std::unique(functions.begin(), functions.end()), functions.end());
    out_.sized_functions = functions.size();
    if (outside > 0) {
      out_.notes.push_back(std::to_string(outside) +
                           " sized function symbols do not fit in executable memory; their "
                           "starts were traversed instead");
    }
    for (const auto& [begin, end] : functions) {
      const size_t ri = static_cast<size_t>(Find(begin));
      const ExecRange& r = ranges_[ri];
      const uint64_t stop = end - r.vaddr;
      uint64_t off = begin - r.vaddr;
      while (off < stop) {
        if (!Spend()) return;
        if (IsStart(state_[ri][off])) {  // decoded by an earlier, overlapping symbol
          off += state_[ri][off];
          continue;
        }
        InstructionFacts in;
        if (!Decode(r, off, stop, &in)) {
          AddFinding(r.vaddr + off, "decode_error",
                     "undecodable bytes inside a sized function symbol");
          break;
        }
        Accept(ri, off, in, &out_.by_symbol_bytes);
        off += in.length;
      }
    }
  }

  void Traverse(std::vector<uint64_t> work) {
    uint64_t outside = 0;
    while (!work.empty()) {
      if (!Spend()) return;
      const uint64_t seed = work.back();
      work.pop_back();
      const int found = Find(seed);
      if (found < 0) {
        ++outside;  // e.g. a call to an undefined weak symbol (address 0), guarded at run time
        continue;
      }
      const size_t ri = static_cast<size_t>(found);
      const ExecRange& r = ranges_[ri];
      const uint64_t size = r.size;
      for (uint64_t off = seed - r.vaddr; off < size && !IsStart(state_[ri][off]);) {
        if (!Spend()) return;
        InstructionFacts in;
        if (!Decode(r, off, size, &in)) {
          // Not unsafe in itself (it would fault); the bytes stay unreached and are reported.
          if (++out_.traversal_stops <= kMaxAddressNotes) {
            out_.notes.push_back("code followed from " + Hex(seed) +
                                 " runs into undecodable bytes at " + Hex(r.vaddr + off));
          }
          break;
        }
        Accept(ri, off, in, &out_.traversal_bytes);
        for (uint64_t target : pending_) work.push_back(target);
        pending_.clear();
        if (in.ends_stream) break;
        off += in.length;
      }
    }
    if (outside > 0) {
      out_.notes.push_back(std::to_string(outside) +
                           " direct branch targets or seeds lie outside executable memory");
    }
  }

  // Local labels in executable sections (e.g. the targets of hand-written assembly's jump
  // tables) are code or data; nothing in the symbol says which. A label is taken as code only
  // when the straight line from it decodes, up to an instruction that ends the stream or one
  // already decoded, without an undecodable byte and without leaving its segment's file
  // bytes. Then every instruction of that line is accepted (and judged by the policy, like any
  // other) and its branch targets are traversed; otherwise nothing of it is kept, and the bytes
  // stay unreached (reported as data).
  void TraverseLocalLabels(const ElfImage& image) {
    std::vector<uint64_t> labels;
    for (const ElfSymbol& s : image.symbols) {
      if (s.binding != STB_LOCAL || s.type != STT_NOTYPE || s.section == SHN_UNDEF ||
          s.section >= SHN_LORESERVE || s.section >= image.sections.size() ||
          (image.sections[s.section].flags & SHF_EXECINSTR) == 0) {
        continue;
      }
      labels.push_back(s.value);
    }
    TraverseCandidates(std::move(labels));
  }

  // The entries of every not yet read table of 32-bit offsets that a RIP-relative lea points
  // at in data: table + offset, for as long as that lands in executable memory (the first
  // entry that does not, or the start of another table, ends the table).
  std::vector<uint64_t> JumpTableCandidates() {
    std::vector<uint64_t> tables;
    for (uint64_t t : rip_refs_)
      if (tables_read_.insert(t).second) tables.push_back(t);
    rip_refs_.clear();
    std::vector<uint64_t> found;
    for (uint64_t table : tables) {
      for (const DataRange& d : data_) {
        if (table < d.vaddr || table - d.vaddr >= d.bytes.size()) continue;
        const uint64_t start = table - d.vaddr;
        for (uint64_t i = 0; i < kMaxTableEntries; ++i) {
          const uint64_t at = start + 4 * i;
          if (at + 4 > d.bytes.size()) break;
          if (i > 0 && tables_read_.count(d.vaddr + at)) break;
          int32_t entry;
          std::memcpy(&entry, d.bytes.data() + at, sizeof entry);
          const uint64_t target = table + static_cast<uint64_t>(static_cast<int64_t>(entry));
          if (Find(target) < 0) break;
          found.push_back(target);
        }
        break;
      }
    }
    return found;
  }

  // Addresses that may be code or data: each is taken as code only when its line decodes.
  // Local labels are the program's own word that code may start there: their line's
  // instructions are judged like any other and its branch targets traversed as code. `guessed`
  // addresses (found as values in data) are not: one that starts inside a decoded instruction
  // or whose line holds an instruction the policy forbids is data, and its line's branch
  // targets are guesses too.
  void TraverseCandidates(std::vector<uint64_t> labels, bool guessed = false) {
    std::sort(labels.begin(), labels.end());
    labels.erase(std::unique(labels.begin(), labels.end()), labels.end());
    std::reverse(labels.begin(), labels.end());  // taken from the back: lowest first
    std::vector<std::pair<uint64_t, InstructionFacts>> line;
    while (!labels.empty()) {
      const uint64_t label = labels.back();
      labels.pop_back();
      if (out_.budget_exhausted) return;
      const int found = Find(label);
      if (found < 0) continue;
      const size_t ri = static_cast<size_t>(found);
      const ExecRange& r = ranges_[ri];
      uint64_t off = label - r.vaddr;
      if (IsStart(state_[ri][off])) continue;             // already code
      if (guessed && state_[ri][off] == kBody) continue;  // inside an instruction: not code
      const uint64_t seg_begin = r.segment_begin - r.vaddr;
      const uint64_t seg_end = r.segment_end - r.vaddr;
      line.clear();
      bool code = off >= seg_begin;
      while (code) {
        if (!Spend()) return;
        if (off >= seg_end) {
          code = false;
          break;
        }
        if (IsStart(state_[ri][off])) break;
        InstructionFacts in;
        if (!Decode(r, off, seg_end, &in)) {
          code = false;
          break;
        }
        if (guessed && in.decision == Decision::kDeny) {
          code = false;
          break;
        }
        line.emplace_back(off, in);
        if (in.ends_stream) break;
        off += in.length;
      }
      if (!code) {
        if (++out_.label_data <= kMaxAddressNotes) {
          out_.notes.push_back("the code line from " + Hex(label) +
                               " does not decode cleanly (stops at " + Hex(r.vaddr + off) +
                               "); it is treated as data");
        }
        continue;
      }
      ++out_.label_seeds;
      for (const auto& [at, in] : line) Accept(ri, at, in, &out_.traversal_bytes);
      std::vector<uint64_t> targets = std::move(pending_);
      pending_.clear();
      if (guessed) {
        labels.insert(labels.end(), targets.begin(), targets.end());
      } else {
        Traverse(std::move(targets));
      }
    }
  }

  // Length of the padding (zeros, int3, nops) at the start of [off, end).
  uint64_t PaddingPrefix(const ExecRange& r, uint64_t off, uint64_t end) {
    uint64_t p = off;
    while (p < end) {
      if (IsPaddingByte(r.At(p))) {
        ++p;
        continue;
      }
      InstructionFacts in;
      if (!Decode(r, p, end, &in) || !in.nop) break;
      p += in.length;
    }
    return p - off;
  }

  void ClassifyUnreached() {
    for (size_t ri = 0; ri < ranges_.size(); ++ri) {
      const ExecRange& r = ranges_[ri];
      const uint8_t* st = state_[ri];
      uint64_t off = 0;
      while (off < r.size) {
        if (st[off] != kUnvisited) {
          ++off;
          continue;
        }
        // A run never spans a segment boundary: page-rounding bytes are reported apart.
        const uint64_t seg_begin = r.segment_begin - r.vaddr;
        const uint64_t seg_end = r.segment_end - r.vaddr;
        const uint64_t limit = off < seg_begin ? seg_begin : off < seg_end ? seg_end : r.size;
        uint64_t end = off;
        while (end < limit && st[end] == kUnvisited) ++end;
        // Padding before the data, and single-byte padding after it (the zeros that fill a
        // page after the last function, nops or int3 before the next one).
        const uint64_t data_begin = off + PaddingPrefix(r, off, end);
        uint64_t data_end = end;
        while (data_end > data_begin && IsPaddingByte(r.At(data_end - 1))) --data_end;
        out_.padding_bytes += (end - off) - (data_end - data_begin);
        if (data_begin < data_end) {
          out_.data_region_bytes += data_end - data_begin;
          if (++out_.data_regions_total <= limits_.max_data_regions) {
            out_.data_regions.push_back(
                {r.vaddr + data_begin, data_end - data_begin, off < seg_begin || off >= seg_end});
          }
        }
        off = end;
      }
    }
  }

  const std::vector<ExecRange>& ranges_;
  const AnalysisLimits limits_;
  uint64_t budget_ = 0;
  ZeroedBytes state_memory_;
  std::vector<uint8_t*> state_;  // per range, into state_memory_
  InstructionDecoder decoder_;
  std::vector<uint64_t> pending_;  // direct branch targets not yet traversed
  std::span<const DataRange> data_;
  std::vector<uint64_t> rip_refs_;  // RIP-relative lea targets not yet read as tables
  std::set<uint64_t> tables_read_;
  std::array<uint64_t, ZYDIS_MNEMONIC_MAX_VALUE + 1> noted_{};
  CodeAnalysis out_;
};

}  // namespace

CodeAnalysis Analyze(const std::vector<ExecRange>& ranges, const ElfImage& image,
                     std::span<const uint64_t> extra_seeds, std::span<const uint64_t> candidates,
                     std::span<const DataRange> data, const AnalysisLimits& limits,
                     DecodePath path) {
  return Analyzer(ranges, limits, path).Run(image, extra_seeds, candidates, data);
}

}  // namespace zerofarm::sandbox
