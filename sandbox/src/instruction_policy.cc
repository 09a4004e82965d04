#include "instruction_policy.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <span>

#include "validate_internal.h"

namespace zerofarm::sandbox {
namespace {

using enum Decision;

struct MnemonicRule {
  ZydisMnemonic mnemonic;
  Decision decision;
  const char* reason;
};

struct CategoryRule {
  ZydisInstructionCategory category;
  Decision decision;
  const char* reason;
};

// ---------------------------------------------------------------------------------------------
// THE POLICY. Rules apply in this order and the first that matches decides:
//   1. kMnemonicRules (explicit decisions; they override categories and Zydis's privileged
//      attribute, which misses lgdt, cli, in/out, rdpmc and others);
//   2. far branches (call/jmp/ret with a segment selector);
//   3. writes to a segment register;
//   4. kCategoryRules;
//   5. Zydis's privileged attribute;
//   6. everything else is an ordinary user-mode instruction: allowed.
// The kernel's seccomp filter in the runner, not this table, decides which system calls run.
// ---------------------------------------------------------------------------------------------
constexpr MnemonicRule kMnemonicRules[] = {
    // Allowed on purpose although Zydis files them under SYSTEM or INTERRUPT or flags them
    // privileged. A policy rejecting hlt or rdtsc rejects every static glibc program.
    {ZYDIS_MNEMONIC_HLT, kAllowNoted,
     "faults (#GP, SIGSEGV) in user mode; glibc's abort, _exit and _start end with it"},
    {ZYDIS_MNEMONIC_RDTSC, kAllowNoted,
     "reads the time-stamp counter (glibc's mutex spin, av_get_random_seed)"},
    {ZYDIS_MNEMONIC_RDTSCP, kAllowNoted, "reads the time-stamp counter and the CPU number"},
    {ZYDIS_MNEMONIC_INT3, kAllowNoted,
     "breakpoint: SIGTRAP to the program itself; compilers pad with it"},
    {ZYDIS_MNEMONIC_UD0, kAllowNoted, "undefined instruction: SIGILL to the program itself"},
    {ZYDIS_MNEMONIC_UD1, kAllowNoted, "undefined instruction: SIGILL to the program itself"},
    {ZYDIS_MNEMONIC_UD2, kAllowNoted, "undefined instruction (__builtin_trap): SIGILL"},
    {ZYDIS_MNEMONIC_CPUID, kAllowNoted, "CPU feature detection (glibc, FFmpeg, x264)"},
    {ZYDIS_MNEMONIC_XGETBV, kAllowNoted, "reads XCR0 for AVX feature detection"},
    {ZYDIS_MNEMONIC_RDFSBASE, kAllow, "reads the program's own thread-pointer base"},
    {ZYDIS_MNEMONIC_RDGSBASE, kAllow, "reads the program's own GS base"},
    {ZYDIS_MNEMONIC_SYSCALL, kAllowListed,
     "the 64-bit system call gate; the runner's seccomp filter decides which calls succeed"},

    // Denied: ways into the kernel other than `syscall`.
    {ZYDIS_MNEMONIC_SYSENTER, kDeny, "enters the kernel's 32-bit compat system call path"},
    {ZYDIS_MNEMONIC_INT, kDeny, "software interrupt (int 0x80 is the 32-bit system call gate)"},
    {ZYDIS_MNEMONIC_INT1, kDeny, "icebp: debug trap through the interrupt table"},
    {ZYDIS_MNEMONIC_INTO, kDeny, "overflow interrupt"},
    // Denied: privilege-level and segment changes.
    {ZYDIS_MNEMONIC_IRET, kDeny, "interrupt return: reloads CS, SS and flags"},
    {ZYDIS_MNEMONIC_IRETD, kDeny, "interrupt return: reloads CS, SS and flags"},
    {ZYDIS_MNEMONIC_IRETQ, kDeny, "interrupt return: reloads CS, SS and flags"},
    {ZYDIS_MNEMONIC_SYSEXIT, kDeny, "kernel-to-user return"},
    {ZYDIS_MNEMONIC_SYSRET, kDeny, "kernel-to-user return"},
    {ZYDIS_MNEMONIC_SWAPGS, kDeny, "swaps the kernel GS base"},
    {ZYDIS_MNEMONIC_LDS, kDeny, "loads a segment register"},
    {ZYDIS_MNEMONIC_LES, kDeny, "loads a segment register"},
    {ZYDIS_MNEMONIC_LFS, kDeny, "loads a segment register"},
    {ZYDIS_MNEMONIC_LGS, kDeny, "loads a segment register"},
    {ZYDIS_MNEMONIC_LSS, kDeny, "loads a segment register"},
    {ZYDIS_MNEMONIC_WRFSBASE, kDeny, "rewrites a segment base behind the runner's back"},
    {ZYDIS_MNEMONIC_WRGSBASE, kDeny, "rewrites a segment base behind the runner's back"},
    // Denied: interrupt flag and port I/O (IOPL-sensitive, not flagged privileged by Zydis).
    {ZYDIS_MNEMONIC_CLI, kDeny, "clears the interrupt flag"},
    {ZYDIS_MNEMONIC_STI, kDeny, "sets the interrupt flag"},
    {ZYDIS_MNEMONIC_IN, kDeny, "port I/O"},
    {ZYDIS_MNEMONIC_OUT, kDeny, "port I/O"},
    // Denied: descriptor tables and system registers.
    {ZYDIS_MNEMONIC_LGDT, kDeny, "loads the global descriptor table"},
    {ZYDIS_MNEMONIC_LIDT, kDeny, "loads the interrupt descriptor table"},
    {ZYDIS_MNEMONIC_LLDT, kDeny, "loads the local descriptor table"},
    {ZYDIS_MNEMONIC_LTR, kDeny, "loads the task register"},
    {ZYDIS_MNEMONIC_SGDT, kDeny, "reveals the GDT address (kernel layout) where UMIP is off"},
    {ZYDIS_MNEMONIC_SIDT, kDeny, "reveals the IDT address (kernel layout) where UMIP is off"},
    {ZYDIS_MNEMONIC_SLDT, kDeny, "reveals the LDT selector where UMIP is off"},
    {ZYDIS_MNEMONIC_STR, kDeny, "reveals the task register where UMIP is off"},
    {ZYDIS_MNEMONIC_SMSW, kDeny, "reveals CR0 bits where UMIP is off"},
    {ZYDIS_MNEMONIC_LAR, kDeny, "inspects segment descriptors"},
    {ZYDIS_MNEMONIC_LSL, kDeny, "inspects segment descriptors"},
    {ZYDIS_MNEMONIC_VERR, kDeny, "inspects segment descriptors"},
    {ZYDIS_MNEMONIC_VERW, kDeny, "inspects segment descriptors"},
    {ZYDIS_MNEMONIC_RDPMC, kDeny, "reads performance counters: a side channel (CR4.PCE)"},
    {ZYDIS_MNEMONIC_RDMSR, kDeny, "reads a model-specific register"},
    {ZYDIS_MNEMONIC_WRMSR, kDeny, "writes a model-specific register"},
    {ZYDIS_MNEMONIC_INVLPG, kDeny, "TLB control"},
    {ZYDIS_MNEMONIC_VMCALL, kDeny, "hypervisor call"},
    {ZYDIS_MNEMONIC_VMMCALL, kDeny, "hypervisor call"},
    {ZYDIS_MNEMONIC_VMFUNC, kDeny, "hypervisor function"},
};

constexpr CategoryRule kCategoryRules[] = {
    {ZYDIS_CATEGORY_SYSTEM, kDeny,
     "system instruction (descriptor tables, MSRs, caches, TLB, SVM, SMX)"},
    {ZYDIS_CATEGORY_IO, kDeny, "port I/O"},
    {ZYDIS_CATEGORY_IOSTRINGOP, kDeny, "port I/O"},
    {ZYDIS_CATEGORY_INTERRUPT, kDeny, "software interrupt"},
    {ZYDIS_CATEGORY_SYSCALL, kDeny, "a system call gate other than syscall"},
    {ZYDIS_CATEGORY_SYSRET, kDeny, "return from the kernel or from system management mode"},
    {ZYDIS_CATEGORY_SEGOP, kDeny, "loads a segment register"},
    {ZYDIS_CATEGORY_VTX, kDeny, "virtualization (VMX) instruction"},
    {ZYDIS_CATEGORY_SGX, kDeny, "enclave (SGX) instruction"},
    {ZYDIS_CATEGORY_PCONFIG, kDeny, "platform configuration"},
    {ZYDIS_CATEGORY_SMAP, kDeny, "supervisor-mode access control"},
    {ZYDIS_CATEGORY_UINTR, kDeny, "user interrupts need kernel setup the sandbox does not give"},
};

constexpr const char* kFarBranchReason = "far call, jmp or ret: loads a code segment selector";
constexpr const char* kSegmentWriteReason = "writes a segment register";
constexpr const char* kPrivilegedReason = "privileged (ring 0) instruction";

// mov Sreg, r/m16 (8E /r) and pop fs / pop gs (0F A1, 0F A9). Reading a segment register
// (8C, push fs/gs) is harmless and allowed; lfs/lgs/lss are rules above.
bool WritesSegmentRegister(const ZydisDecodedInstruction& in) {
  if (in.mnemonic == ZYDIS_MNEMONIC_MOV) {
    return in.opcode_map == ZYDIS_OPCODE_MAP_DEFAULT && in.opcode == 0x8E;
  }
  if (in.mnemonic == ZYDIS_MNEMONIC_POP) {
    return in.opcode_map == ZYDIS_OPCODE_MAP_0F && (in.opcode == 0xA1 || in.opcode == 0xA9);
  }
  return false;
}

// Dense lookup tables from the rule lists (index + 1, 0 = no rule), built once.
struct Lookup {
  std::array<uint8_t, ZYDIS_MNEMONIC_MAX_VALUE + 1> mnemonic{};
  std::array<uint8_t, ZYDIS_CATEGORY_MAX_VALUE + 1> category{};
  Lookup() {
    static_assert(std::size(kMnemonicRules) < 255 && std::size(kCategoryRules) < 255);
    for (size_t i = 0; i < std::size(kMnemonicRules); ++i) {
      mnemonic[kMnemonicRules[i].mnemonic] = static_cast<uint8_t>(i + 1);
    }
    for (size_t i = 0; i < std::size(kCategoryRules); ++i) {
      category[kCategoryRules[i].category] = static_cast<uint8_t>(i + 1);
    }
  }
};

const Lookup& Tables() {
  static const Lookup lookup;
  return lookup;
}

const char* DecisionName(Decision d) {
  switch (d) {
    case kAllow:
      return "allow";
    case kAllowNoted:
      return "allow, counted";
    case kAllowListed:
      return "allow, sites listed";
    case kDeny:
      return "DENY";
  }
  return "?";
}

// Control never falls through these.
bool EndsStream(const ZydisDecodedInstruction& in) {
  switch (in.meta.category) {
    case ZYDIS_CATEGORY_RET:
      return true;
    case ZYDIS_CATEGORY_UNCOND_BR:
      return in.mnemonic != ZYDIS_MNEMONIC_XABORT;  // a no-op outside a transaction
    default:
      break;
  }
  switch (in.mnemonic) {
    case ZYDIS_MNEMONIC_HLT:
    case ZYDIS_MNEMONIC_UD0:
    case ZYDIS_MNEMONIC_UD1:
    case ZYDIS_MNEMONIC_UD2:
    case ZYDIS_MNEMONIC_INT3:
      return true;
    default:
      return false;
  }
}

// ---------------------------------------------------------------------------------------------
// The table-driven decoder for common opcodes. It handles only instructions whose decoding is
// fully determined by the few bytes it reads (prefixes, opcode, ModRM, SIB) and that the policy
// allows without naming them; everything else, and every prefix combination it does not know,
// goes to Zydis. The tests compare it with Zydis for every opcode, ModRM and SIB pattern and
// for every instruction of real programs.
// ---------------------------------------------------------------------------------------------

// Which prefixes an opcode accepts. Legacy prefixes here are 66 (operand size) and the segment
// overrides; F2/F3 only as SSE mandatory prefixes; F0 (lock) never.
enum PrefixRule : uint8_t {
  kNotHandled = 0,
  kPlain,    // 66, segment overrides and REX
  kBareRex,  // REX only (push, pop, near indirect branches)
  kBare,     // none at all (relative branches, ret, nop)
  kSse,      // segment overrides, REX, and at most one mandatory prefix (none, 66, F3, F2)
};

enum ImmKind : uint8_t {
  kImmNone = 0,
  kImm8,
  kImm16,
  kImmZ,  // 16 bits with 66 (and no REX.W), else 32
  kImmV,  // 64 bits with REX.W, 16 with 66, else 32 (mov r, imm)
  kRel8,
  kRel32,
};

enum ShapeFlag : uint8_t {
  kMemOnly = 1,    // ModRM must name memory (mod != 3)
  kRegOnly = 2,    // ModRM must name a register (mod == 3)
  kEnds = 4,       // ends the stream
  kNop = 8,        // nop category
  kLea = 16,       // lea: RIP-relative forms are reported
  kImmReg0 = 32,   // the immediate is present only for ModRM.reg 0 (test in the F6/F7 group)
  kEndsReg4 = 64,  // ends the stream for ModRM.reg 4 (jmp in the FF group)
};

// Mandatory prefixes for kSse opcodes, as a mask.
constexpr uint8_t kMpNone = 1, kMp66 = 2, kMpF3 = 4, kMpF2 = 8;
constexpr uint8_t kMpAll = kMpNone | kMp66 | kMpF3 | kMpF2;

// What each prefix byte the fast path knows is.
enum PrefixBit : uint8_t { kPfxOpsize = 1, kPfxSegment = 2, kPfxF2 = 4, kPfxF3 = 8 };

constexpr std::array<uint8_t, 256> kPrefixBits = [] {
  std::array<uint8_t, 256> bits{};
  bits[0x66] = kPfxOpsize;
  for (int b : {0x2E, 0x3E, 0x26, 0x36, 0x64, 0x65}) bits[b] = kPfxSegment;
  bits[0xF2] = kPfxF2;
  bits[0xF3] = kPfxF3;
  return bits;
}();

// Bytes of displacement after a ModRM byte, and whether a SIB byte comes first (0x10).
constexpr std::array<uint8_t, 256> kModrmExtra = [] {
  std::array<uint8_t, 256> extra{};
  for (int m = 0; m < 256; ++m) {
    const int mod = m >> 6;
    const int rm = m & 7;
    if (mod == 3) continue;
    uint8_t e = mod == 1 ? 1 : mod == 2 ? 4 : 0;
    if (rm == 4) e |= 0x10;
    if (mod == 0 && rm == 5) e = 4;  // RIP-relative
    extra[m] = e;
  }
  return extra;
}();

// Immediate bytes by kind and by (66 present ? 2 : 0) | (REX.W ? 1 : 0).
constexpr uint8_t kImmBytes[7][4] = {
    {0, 0, 0, 0},  // none
    {1, 1, 1, 1},  // ib
    {2, 2, 2, 2},  // iw
    {4, 4, 2, 4},  // iz
    {4, 8, 2, 8},  // iv
    {1, 1, 1, 1},  // rel8
    {4, 4, 4, 4},  // rel32
};

// What the prefix rules come to, checked together: the mandatory-prefix class allowed
// (none, 66, F3, F2), and whether segment overrides or REX are refused.
constexpr uint8_t kRefuseSegment = 1, kRefuseRex = 2;

struct Shape {
  PrefixRule rule = kNotHandled;
  ImmKind imm = kImmNone;
  uint8_t reg_ok = 0;  // allowed ModRM.reg values as a bit mask; 0: no ModRM byte
  uint8_t flags = 0;
  uint8_t mandatory = 0;  // kSse: the allowed mandatory prefixes
  // Derived from the above once the table is built.
  uint8_t prefix_classes = 0;  // allowed classes (kMp*); 0 for kNotHandled
  uint8_t refuse = 0;          // kRefuseSegment | kRefuseRex
};

constexpr uint8_t kAnyReg = 0xFF;

// An instruction of the 0F map in the two-byte VEX form (C5): AVX and AVX2.
struct VexShape {
  uint8_t pp_ok = 0;     // allowed VEX.pp as a mask in the order none, 66, F3, F2 (as kMp*)
  uint8_t l_ok = 0;      // allowed VEX.L: bit 0 for 128 bits, bit 1 for 256; 0: not handled
  bool no_vvvv = false;  // VEX.vvvv must be 1111 (no second source)
  ImmKind imm = kImmNone;
  uint8_t reg_ok = kAnyReg;  // allowed ModRM.reg values; 0: no ModRM byte
  uint8_t flags = 0;         // kMemOnly, kRegOnly
};

struct ShapeTables {
  std::array<Shape, 256> one{};     // one-byte opcode map
  std::array<Shape, 256> two{};     // 0F map
  std::array<VexShape, 256> vex{};  // 0F map under a C5 prefix

  constexpr ShapeTables() {
    // The eight classic ALU operations: r/m,r  r,r/m  AL,ib  eAX,iz.
    for (int base = 0x00; base <= 0x38; base += 8) {
      for (int k = 0; k < 4; ++k) one[base + k] = {kPlain, kImmNone, kAnyReg, 0, 0};
      one[base + 4] = {kPlain, kImm8, 0, 0, 0};
      one[base + 5] = {kPlain, kImmZ, 0, 0, 0};
    }
    for (int op = 0x50; op <= 0x5F; ++op) one[op] = {kBareRex, kImmNone, 0, 0, 0};  // push, pop
    one[0x63] = {kPlain, kImmNone, kAnyReg, 0, 0};                                  // movsxd
    one[0x68] = {kBareRex, kImmZ, 0, 0, 0};                                         // push iz
    one[0x69] = {kPlain, kImmZ, kAnyReg, 0, 0};                                     // imul iz
    one[0x6A] = {kBareRex, kImm8, 0, 0, 0};                                         // push ib
    one[0x6B] = {kPlain, kImm8, kAnyReg, 0, 0};                                     // imul ib
    for (int op = 0x70; op <= 0x7F; ++op) one[op] = {kBare, kRel8, 0, 0, 0};        // jcc rel8
    one[0x80] = {kPlain, kImm8, kAnyReg, 0, 0};
    one[0x81] = {kPlain, kImmZ, kAnyReg, 0, 0};
    one[0x83] = {kPlain, kImm8, kAnyReg, 0, 0};
    for (int op = 0x84; op <= 0x8B; ++op) one[op] = {kPlain, kImmNone, kAnyReg, 0, 0};
    one[0x8D] = {kPlain, kImmNone, kAnyReg, kMemOnly | kLea, 0};                  // lea
    one[0x8F] = {kBareRex, kImmNone, 0x01, 0, 0};                                 // pop r/m
    one[0x90] = {kBare, kImmNone, 0, kNop, 0};                                    // nop
    for (int op = 0x91; op <= 0x99; ++op) one[op] = {kPlain, kImmNone, 0, 0, 0};  // xchg, cdq
    one[0xA8] = {kPlain, kImm8, 0, 0, 0};                                         // test al, ib
    one[0xA9] = {kPlain, kImmZ, 0, 0, 0};                                         // test eax, iz
    for (int op = 0xB0; op <= 0xB7; ++op) one[op] = {kPlain, kImm8, 0, 0, 0};     // mov r8, ib
    for (int op = 0xB8; op <= 0xBF; ++op) one[op] = {kPlain, kImmV, 0, 0, 0};     // mov r, iv
    constexpr uint8_t kShifts = kAnyReg & ~(1u << 6);  // /6 is an undocumented alias
    one[0xC0] = {kPlain, kImm8, kShifts, 0, 0};
    one[0xC1] = {kPlain, kImm8, kShifts, 0, 0};
    one[0xC2] = {kBare, kImm16, 0, kEnds, 0};  // ret iw
    one[0xC3] = {kBare, kImmNone, 0, kEnds, 0};
    one[0xC6] = {kPlain, kImm8, 0x01, 0, 0};  // mov r/m8, ib
    one[0xC7] = {kPlain, kImmZ, 0x01, 0, 0};  // mov r/m, iz
    for (int op = 0xD0; op <= 0xD3; ++op) one[op] = {kPlain, kImmNone, kShifts, 0, 0};
    one[0xE8] = {kBare, kRel32, 0, 0, 0};                 // call
    one[0xE9] = {kBare, kRel32, 0, kEnds, 0};             // jmp
    one[0xEB] = {kBare, kRel8, 0, kEnds, 0};              // jmp short
    one[0xF5] = {kPlain, kImmNone, 0, 0, 0};              // cmc
    constexpr uint8_t kTestGroup = kAnyReg & ~(1u << 1);  // /1 is an undocumented alias
    one[0xF6] = {kPlain, kImm8, kTestGroup, kImmReg0, 0};
    one[0xF7] = {kPlain, kImmZ, kTestGroup, kImmReg0, 0};
    for (int op : {0xF8, 0xF9, 0xFC, 0xFD}) one[op] = {kPlain, kImmNone, 0, 0, 0};  // clc ...
    one[0xFE] = {kPlain, kImmNone, 0x03, 0, 0};                                     // inc, dec r/m8
    // inc, dec, call near, jmp near, push: REX only, so that the branches stay near.
    one[0xFF] = {kBareRex, kImmNone, 0x01 | 0x02 | 0x04 | 0x10 | 0x40, kEndsReg4, 0};

    // The 0F map: general-purpose instructions.
    two[0x1F] = {kPlain, kImmNone, 0x01, kNop, 0};                                      // nop r/m
    for (int op = 0x40; op <= 0x4F; ++op) two[op] = {kPlain, kImmNone, kAnyReg, 0, 0};  // cmovcc
    for (int op = 0x80; op <= 0x8F; ++op) two[op] = {kBare, kRel32, 0, 0, 0};           // jcc
    for (int op = 0x90; op <= 0x9F; ++op) two[op] = {kPlain, kImmNone, kAnyReg, 0, 0};  // setcc
    for (int op : {0xA3, 0xA5, 0xAB, 0xAD, 0xAF, 0xB0, 0xB1, 0xB3, 0xB6, 0xB7, 0xBB, 0xBC, 0xBD,
                   0xBE, 0xBF, 0xC0, 0xC1}) {
      two[op] = {kPlain, kImmNone, kAnyReg, 0, 0};  // bt, shld, imul, cmpxchg, movzx, bsf, xadd
    }
    two[0xA4] = {kPlain, kImm8, kAnyReg, 0, 0};                                     // shld ib
    two[0xAC] = {kPlain, kImm8, kAnyReg, 0, 0};                                     // shrd ib
    two[0xBA] = {kPlain, kImm8, 0xF0, 0, 0};                                        // bt group ib
    for (int op = 0xC8; op <= 0xCF; ++op) two[op] = {kBareRex, kImmNone, 0, 0, 0};  // bswap

    // The 0F map: SSE and MMX, by mandatory prefix.
    auto sse = [this](int op, uint8_t mandatory, ImmKind imm = kImmNone, uint8_t reg_ok = kAnyReg,
                      uint8_t flags = 0) {
      two[op] = {kSse, imm, reg_ok, flags, mandatory};
    };
    sse(0x10, kMpAll);  // movups, movupd, movss, movsd
    sse(0x11, kMpAll);
    sse(0x14, kMpNone | kMp66);  // unpcklps
    sse(0x15, kMpNone | kMp66);
    sse(0x28, kMpNone | kMp66);  // movaps
    sse(0x29, kMpNone | kMp66);
    sse(0x2A, kMpF3 | kMpF2);  // cvtsi2ss, cvtsi2sd
    sse(0x2C, kMpF3 | kMpF2);  // cvttss2si, cvttsd2si
    sse(0x2D, kMpF3 | kMpF2);
    sse(0x2E, kMpNone | kMp66);  // ucomiss
    sse(0x2F, kMpNone | kMp66);
    sse(0x51, kMpAll);                                               // sqrt
    for (int op = 0x54; op <= 0x57; ++op) sse(op, kMpNone | kMp66);  // and, andn, or, xor
    for (int op : {0x58, 0x59, 0x5A, 0x5C, 0x5D, 0x5E, 0x5F}) sse(op, kMpAll);
    sse(0x5B, kMpNone | kMp66 | kMpF3);
    for (int op = 0x60; op <= 0x6B; ++op) sse(op, kMpNone | kMp66);  // unpack, pack, compare
    sse(0x6C, kMp66);
    sse(0x6D, kMp66);
    sse(0x6E, kMpNone | kMp66);               // movd
    sse(0x6F, kMpNone | kMp66 | kMpF3);       // movq, movdqa, movdqu
    sse(0x70, kMpAll, kImm8);                 // pshufw, pshufd, pshufhw, pshuflw
    sse(0x71, kMp66, kImm8, 0x54, kRegOnly);  // psrlw, psraw, psllw ib
    sse(0x72, kMp66, kImm8, 0x54, kRegOnly);
    sse(0x73, kMp66, kImm8, 0xCC, kRegOnly);  // psrlq, psrldq, psllq, pslldq ib
    for (int op = 0x74; op <= 0x76; ++op) sse(op, kMpNone | kMp66);  // pcmpeq
    sse(0x7E, kMpNone | kMp66 | kMpF3);                              // movd, movq
    sse(0x7F, kMpNone | kMp66 | kMpF3);
    sse(0xC6, kMpNone | kMp66, kImm8);  // shufps
    sse(0xD6, kMp66);                   // movq
    for (int op = 0xD1; op <= 0xFE; ++op) {
      if (op == 0xD6 || op == 0xD7 || op == 0xE6 || op == 0xE7 || op == 0xF0 || op == 0xF7) {
        continue;
      }
      sse(op, kMpNone | kMp66);  // MMX and SSE2 integer arithmetic
    }
    // The 0F map under C5: integer AVX2 with three operands (66), moves and shuffles.
    auto avx = [this](int op, uint8_t pp_ok, bool no_vvvv = false, ImmKind imm = kImmNone,
                      uint8_t reg_ok = kAnyReg,
                      uint8_t flags = 0) { vex[op] = {pp_ok, 3, no_vvvv, imm, reg_ok, flags}; };
    for (int op = 0x60; op <= 0x6D; ++op) avx(op, kMp66);  // unpack, pack, compare
    for (int op = 0x74; op <= 0x76; ++op) avx(op, kMp66);  // pcmpeq
    for (int op = 0xD1; op <= 0xFE; ++op) {
      if (op == 0xD6 || op == 0xD7 || op == 0xE6 || op == 0xE7 || op == 0xF0 || op == 0xF7) {
        continue;
      }
      avx(op, kMp66);  // integer arithmetic and logic
    }
    avx(0x6F, kMp66 | kMpF3, true);  // vmovdqa, vmovdqu
    avx(0x7F, kMp66 | kMpF3, true);
    avx(0x70, kMp66 | kMpF3 | kMpF2, true, kImm8);   // vpshufd, vpshufhw, vpshuflw
    avx(0x71, kMp66, false, kImm8, 0x54, kRegOnly);  // shifts by an immediate
    avx(0x72, kMp66, false, kImm8, 0x54, kRegOnly);
    avx(0x73, kMp66, false, kImm8, 0xCC, kRegOnly);
    avx(0x28, kMpNone | kMp66, true);  // vmovaps, vmovapd
    avx(0x29, kMpNone | kMp66, true);
    for (int op = 0x54; op <= 0x57; ++op) avx(op, kMpNone | kMp66);       // and, andn, or, xor
    for (int op : {0x58, 0x59, 0x5C, 0x5D, 0x5E, 0x5F}) avx(op, kMpAll);  // add, mul, sub ...
    vex[0x77] = {kMpNone, 3, true, kImmNone, 0, 0};                       // vzeroupper, vzeroall

    for (auto* table : {&one, &two}) {
      for (Shape& shape : *table) Derive(&shape);
    }
  }

  static constexpr void Derive(Shape* shape) {
    switch (shape->rule) {
      case kNotHandled:
        break;
      case kPlain:
        shape->prefix_classes = kMpNone | kMp66;
        break;
      case kBareRex:
        shape->prefix_classes = kMpNone;
        shape->refuse = kRefuseSegment;
        break;
      case kBare:
        shape->prefix_classes = kMpNone;
        shape->refuse = kRefuseSegment | kRefuseRex;
        break;
      case kSse:
        shape->prefix_classes = shape->mandatory;
        break;
    }
  }
};

constexpr ShapeTables kShapes;

uint64_t ReadLittle(const uint8_t* p, unsigned n) {
  uint64_t v = 0;
  std::memcpy(&v, p, n);  // x86-64 is little-endian
  return v;
}

int64_t SignExtend(uint64_t v, unsigned bytes) {
  const unsigned shift = 64 - 8 * bytes;
  return static_cast<int64_t>(v << shift) >> shift;
}

}  // namespace

bool InstructionFacts::operator==(const InstructionFacts& o) const {
  return length == o.length && decision == o.decision && ends_stream == o.ends_stream &&
         relative == o.relative && nop == o.nop && rip_lea == o.rip_lea && mnemonic == o.mnemonic &&
         displacement == o.displacement && std::strcmp(reason, o.reason) == 0;
}

InstructionFacts FactsOf(const ZydisDecodedInstruction& in) {
  InstructionFacts f;
  f.length = in.length;
  const PolicyDecision d = Decide(in);
  f.decision = d.decision;
  if (d.decision == kDeny || d.decision == kAllowNoted) f.reason = d.reason;
  if (d.decision == kAllowNoted) f.mnemonic = static_cast<uint16_t>(in.mnemonic);
  f.ends_stream = EndsStream(in);
  f.nop = in.meta.category == ZYDIS_CATEGORY_NOP || in.meta.category == ZYDIS_CATEGORY_WIDENOP;
  if (in.raw.imm[0].is_relative) {
    f.relative = true;
    f.displacement = in.raw.imm[0].value.s;
  } else if (in.mnemonic == ZYDIS_MNEMONIC_LEA && in.raw.modrm.mod == 0 && in.raw.modrm.rm == 5) {
    // lea reg, [rip + disp32] (ModRM mod 00, r/m 101)
    f.rip_lea = true;
    f.displacement = in.raw.disp.value;
  }
  return f;
}

// An instruction in the two-byte VEX form, C5 first, without any prefix before it.
bool DecodeVex2(const uint8_t* p, size_t size, InstructionFacts* facts) {
  if (size < 3) return false;
  const uint8_t payload = p[1];
  const unsigned pp = payload & 3;
  const unsigned l = (payload >> 2) & 1;
  const unsigned vvvv = (~payload >> 3) & 15;
  const VexShape& shape = kShapes.vex[p[2]];
  if ((shape.pp_ok & (1u << pp)) == 0 || (shape.l_ok & (1u << l)) == 0) return false;
  if (shape.no_vvvv && vvvv != 0) return false;
  size_t i = 3;
  if (shape.reg_ok != 0) {
    if (i >= size) return false;
    const uint8_t modrm = p[i++];
    const unsigned mod = modrm >> 6;
    if ((shape.reg_ok & (1u << ((modrm >> 3) & 7))) == 0) return false;
    if ((shape.flags & kMemOnly) != 0 && mod == 3) return false;
    if ((shape.flags & kRegOnly) != 0 && mod != 3) return false;
    const uint8_t extra = kModrmExtra[modrm];
    unsigned disp = extra & 0x0F;
    if ((extra & 0x10) != 0) {
      if (i >= size) return false;
      if (mod == 0 && (p[i] & 7) == 5) disp = 4;
      ++i;
    }
    i += disp;
  }
  i += kImmBytes[shape.imm][0];
  if (i > size) return false;
  *facts = InstructionFacts{};
  facts->length = static_cast<uint8_t>(i);
  return true;
}

bool DecodeCommonInstruction(const uint8_t* p, size_t size, InstructionFacts* facts) {
  if (size > 0 && p[0] == 0xC5) return DecodeVex2(p, size, facts);
  // Prefixes: 66, segment overrides, at most one F2/F3 (not with 66), then at most one REX.
  size_t i = 0;
  unsigned seen = 0;
  while (i < size) {
    const uint8_t bit = kPrefixBits[p[i]];
    if (bit == 0) break;
    if ((bit & (kPfxF2 | kPfxF3)) != 0 && (seen & (kPfxF2 | kPfxF3)) != 0) {
      return false;  // F2 with F3, or one of them twice
    }
    seen |= bit;
    if (++i > 4) return false;
  }
  if ((seen & (kPfxF2 | kPfxF3)) != 0 && (seen & kPfxOpsize) != 0) return false;
  uint8_t rex = 0;
  if (i < size && (p[i] & 0xF0) == 0x40) rex = p[i++];
  if (i >= size) return false;
  uint8_t op = p[i++];
  const Shape* shape = &kShapes.one[op];
  if (op == 0x0F) {
    if (i >= size) return false;
    op = p[i++];
    // endbr64 (F3 0F 1E FA), which CET-enabled compilers put at every function start.
    if (op == 0x1E && seen == kPfxF3 && rex == 0 && i < size && p[i] == 0xFA) {
      *facts = InstructionFacts{};
      facts->length = static_cast<uint8_t>(i + 1);
      return true;
    }
    shape = &kShapes.two[op];
  }
  const uint8_t prefix_class = (seen & kPfxF3)       ? kMpF3
                               : (seen & kPfxF2)     ? kMpF2
                               : (seen & kPfxOpsize) ? kMp66
                                                     : kMpNone;
  if ((shape->prefix_classes & prefix_class) == 0) return false;  // also: not handled
  if ((shape->refuse & kRefuseSegment) != 0 && (seen & kPfxSegment) != 0) return false;
  if ((shape->refuse & kRefuseRex) != 0 && rex != 0) return false;
  const bool wide = (rex & 0x08) != 0;
  uint8_t reg = 0;
  uint8_t mod = 3;
  uint8_t rm = 0;
  if (shape->reg_ok != 0) {
    if (i >= size) return false;
    const uint8_t modrm = p[i++];
    mod = modrm >> 6;
    reg = (modrm >> 3) & 7;
    rm = modrm & 7;
    if ((shape->reg_ok & (1u << reg)) == 0) return false;
    if ((shape->flags & kMemOnly) != 0 && mod == 3) return false;
    if ((shape->flags & kRegOnly) != 0 && mod != 3) return false;
    const uint8_t extra = kModrmExtra[modrm];
    unsigned disp = extra & 0x0F;
    if ((extra & 0x10) != 0) {
      if (i >= size) return false;
      const uint8_t sib = p[i++];
      if (mod == 0 && (sib & 7) == 5) disp = 4;
    }
    i += disp;
  }
  const size_t disp_end = i;
  unsigned imm = kImmBytes[shape->imm][((seen & kPfxOpsize) != 0 ? 2 : 0) | (wide ? 1 : 0)];
  if ((shape->flags & kImmReg0) != 0 && reg != 0) imm = 0;
  i += imm;
  if (i > size || i > ZYDIS_MAX_INSTRUCTION_LENGTH) return false;

  InstructionFacts f;
  f.length = static_cast<uint8_t>(i);
  f.ends_stream = (shape->flags & kEnds) != 0 || ((shape->flags & kEndsReg4) != 0 && reg == 4);
  f.nop = (shape->flags & kNop) != 0;
  if (shape->imm == kRel8 || shape->imm == kRel32) {
    f.relative = true;
    f.displacement = SignExtend(ReadLittle(p + disp_end, imm), imm);
  } else if ((shape->flags & kLea) != 0 && mod == 0 && rm == 5) {
    f.rip_lea = true;
    f.displacement = SignExtend(ReadLittle(p + disp_end - 4, 4), 4);
  }
  *facts = f;
  return true;
}

InstructionDecoder::InstructionDecoder(bool reference) : scratch_{}, reference_(reference) {
  ZydisDecoderInit(&decoder_, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64);
}

bool InstructionDecoder::DecodeWithZydis(const uint8_t* bytes, size_t size,
                                         InstructionFacts* facts) {
  if (!ZYAN_SUCCESS(ZydisDecoderDecodeInstruction(&decoder_, nullptr, bytes, size, &scratch_))) {
    return false;
  }
  *facts = FactsOf(scratch_);
  return true;
}

PolicyDecision Decide(const ZydisDecodedInstruction& in) {
  const Lookup& t = Tables();
  if (uint8_t i = t.mnemonic[in.mnemonic]; i != 0) {
    return {kMnemonicRules[i - 1].decision, kMnemonicRules[i - 1].reason};
  }
  if (in.meta.branch_type == ZYDIS_BRANCH_TYPE_FAR) return {kDeny, kFarBranchReason};
  if (WritesSegmentRegister(in)) return {kDeny, kSegmentWriteReason};
  if (uint8_t i = t.category[in.meta.category]; i != 0) {
    return {kCategoryRules[i - 1].decision, kCategoryRules[i - 1].reason};
  }
  if ((in.attributes & ZYDIS_ATTRIB_IS_PRIVILEGED) != 0) return {kDeny, kPrivilegedReason};
  return {kAllow, ""};
}

std::string DescribePolicy() {
  std::string out = "Instruction policy; the first matching rule decides.\n";
  char line[256];
  for (const MnemonicRule& r : kMnemonicRules) {
    std::snprintf(line, sizeof line, "  %-22s %-20s %s\n", ZydisMnemonicGetString(r.mnemonic),
                  DecisionName(r.decision), r.reason);
    out += line;
  }
  std::snprintf(line, sizeof line, "  %-22s %-20s %s\n", "(far call/jmp/ret)", "DENY",
                kFarBranchReason);
  out += line;
  std::snprintf(line, sizeof line, "  %-22s %-20s %s\n", "(mov sreg, pop fs/gs)", "DENY",
                kSegmentWriteReason);
  out += line;
  for (const CategoryRule& r : kCategoryRules) {
    std::snprintf(line, sizeof line, "  category %-13s %-20s %s\n",
                  ZydisCategoryGetString(r.category), DecisionName(r.decision), r.reason);
    out += line;
  }
  std::snprintf(line, sizeof line, "  %-22s %-20s %s\n", "(Zydis: privileged)", "DENY",
                kPrivilegedReason);
  out += line;
  std::snprintf(line, sizeof line, "  %-22s %-20s %s\n", "(anything else)", "allow",
                "ordinary user-mode instruction");
  out += line;
  return out;
}

namespace {

std::string FactsText(const InstructionFacts& f) {
  char text[256];
  std::snprintf(text, sizeof text,
                "length %u, %s%s%s%s%s, mnemonic %u, displacement %lld, reason \"%s\"", f.length,
                DecisionName(f.decision), f.ends_stream ? ", ends" : "",
                f.relative ? ", relative" : "", f.nop ? ", nop" : "", f.rip_lea ? ", rip lea" : "",
                f.mnemonic, static_cast<long long>(f.displacement), f.reason);
  return text;
}

}  // namespace

DecoderComparison CompareDecoders(std::span<const uint8_t> bytes) {
  InstructionDecoder decoder;
  InstructionFacts fast;
  InstructionFacts zydis;
  DecoderComparison c;
  c.fast = DecodeCommonInstruction(bytes.data(), bytes.size(), &fast);
  c.zydis = decoder.DecodeWithZydis(bytes.data(), bytes.size(), &zydis);
  c.same = c.fast && c.zydis && fast == zydis;
  c.length = c.zydis ? zydis.length : 0;
  return c;
}

std::string DescribeDecoders(std::span<const uint8_t> bytes) {
  std::string out = "bytes";
  char hex[4];
  for (uint8_t b : bytes.first(std::min<size_t>(bytes.size(), ZYDIS_MAX_INSTRUCTION_LENGTH))) {
    std::snprintf(hex, sizeof hex, " %02x", b);
    out += hex;
  }
  InstructionDecoder decoder;
  InstructionFacts f;
  out += "\n  fast:  ";
  out += DecodeCommonInstruction(bytes.data(), bytes.size(), &f) ? FactsText(f) : "(not taken)";
  out += "\n  zydis: ";
  out += decoder.DecodeWithZydis(bytes.data(), bytes.size(), &f) ? FactsText(f) : "(no decoding)";
  return out;
}

}  // namespace zerofarm::sandbox
