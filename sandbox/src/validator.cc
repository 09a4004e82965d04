#include "zerofarm/sandbox/validator.h"

#include <Zydis/Zydis.h>
#include <elf.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <optional>
#include <utility>

#include "code_analysis.h"
#include "instruction_policy.h"
#include "validate_internal.h"
#include "zerofarm/base/sha256.h"

namespace zerofarm::sandbox {
namespace {

// The kernel maps ELF segments in 4 KiB pages on x86-64, whatever p_align says.
constexpr uint64_t kPageSize = 4096;
// Notes are for people; a hostile file must not make the report huge.
constexpr size_t kMaxNotes = 50;

uint64_t PageDown(uint64_t v) { return v & ~(kPageSize - 1); }
uint64_t PageUp(uint64_t v) { return PageDown(v + kPageSize - 1); }

std::string Hex(uint64_t v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

// Printable ASCII only, at most `max` characters: for strings taken from the program (they
// end up on terminals and in JSON).
std::string Sanitize(std::string_view text, size_t max) {
  std::string out;
  for (char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == 0) break;
    if (out.size() == max) {
      out += "...";
      break;
    }
    out += (c >= 0x20 && c < 0x7F) ? static_cast<char>(c) : '?';
  }
  return out;
}

// Builds the report's reasons, counting all of them and listing the first `max`.
class Reasons {
 public:
  Reasons(ValidationReport* report, size_t max) : report_(report), max_(max) {}
  Reason* Add(std::string code, std::string message) {
    ++report_->reasons_total;
    if (report_->reasons.size() >= max_) return nullptr;
    report_->reasons.push_back(Reason{std::move(code), std::move(message), {}, {}, {}, {}, {}});
    return &report_->reasons.back();
  }
  // Reasons counted by the analysis but not kept by it.
  void AddUnlisted(uint64_t count) { report_->reasons_total += count; }

 private:
  ValidationReport* report_;
  size_t max_;
};

// Names addresses after the symbols and sections around them.
class AddressNamer {
 public:
  explicit AddressNamer(const ElfImage& image) {
    for (const ElfSection& s : image.sections) {
      if ((s.flags & SHF_ALLOC) != 0 && s.size > 0) sections_.push_back(&s);
    }
    std::sort(sections_.begin(), sections_.end(),
              [](const ElfSection* a, const ElfSection* b) { return a->addr < b->addr; });
    for (const ElfSymbol& s : image.symbols) {
      if (!s.name.empty() && s.section != SHN_UNDEF &&
          (s.type == STT_FUNC || s.type == STT_GNU_IFUNC || s.type == STT_NOTYPE ||
           s.type == STT_OBJECT)) {
        symbols_.push_back(&s);
      }
    }
    std::sort(symbols_.begin(), symbols_.end(), [](const ElfSymbol* a, const ElfSymbol* b) {
      return a->value != b->value ? a->value < b->value : a->size > b->size;
    });
  }

  // "name" or "name+0x12" for the symbol covering (or, unsized, preceding) `vaddr`.
  std::string Symbol(uint64_t vaddr) const {
    auto it = std::upper_bound(symbols_.begin(), symbols_.end(), vaddr,
                               [](uint64_t v, const ElfSymbol* s) { return v < s->value; });
    if (it == symbols_.begin()) return {};
    // Among the symbols at or below vaddr, prefer one whose size covers it.
    for (auto back = it; back != symbols_.begin();) {
      --back;
      const ElfSymbol* s = *back;
      if (s->size > 0 && vaddr - s->value < s->size) return Name(s, vaddr);
      if (it - back > 8) break;
    }
    const ElfSymbol* nearest = *(it - 1);
    const std::string section = Section(vaddr);
    return Section(nearest->value) == section ? Name(nearest, vaddr) : std::string();
  }

  std::string Section(uint64_t vaddr) const {
    auto it = std::upper_bound(sections_.begin(), sections_.end(), vaddr,
                               [](uint64_t v, const ElfSection* s) { return v < s->addr; });
    // Sections rarely overlap; look at a few candidates below vaddr.
    for (int i = 0; i < 4 && it != sections_.begin(); ++i) {
      const ElfSection* s = *--it;
      if (vaddr - s->addr < s->size) return Sanitize(s->name, 100);
    }
    return {};
  }

 private:
  static std::string Name(const ElfSymbol* s, uint64_t vaddr) {
    std::string name = Sanitize(s->name, 200);
    if (vaddr != s->value) {
      name += '+';
      name += Hex(vaddr - s->value);
    }
    return name;
  }

  std::vector<const ElfSection*> sections_;  // allocated, by address
  std::vector<const ElfSymbol*> symbols_;    // named, by address
};

// Executable memory as the kernel maps it (see ExecRange). Segments that share a page are
// refused elsewhere; here ranges are clamped so that they never overlap.
std::vector<ExecRange> BuildExecRanges(std::span<const std::byte> program, const ElfImage& image,
                                       uint64_t* zero_fill) {
  std::vector<ExecRange> ranges;
  for (const ElfSegment& s : image.segments) {
    if (s.type != PT_LOAD || !s.executable() || s.memsz == 0) continue;
    // A segment whose address and offset disagree in page offset is refused elsewhere (the
    // kernel cannot map it); it is analysed without page rounding.
    const bool aligned = (s.vaddr - s.offset) % kPageSize == 0;
    const uint64_t begin = aligned ? PageDown(s.vaddr) : s.vaddr;
    const uint64_t lead = s.vaddr - begin;
    const uint64_t end = aligned ? PageUp(s.vaddr + s.filesz) : s.vaddr + s.filesz;
    if (end < s.vaddr + s.memsz) *zero_fill += s.vaddr + s.memsz - end;
    ExecRange r;
    r.vaddr = begin;
    r.size = end - begin;
    r.file_offset = s.offset - lead;  // aligned: lead <= offset (congruent modulo the page)
    // With a .bss part the kernel zeroes the rest of the last file page; otherwise the page
    // holds whatever the file has there (zeros past the end of the file).
    const uint64_t file_end = s.memsz > s.filesz
                                  ? s.offset + s.filesz
                                  : std::min<uint64_t>(program.size(), s.offset + (end - s.vaddr));
    r.file_bytes = file_end - r.file_offset;
    r.segment_begin = s.vaddr;
    r.segment_end = s.vaddr + s.filesz;
    if (r.size == 0) continue;  // no file bytes and nothing page rounding adds
    ranges.push_back(std::move(r));
  }
  std::sort(ranges.begin(), ranges.end(),
            [](const ExecRange& a, const ExecRange& b) { return a.vaddr < b.vaddr; });
  std::vector<ExecRange> disjoint;
  uint64_t covered = 0;  // end of the ranges kept so far
  for (ExecRange& r : ranges) {
    if (r.vaddr < covered) {
      const uint64_t cut = std::min<uint64_t>(covered - r.vaddr, r.size);
      r.size -= cut;
      r.vaddr += cut;
      r.file_offset += cut;
      r.file_bytes = r.file_bytes > cut ? r.file_bytes - cut : 0;
      r.segment_begin = std::max(r.segment_begin, r.vaddr);
      r.segment_end = std::max(r.segment_end, r.segment_begin);
    }
    if (r.size == 0) continue;
    covered = r.end();
    // The bytes: a view of the file, and a copy of its last bytes and the zeros after them.
    if (r.file_bytes > 0) r.file = program.subspan(r.file_offset, r.file_bytes);
    r.tail_begin = r.file_bytes > kExecTailOverlap ? r.file_bytes - kExecTailOverlap : 0;
    r.tail.assign(r.size - r.tail_begin, std::byte{0});
    if (r.file_bytes > r.tail_begin) {
      std::memcpy(r.tail.data(), r.file.data() + r.tail_begin, r.file_bytes - r.tail_begin);
    }
    disjoint.push_back(std::move(r));
  }
  return disjoint;
}

std::optional<uint64_t> FileOffset(const std::vector<ExecRange>& ranges, uint64_t vaddr) {
  for (const ExecRange& r : ranges) {
    if (vaddr >= r.vaddr && vaddr < r.end()) {
      const uint64_t off = vaddr - r.vaddr;
      if (off < r.file_bytes) return r.file_offset + off;
      return std::nullopt;
    }
  }
  return std::nullopt;
}

// Intel-syntax text and hex bytes of the instruction at `vaddr` (empty when undecodable).
std::pair<std::string, std::string> DescribeInstruction(const std::vector<ExecRange>& ranges,
                                                        uint64_t vaddr) {
  for (const ExecRange& r : ranges) {
    if (vaddr < r.vaddr || vaddr >= r.end()) continue;
    const uint64_t off = vaddr - r.vaddr;
    const std::span<const std::byte> bytes = r.From(off, r.size);
    const uint64_t avail = std::min<uint64_t>(bytes.size(), ZYDIS_MAX_INSTRUCTION_LENGTH);
    ZydisDecoder decoder;
    ZydisDecoderInit(&decoder, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64);
    ZydisDecodedInstruction in;
    ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
    std::string hex;
    char byte[4];
    if (!ZYAN_SUCCESS(ZydisDecoderDecodeFull(&decoder, bytes.data(), avail, &in, ops))) {
      for (uint64_t i = 0; i < avail; ++i) {
        std::snprintf(byte, sizeof byte, i ? " %02x" : "%02x", static_cast<unsigned>(bytes[i]));
        hex += byte;
      }
      return {"", hex};
    }
    ZydisFormatter formatter;
    ZydisFormatterInit(&formatter, ZYDIS_FORMATTER_STYLE_INTEL);
    char text[256] = {};
    ZydisFormatterFormatInstruction(&formatter, &in, ops, in.operand_count_visible, text,
                                    sizeof text, vaddr, nullptr);
    for (unsigned i = 0; i < in.length; ++i) {
      std::snprintf(byte, sizeof byte, i ? " %02x" : "%02x", static_cast<unsigned>(bytes[i]));
      hex += byte;
    }
    return {text, hex};
  }
  return {};
}

// Code addresses the loader or libc call through pointers: .preinit_array, .init_array and
// .fini_array entries.
std::vector<uint64_t> PointerArraySeeds(std::span<const std::byte> program, const ElfImage& image) {
  std::vector<uint64_t> seeds;
  for (const ElfSection& s : image.sections) {
    if (s.type != SHT_INIT_ARRAY && s.type != SHT_FINI_ARRAY && s.type != SHT_PREINIT_ARRAY) {
      continue;
    }
    for (uint64_t i = 0; i + 8 <= s.size; i += 8) {  // the reader checked s is in the file
      uint64_t v;
      std::memcpy(&v, program.data() + s.offset + i, sizeof v);
      seeds.push_back(v);
    }
  }
  return seeds;
}

// A bounds-checked reader over one section's bytes, for the DWARF call-frame records.
class SectionCursor {
 public:
  SectionCursor(std::span<const std::byte> bytes, uint64_t vaddr) : bytes_(bytes), vaddr_(vaddr) {}
  bool ok() const { return ok_; }
  uint64_t pos() const { return pos_; }
  uint64_t size() const { return bytes_.size(); }
  uint64_t vaddr() const { return vaddr_ + pos_; }  // of the next byte
  void Seek(uint64_t pos) {
    if (pos > bytes_.size()) ok_ = false;
    pos_ = ok_ ? pos : pos_;
  }
  uint64_t Fixed(size_t n) {  // little-endian, n <= 8
    if (!ok_ || bytes_.size() - pos_ < n) {
      ok_ = false;
      return 0;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < n; ++i) v |= static_cast<uint64_t>(bytes_[pos_ + i]) << (8 * i);
    pos_ += n;
    return v;
  }
  uint64_t Uleb() {
    uint64_t v = 0;
    for (unsigned shift = 0; ok_; shift += 7) {
      const uint64_t b = Fixed(1);
      if (shift < 64) v |= (b & 0x7f) << shift;
      if ((b & 0x80) == 0) return v;
      if (shift > 70) ok_ = false;
    }
    return 0;
  }
  int64_t Sleb() {
    uint64_t v = 0;
    unsigned shift = 0;
    for (; ok_; shift += 7) {
      const uint64_t b = Fixed(1);
      if (shift < 64) v |= (b & 0x7f) << shift;
      if ((b & 0x80) == 0) {
        if (shift + 7 < 64 && (b & 0x40)) v |= ~uint64_t{0} << (shift + 7);
        return static_cast<int64_t>(v);
      }
      if (shift > 70) ok_ = false;
    }
    return 0;
  }
  std::string_view CString() {
    const uint64_t start = pos_;
    while (ok_ && pos_ < bytes_.size() && bytes_[pos_] != std::byte{0}) ++pos_;
    if (pos_ >= bytes_.size()) {
      ok_ = false;
      return {};
    }
    ++pos_;
    return {reinterpret_cast<const char*>(bytes_.data() + start), pos_ - start - 1};
  }
  // A pointer in DW_EH_PE encoding `enc`: absolute or relative to its own address; nullopt
  // for encodings that cannot name a code address here (omitted, indirect, data-relative).
  std::optional<uint64_t> Pointer(uint8_t enc) {
    const uint64_t at = vaddr();
    uint64_t v = 0;
    switch (enc & 0x0f) {
      case 0x00:
        v = Fixed(8);
        break;  // absptr
      case 0x01:
        v = Uleb();
        break;  // uleb128
      case 0x02:
        v = Fixed(2);
        break;  // udata2
      case 0x03:
        v = Fixed(4);
        break;  // udata4
      case 0x04:
        v = Fixed(8);
        break;  // udata8
      case 0x09:
        v = static_cast<uint64_t>(Sleb());
        break;  // sleb128
      case 0x0a:
        v = static_cast<uint64_t>(static_cast<int16_t>(Fixed(2)));
        break;  // sdata2
      case 0x0b:
        v = static_cast<uint64_t>(static_cast<int32_t>(Fixed(4)));
        break;  // sdata4
      case 0x0c:
        v = Fixed(8);
        break;  // sdata8
      default:
        ok_ = false;
        return std::nullopt;
    }
    switch (enc & 0x70) {
      case 0x00:
        break;  // absolute
      case 0x10:
        v += at;
        break;  // pc-relative
      default:
        return std::nullopt;  // text-, data-, func-relative or aligned: not used here
    }
    if (enc & 0x80) return std::nullopt;  // indirect: the address of the address
    return v;
  }

 private:
  std::span<const std::byte> bytes_;
  uint64_t vaddr_;
  uint64_t pos_ = 0;
  bool ok_ = true;
};

// Function starts from the call-frame records of .eh_frame: every FDE's initial location.
// Compilers emit one FDE per function (and glibc's assembly one per entry point), symbol table
// or not, so a stripped program still names its functions here. Malformed records end the
// walk: what was read before stays, and the traversal judges every seed like any other.
std::vector<uint64_t> EhFrameSeeds(std::span<const std::byte> program, const ElfImage& image) {
  std::vector<uint64_t> seeds;
  for (const ElfSection& sec : image.sections) {
    if (sec.name != ".eh_frame" || sec.type != SHT_PROGBITS || sec.size == 0) continue;
    SectionCursor c(program.subspan(sec.offset, sec.size), sec.addr);
    std::map<uint64_t, uint8_t> fde_encoding;  // CIE offset -> FDE pointer encoding
    while (c.ok() && c.pos() + 4 <= c.size()) {
      const uint64_t record = c.pos();
      uint64_t length = c.Fixed(4);
      if (length == 0) break;  // terminator
      if (length == 0xffffffffu) length = c.Fixed(8);
      const uint64_t body = c.pos();
      if (!c.ok() || length > c.size() - body) break;
      const uint64_t next = body + length;
      const uint64_t id_at = c.pos();
      const uint64_t id = c.Fixed(4);
      if (id == 0) {  // a CIE
        const uint64_t version = c.Fixed(1);
        const std::string_view aug = c.CString();
        uint8_t enc = 0x00;  // absptr unless 'R' says otherwise
        if (aug.find("eh") != std::string_view::npos) (void)c.Fixed(8);
        (void)c.Uleb();                                // code alignment
        (void)c.Sleb();                                // data alignment
        (void)(version == 1 ? c.Fixed(1) : c.Uleb());  // return address register
        if (!aug.empty() && aug[0] == 'z') {
          (void)c.Uleb();  // augmentation data length
          for (char a : aug.substr(1)) {
            if (a == 'R') {
              enc = static_cast<uint8_t>(c.Fixed(1));
            } else if (a == 'L') {
              (void)c.Fixed(1);
            } else if (a == 'P') {
              (void)c.Pointer(static_cast<uint8_t>(c.Fixed(1)));
            } else if (a != 'S' && a != 'B' && a != 'G') {
              break;  // unknown augmentation: its data cannot be skipped
            }
          }
        }
        if (c.ok()) fde_encoding[record] = enc;
      } else if (id <= id_at) {  // an FDE: id is the distance back to its CIE
        auto cie = fde_encoding.find(id_at - id);
        if (cie != fde_encoding.end()) {
          std::optional<uint64_t> start = c.Pointer(cie->second);
          if (c.ok() && start && *start != 0) seeds.push_back(*start);
        }
      }
      c.Seek(next);
    }
  }
  return seeds;
}

// Code pointers found in data: each aligned 8-byte value in a non-executable loaded segment's
// file bytes that points into executable memory (function pointer tables, switch jump tables,
// vtables). Any of them may be a coincidence, so the analysis takes each as code only when the
// line from it decodes cleanly, as it does for local labels.
std::vector<uint64_t> DataPointerCandidates(std::span<const std::byte> program,
                                            const ElfImage& image) {
  std::vector<std::pair<uint64_t, uint64_t>> exec;  // [begin, end) of executable segments
  for (const ElfSegment& s : image.segments)
    if (s.type == PT_LOAD && s.executable()) exec.emplace_back(s.vaddr, s.vaddr + s.filesz);
  std::vector<uint64_t> found;
  constexpr size_t kMaxCandidates = 1u << 20;
  for (const ElfSegment& s : image.segments) {
    if (s.type != PT_LOAD || s.executable() || s.offset > program.size()) continue;
    const uint64_t filesz = std::min<uint64_t>(s.filesz, program.size() - s.offset);
    const uint64_t skew = (8 - s.vaddr % 8) % 8;  // to the first 8-aligned address
    for (uint64_t i = skew; i + 8 <= filesz && found.size() < kMaxCandidates; i += 8) {
      uint64_t v;
      std::memcpy(&v, program.data() + s.offset + i, sizeof v);
      for (const auto& [b, e] : exec)
        if (v >= b && v < e) {
          found.push_back(v);
          break;
        }
    }
  }
  std::sort(found.begin(), found.end());
  found.erase(std::unique(found.begin(), found.end()), found.end());
  return found;
}

// What CheckStructure learns from the program headers for its checks across segments.
struct SegmentFacts {
  bool has_stack_header = false;
  bool has_code = false;                 // an executable PT_LOAD with memory
  bool entry_in_code = false;            // the entry point is inside such a segment's file bytes
  std::vector<const ElfSegment*> loads;  // PT_LOAD segments with memory, in header order
};

// A loadable segment's own checks (W^X, page congruence of address and offset); segment
// `index`, noted in `facts`.
void CheckLoadSegment(const ElfSegment& s, size_t index, uint64_t entry, Reasons* reasons,
                      SegmentFacts* facts) {
  if (s.memsz == 0) return;
  const std::string which = "segment " + std::to_string(index);
  facts->loads.push_back(&s);
  if (s.executable() && s.writable()) {
    Reason* r =
        reasons->Add("writable_executable_segment", which + " is both writable and executable");
    if (r != nullptr) {
      r->vaddr = s.vaddr;
      r->file_offset = s.offset;
    }
  }
  if ((s.vaddr - s.offset) % kPageSize != 0) {
    reasons->Add("malformed_elf", which + " p_vaddr and p_offset differ in page offset");
  }
  if (s.executable()) {
    facts->has_code = true;
    if (entry >= s.vaddr && entry - s.vaddr < s.filesz) facts->entry_in_code = true;
  }
}

// One program header's checks: dynamic linking, the stack's permissions, loadable segments.
void CheckSegment(std::span<const std::byte> program, const ElfImage& image, size_t index,
                  Reasons* reasons, SegmentFacts* facts) {
  const ElfSegment& s = image.segments[index];
  switch (s.type) {
    case PT_INTERP:
      reasons->Add(
          "dynamic_program",
          "dynamically linked: requests the program interpreter \"" +
              Sanitize(std::string_view(reinterpret_cast<const char*>(program.data() + s.offset),
                                        s.filesz),
                       200) +
              "\"; the sandbox runs static programs only");
      break;
    case PT_DYNAMIC:
      reasons->Add("dynamic_program",
                   "has a PT_DYNAMIC segment (dynamic linking or static-pie relocation); the "
                   "sandbox runs static, non-relocating programs only");
      break;
    case PT_GNU_STACK:
      facts->has_stack_header = true;
      if (s.executable()) {
        reasons->Add("executable_stack", "PT_GNU_STACK asks for an executable stack");
      }
      break;
    case PT_LOAD:
      CheckLoadSegment(s, index, image.entry, reasons, facts);
      break;
    default:
      break;
  }
}

// Two segments in one page: the kernel maps the later over the earlier, so the page's
// permissions and bytes would not be the ones the earlier segment declares (and the
// validator would have checked the wrong bytes).
void CheckSharedPages(std::vector<const ElfSegment*> loads, Reasons* reasons) {
  std::sort(loads.begin(), loads.end(),
            [](const ElfSegment* a, const ElfSegment* b) { return a->vaddr < b->vaddr; });
  for (size_t i = 1; i < loads.size(); ++i) {
    if (PageUp(loads[i - 1]->vaddr + loads[i - 1]->memsz) > PageDown(loads[i]->vaddr)) {
      Reason* r = reasons->Add("shared_page", "loadable segments share the memory page at " +
                                                  Hex(PageDown(loads[i]->vaddr)));
      if (r != nullptr) r->vaddr = loads[i]->vaddr;
    }
  }
}

// The checks that need no disassembly: file type, linking, memory permissions, stack.
void CheckStructure(std::span<const std::byte> program, const ElfImage& image, Reasons* reasons) {
  if (image.type != ET_EXEC && image.type != ET_DYN) {
    reasons->Add("not_executable",
                 "ELF type " + std::to_string(image.type) + " is not an executable");
  }
  SegmentFacts facts;
  for (size_t i = 0; i < image.segments.size(); ++i) {
    CheckSegment(program, image, i, reasons, &facts);
  }
  if (!facts.has_stack_header) {
    reasons->Add("executable_stack",
                 "no PT_GNU_STACK segment: x86-64 Linux gives such a program an executable "
                 "stack");
  }
  if (!facts.has_code) {
    reasons->Add("not_executable", "no executable segment");
  } else if (!facts.entry_in_code) {
    Reason* r = reasons->Add("entry_outside_code",
                             "the entry point is not inside an executable segment's file bytes");
    if (r != nullptr) r->vaddr = image.entry;
  }
  CheckSharedPages(std::move(facts.loads), reasons);
}

void AddNote(ValidationReport* report, std::string note) {
  if (report->notes.size() < kMaxNotes) report->notes.push_back(std::move(note));
}

double MillisecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
      .count();
}

std::string FractionString(double fraction) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", fraction);
  return buf;
}

// The disassembly over `ranges`: its seeds (pointer arrays, then call-frame records), code
// pointers found in data, the non-executable segments' bytes, and the options' list limits.
CodeAnalysis AnalyzeCode(std::span<const std::byte> program, const ElfImage& image,
                         const std::vector<ExecRange>& ranges, const ValidatorOptions& options,
                         DecodePath path) {
  std::vector<uint64_t> seeds = PointerArraySeeds(program, image);
  const std::vector<uint64_t> eh_seeds = EhFrameSeeds(program, image);
  seeds.insert(seeds.end(), eh_seeds.begin(), eh_seeds.end());
  const std::vector<uint64_t> candidates = DataPointerCandidates(program, image);
  AnalysisLimits limits;
  limits.max_findings = options.max_listed_reasons;
  limits.max_syscall_sites = options.max_listed_syscall_sites;
  limits.max_data_regions = options.max_listed_data_regions;
  std::vector<DataRange> data;
  for (const ElfSegment& s : image.segments) {
    if (s.type != PT_LOAD || s.executable() || s.offset > program.size()) continue;
    data.push_back({s.vaddr, program.subspan(s.offset, std::min<uint64_t>(
                                                           s.filesz, program.size() - s.offset))});
  }
  return Analyze(ranges, image, seeds, candidates, data, limits, path);
}

// A reason for each instruction the analysis refused (located, disassembled and named), the
// count of those it did not keep, and one if its budget ran out.
void AddInstructionReasons(const CodeAnalysis& code, const std::vector<ExecRange>& ranges,
                           const AddressNamer& namer, Reasons* reasons) {
  for (const InstructionFinding& f : code.findings) {
    const char* what = f.code == "decode_error" ? "cannot decode the instruction at "
                                                : "forbidden instruction at ";
    Reason* r = reasons->Add(f.code, what + Hex(f.vaddr) + ": " + f.reason);
    if (r == nullptr) continue;
    r->vaddr = f.vaddr;
    r->file_offset = FileOffset(ranges, f.vaddr);
    std::tie(r->instruction, r->bytes) = DescribeInstruction(ranges, f.vaddr);
    r->symbol = namer.Symbol(f.vaddr);
    if (!r->instruction.empty()) r->message += " (" + r->instruction + ")";
    if (!r->symbol.empty()) r->message += " in " + r->symbol;
  }
  reasons->AddUnlisted(code.findings_total - code.findings.size());
  if (code.budget_exhausted) {
    reasons->Add("analysis_budget",
                 "the analysis stopped after " + std::to_string(code.steps) +
                     " steps: overlapping symbols or branch targets make this program too costly "
                     "to validate");
  }
}

// The report's syscall sites and data regions, located and named, and the data_region reason
// when the options refuse any.
void ReportSitesAndRegions(const CodeAnalysis& code, const std::vector<ExecRange>& ranges,
                           const AddressNamer& namer, const ValidatorOptions& options,
                           ValidationReport* report, Reasons* reasons) {
  for (uint64_t site : code.syscall_sites) {
    report->syscall_sites.push_back({site, FileOffset(ranges, site), namer.Symbol(site)});
  }
  for (const UnreachedRun& run : code.data_regions) {
    if (report->data_regions.size() >= options.max_listed_data_regions) break;
    DataRegion region{run.vaddr,
                      FileOffset(ranges, run.vaddr),
                      run.size,
                      namer.Section(run.vaddr),
                      namer.Symbol(run.vaddr),
                      run.outside_segment};
    // A first segment that starts at file offset 0 maps the ELF headers executable too.
    if (region.section.empty() && region.file_offset && *region.file_offset < sizeof(Elf64_Ehdr)) {
      region.section = "(ELF headers)";
    }
    report->data_regions.push_back(std::move(region));
  }
  if (options.reject_data_regions && code.data_regions_total > 0) {
    reasons->Add("data_region", std::to_string(code.data_regions_total) + " executable regions (" +
                                    std::to_string(code.data_region_bytes) +
                                    " bytes) are reached by no instruction stream");
  }
}

// Refuses a program whose share of executable bytes reached by no instruction stream exceeds
// options.max_data_fraction. Written so that a NaN or negative fraction refuses any data; a
// fraction of 1 or more never refuses.
void CheckDataShare(const CodeAnalysis& code, const ValidatorOptions& options, Reasons* reasons) {
  if (code.executable_bytes > 0 &&
      !(static_cast<double>(code.data_region_bytes) <=
        options.max_data_fraction * static_cast<double>(code.executable_bytes))) {
    char share[32];
    std::snprintf(share, sizeof share, "%.1f%%",
                  100.0 * static_cast<double>(code.data_region_bytes) /
                      static_cast<double>(code.executable_bytes));
    reasons->Add("too_much_unverified_code",
                 std::to_string(code.data_region_bytes) + " of " +
                     std::to_string(code.executable_bytes) + " executable bytes (" + share +
                     ") are reached by no instruction stream, more than the allowed " +
                     FractionString(100.0 * options.max_data_fraction) +
                     "%; is the program stripped?");
  }
}

// The noted instructions and the notes: the analysis's, then zero fill, then a missing
// symbol table.
void AddNotes(const CodeAnalysis& code, const ElfImage& image, uint64_t zero_fill,
              ValidationReport* report) {
  report->noted_instructions = code.noted;
  for (const std::string& note : code.notes) AddNote(report, note);
  if (zero_fill > 0) {
    AddNote(report, std::to_string(zero_fill) +
                        " zero-filled bytes of executable segments were not disassembled "
                        "(zeros decode as add [rax], al)");
  }
  if (image.symbols.empty()) {
    AddNote(report,
            "no symbol table: only code reachable from the entry point by direct branches "
            "was found; the rest is reported as data");
  }
}

// The analysis's counts, as the report gives them.
void FillCounts(const CodeAnalysis& code, ValidationCounts* c) {
  c->executable_bytes = code.executable_bytes;
  c->by_symbol_bytes = code.by_symbol_bytes;
  c->traversal_bytes = code.traversal_bytes;
  c->decoded_bytes = c->by_symbol_bytes + c->traversal_bytes;
  c->padding_bytes = code.padding_bytes;
  c->data_region_bytes = code.data_region_bytes;
  c->data_regions = code.data_regions_total;
  c->instructions = code.instructions;
  c->syscall_sites = code.syscall_sites_total;
  c->sized_functions = code.sized_functions;
  c->traversal_seeds = code.traversal_seeds;
  c->traversal_stops = code.traversal_stops;
  c->label_seeds = code.label_seeds;
  c->label_data = code.label_data;
}

}  // namespace

std::string ValidatorOptions::Fingerprint() const {
  return "elf=" + std::to_string(elf_limits.max_program_headers) + "/" +
         std::to_string(elf_limits.max_sections) + "/" + std::to_string(elf_limits.max_symbols) +
         ";data=" + (reject_data_regions ? "reject" : "report") +
         ";max_data=" + FractionString(max_data_fraction) +
         ";list=" + std::to_string(max_listed_reasons) + "/" +
         std::to_string(max_listed_data_regions) + "/" + std::to_string(max_listed_syscall_sites);
}

std::string DescribeInstructionPolicy() { return DescribePolicy(); }

std::string ZydisVersionString() {
  const ZyanU64 v = ZydisGetVersion();
  return std::to_string(ZYDIS_VERSION_MAJOR(v)) + "." + std::to_string(ZYDIS_VERSION_MINOR(v)) +
         "." + std::to_string(ZYDIS_VERSION_PATCH(v));
}

Result<ValidationReport> Validate(std::span<const std::byte> program,
                                  const ValidatorOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  std::string sha256 = Sha256Hex(program);
  if (sha256.empty()) return Status::Error(ErrorCode::kInternal, "SHA-256 failed");
  Result<ValidationReport> report = ValidateWithDigest(program, options, std::move(sha256));
  if (report.ok()) report->timing.total_ms = MillisecondsSince(start);
  return report;
}

Result<ValidationReport> ValidateWithDigest(std::span<const std::byte> program,
                                            const ValidatorOptions& options, std::string sha256,
                                            DecodePath path) {
  const auto start = std::chrono::steady_clock::now();
  ValidationReport report;
  report.zydis_version = ZydisVersionString();
  report.sha256 = std::move(sha256);
  report.counts.program_bytes = program.size();
  Reasons reasons(&report, options.max_listed_reasons);

  Result<ElfImage> parsed = ParseElf(program, options.elf_limits);
  if (!parsed.ok()) {
    reasons.Add(std::string(parsed.status().code_name()), parsed.status().message());
    report.timing.validate_ms = MillisecondsSince(start);
    report.timing.total_ms = report.timing.validate_ms;
    return report;
  }
  const ElfImage& image = *parsed;
  CheckStructure(program, image, &reasons);

  uint64_t zero_fill = 0;
  const std::vector<ExecRange> ranges = BuildExecRanges(program, image, &zero_fill);
  const CodeAnalysis code = AnalyzeCode(program, image, ranges, options, path);
  const AddressNamer namer(image);
  AddInstructionReasons(code, ranges, namer, &reasons);
  ReportSitesAndRegions(code, ranges, namer, options, &report, &reasons);
  CheckDataShare(code, options, &reasons);
  AddNotes(code, image, zero_fill, &report);
  FillCounts(code, &report.counts);

  report.verdict = report.reasons_total == 0 ? Verdict::kAccepted : Verdict::kRejected;
  report.timing.validate_ms = MillisecondsSince(start);
  report.timing.total_ms = report.timing.validate_ms;
  return report;
}

}  // namespace zerofarm::sandbox
