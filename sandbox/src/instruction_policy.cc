#include "instruction_policy.h"

#include <array>
#include <cstdint>
#include <cstdio>
#include <span>

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

}  // namespace

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

}  // namespace zerofarm::sandbox
