// The seccomp-bpf allow-list of the zerofarm sandbox: one table, read top to bottom.
//
// Architecture: x86-64 only. A syscall made through another ABI (`int 0x80` / i386, or x32 with
// __X32_SYSCALL_BIT set in the number) kills the program: no ABI detour around the table.
// Default: a syscall that no row names fails with EPERM. Rows either allow (some only for
// given argument values), fail with a chosen errno where a refusal is the gentler answer and a
// well-written program can carry on, or kill the program where the call has no use in a worker
// and only serves an attack (the runner then reports the syscall by name).
// What a real worker needs: after main() starts, read, write, close, mmap/munmap/mprotect/brk/
// madvise, futex, clone3 (answered ENOSYS, so glibc falls back to clone), set_robust_list,
// rseq, rt_sigprocmask, rt_sigaction, getrusage, exit. Static glibc's start-up adds brk,
// arch_prctl(ARCH_SET_FS), set_tid_address, prlimit64 (read), readlink (refused, harmless),
// getrandom, mprotect(PROT_READ) and newfstatat(fd, "", AT_EMPTY_PATH) for stdio.
#include "syscall_policy.h"

#include <asm/prctl.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "zerofarm/base/unique_fd.h"

namespace zerofarm::sandbox {
namespace {

enum class Act {
  kAllow,
  kErrno,  // fail with Rule::err
  kKill,   // kill the whole sandbox; the runner reports the syscall
};

// One argument comparison (libseccomp's scmp_arg_cmp without its C compound literals).
struct Arg {
  unsigned index = 0;
  scmp_compare op = SCMP_CMP_EQ;
  uint64_t a = 0;  // the value, or the mask for SCMP_CMP_MASKED_EQ
  uint64_t b = 0;  // the value for SCMP_CMP_MASKED_EQ
};

// The placeholder for the one descriptor the runner executes the program from.
constexpr uint64_t kExecFd = ~uint64_t{0};

struct Rule {
  const char* syscall;
  Act act;
  int err;      // for kErrno
  int nargs;    // how many of args[] apply (all must hold)
  Arg args[2];  // kExecFd in args[i].a is replaced by the exec descriptor
  const char* why;
};

constexpr uint64_t kProtExec = PROT_EXEC;
// A thread: shares memory, signal handlers and thread group; exit signal 0.
constexpr uint64_t kThreadFlags = CLONE_VM | CLONE_SIGHAND | CLONE_THREAD;
constexpr uint64_t kThreadOptionalFlags = CLONE_FS | CLONE_FILES | CLONE_SYSVSEM | CLONE_SETTLS |
                                          CLONE_PARENT_SETTID | CLONE_CHILD_CLEARTID |
                                          CLONE_CHILD_SETTID | CLONE_DETACHED;

// clang-format off
constexpr Rule kPolicy[] = {
  // --- I/O on descriptors the program already holds (its channels) -----------------------
  {"read",            Act::kAllow, 0, 0, {}, "channels"},
  {"write",           Act::kAllow, 0, 0, {}, "channels"},
  {"readv",           Act::kAllow, 0, 0, {}, "channels"},
  {"writev",          Act::kAllow, 0, 0, {}, "channels"},
  {"pread64",         Act::kAllow, 0, 0, {}, "channels (pipes answer ESPIPE)"},
  {"pwrite64",        Act::kAllow, 0, 0, {}, "channels (pipes answer ESPIPE)"},
  {"lseek",           Act::kAllow, 0, 0, {}, "channels (pipes answer ESPIPE)"},
  {"close",           Act::kAllow, 0, 0, {}, "channels"},
  {"fstat",           Act::kAllow, 0, 0, {}, "stdio asks what a descriptor is"},
  {"newfstatat",      Act::kAllow, 0, 1, {{3, SCMP_CMP_MASKED_EQ, AT_EMPTY_PATH, AT_EMPTY_PATH}},
                      "fstat() of an open descriptor only (path lookups are refused)"},
  {"dup",             Act::kAllow, 0, 0, {}, "bounded by RLIMIT_NOFILE"},
  {"dup2",            Act::kAllow, 0, 0, {}, "bounded by RLIMIT_NOFILE"},
  {"dup3",            Act::kAllow, 0, 0, {}, "bounded by RLIMIT_NOFILE"},
  {"fcntl",           Act::kAllow, 0, 1, {{1, SCMP_CMP_EQ, F_GETFD}}, "descriptor flags"},
  {"fcntl",           Act::kAllow, 0, 1, {{1, SCMP_CMP_EQ, F_SETFD}}, "descriptor flags"},
  {"fcntl",           Act::kAllow, 0, 1, {{1, SCMP_CMP_EQ, F_GETFL}}, "status flags"},
  {"fcntl",           Act::kAllow, 0, 1, {{1, SCMP_CMP_EQ, F_SETFL}}, "O_NONBLOCK on a channel"},
  {"fcntl",           Act::kAllow, 0, 1, {{1, SCMP_CMP_EQ, F_DUPFD}}, "bounded by RLIMIT_NOFILE"},
  {"fcntl",           Act::kAllow, 0, 1, {{1, SCMP_CMP_EQ, F_DUPFD_CLOEXEC}}, "same"},
  {"poll",            Act::kAllow, 0, 0, {}, "waiting on channels"},
  {"ppoll",           Act::kAllow, 0, 0, {}, "waiting on channels"},
  {"pselect6",        Act::kAllow, 0, 0, {}, "waiting on channels"},
  {"ioctl",           Act::kErrno, ENOTTY, 0, {}, "no channel is a terminal; isatty() says no"},

  // --- Memory: never executable -----------------------------------------------------------
  {"mmap",            Act::kAllow, 0, 1, {{2, SCMP_CMP_MASKED_EQ, kProtExec, 0}}, "heap, stacks"},
  {"mmap",            Act::kErrno, EACCES, 1, {{2, SCMP_CMP_MASKED_EQ, kProtExec, kProtExec}},
                      "no new executable memory: only validated bytes run"},
  {"mprotect",        Act::kAllow, 0, 1, {{2, SCMP_CMP_MASKED_EQ, kProtExec, 0}}, "RELRO, guards"},
  {"mprotect",        Act::kErrno, EACCES, 1, {{2, SCMP_CMP_MASKED_EQ, kProtExec, kProtExec}},
                      "no memory made executable (as SELinux execmem refuses it)"},
  {"munmap",          Act::kAllow, 0, 0, {}, "memory"},
  {"mremap",          Act::kAllow, 0, 0, {}, "realloc of large blocks (keeps protections)"},
  {"brk",             Act::kAllow, 0, 0, {}, "malloc"},
  {"madvise",         Act::kAllow, 0, 0, {}, "malloc, thread stacks"},
  {"pkey_mprotect",   Act::kErrno, EACCES, 0, {}, "same as mprotect with PROT_EXEC"},
  {"memfd_create",    Act::kErrno, EPERM, 0, {}, "no executable file can be made"},

  // --- Threads, never processes ----------------------------------------------------------
  {"clone",           Act::kAllow, 0, 1,
                      {{0, SCMP_CMP_MASKED_EQ, ~kThreadOptionalFlags, kThreadFlags}},
                      "pthread_create: CLONE_VM|CLONE_SIGHAND|CLONE_THREAD and only thread "
                      "options; fork() and namespace flags fall to EPERM"},
  {"clone3",          Act::kErrno, ENOSYS, 0, {}, "flags live in memory BPF cannot read; "
                      "ENOSYS makes glibc fall back to clone"},
  {"fork",            Act::kErrno, EPERM, 0, {}, "no new processes"},
  {"vfork",           Act::kErrno, EPERM, 0, {}, "no new processes"},
  {"execve",          Act::kErrno, EPERM, 0, {}, "nothing else may run"},
  {"execveat",        Act::kAllow, 0, 2, {{0, SCMP_CMP_EQ, kExecFd}, {4, SCMP_CMP_EQ, AT_EMPTY_PATH}},
                      "the runner's own exec of the sealed program (close-on-exec descriptor)"},
  {"set_robust_list", Act::kAllow, 0, 0, {}, "threads"},
  {"set_tid_address", Act::kAllow, 0, 0, {}, "threads"},
  {"rseq",            Act::kAllow, 0, 0, {}, "glibc registers it per thread"},
  {"futex",           Act::kAllow, 0, 0, {}, "locks"},
  {"sched_yield",     Act::kAllow, 0, 0, {}, "spin locks"},
  {"sched_getaffinity", Act::kAllow, 0, 0, {}, "how many threads to start"},
  {"exit",            Act::kAllow, 0, 0, {}, "thread exit"},
  {"exit_group",      Act::kAllow, 0, 0, {}, "process exit"},
  {"restart_syscall", Act::kAllow, 0, 0, {}, "kernel-internal restart"},

  // --- Signals: only its own -------------------------------------------------------------
  {"rt_sigaction",    Act::kAllow, 0, 0, {}, "handlers"},
  {"rt_sigprocmask",  Act::kAllow, 0, 0, {}, "masks"},
  {"rt_sigreturn",    Act::kAllow, 0, 0, {}, "return from a handler"},
  {"sigaltstack",     Act::kAllow, 0, 0, {}, "handlers"},
  {"tgkill",          Act::kAllow, 0, 1, {{0, SCMP_CMP_EQ, 1}},
                      "raise/abort: its own thread group is PID 1 of its namespace"},
  {"tgkill",          Act::kErrno, EPERM, 1, {{0, SCMP_CMP_NE, 1}}, "no other process"},
  {"kill",            Act::kAllow, 0, 1, {{0, SCMP_CMP_EQ, 1}}, "itself only"},
  {"kill",            Act::kErrno, EPERM, 1, {{0, SCMP_CMP_NE, 1}}, "no other process"},
  {"tkill",           Act::kErrno, EPERM, 0, {}, "obsolete; tgkill names the group"},

  // --- Time, identity, limits ------------------------------------------------------------
  {"clock_gettime",   Act::kAllow, 0, 0, {}, "time (vDSO fallback)"},
  {"clock_getres",    Act::kAllow, 0, 0, {}, "time"},
  {"gettimeofday",    Act::kAllow, 0, 0, {}, "time"},
  {"time",            Act::kAllow, 0, 0, {}, "time"},
  {"clock_nanosleep", Act::kAllow, 0, 0, {}, "sleep"},
  {"nanosleep",       Act::kAllow, 0, 0, {}, "sleep"},
  {"getpid",          Act::kAllow, 0, 0, {}, "identity (namespaced)"},
  {"gettid",          Act::kAllow, 0, 0, {}, "identity (namespaced)"},
  {"getppid",         Act::kAllow, 0, 0, {}, "identity (namespaced)"},
  {"getuid",          Act::kAllow, 0, 0, {}, "identity (namespaced)"},
  {"geteuid",         Act::kAllow, 0, 0, {}, "identity (namespaced)"},
  {"getgid",          Act::kAllow, 0, 0, {}, "identity (namespaced)"},
  {"getegid",         Act::kAllow, 0, 0, {}, "identity (namespaced)"},
  {"uname",           Act::kAllow, 0, 0, {}, "its own UTS namespace"},
  {"getrandom",       Act::kAllow, 0, 0, {}, "stack protector, hashing seeds"},
  {"getrusage",       Act::kAllow, 0, 0, {}, "the worker reports its CPU time"},
  {"getrlimit",       Act::kAllow, 0, 0, {}, "read a limit"},
  {"prlimit64",       Act::kAllow, 0, 2, {{0, SCMP_CMP_EQ, 0}, {2, SCMP_CMP_EQ, 0}},
                      "read its own limits only (new_limit == NULL)"},
  {"arch_prctl",      Act::kAllow, 0, 1, {{0, SCMP_CMP_EQ, ARCH_SET_FS}}, "thread pointer"},

  // --- The file system and the network: refused with the errno a denial gives -------------
  {"open",            Act::kErrno, EACCES, 0, {}, "no file system"},
  {"openat",          Act::kErrno, EACCES, 0, {}, "no file system"},
  {"openat2",         Act::kErrno, EACCES, 0, {}, "no file system"},
  {"creat",           Act::kErrno, EACCES, 0, {}, "no file system"},
  {"socket",          Act::kErrno, EACCES, 0, {}, "no network"},
  {"socketpair",      Act::kErrno, EACCES, 0, {}, "no network"},

  // --- Kill: no use in a worker, only in an attack ----------------------------------------
  {"ptrace",          Act::kKill, 0, 0, {}, "debugging other processes"},
  {"process_vm_readv",  Act::kKill, 0, 0, {}, "another process's memory"},
  {"process_vm_writev", Act::kKill, 0, 0, {}, "another process's memory"},
  {"pidfd_getfd",     Act::kKill, 0, 0, {}, "another process's descriptors"},
  {"personality",     Act::kKill, 0, 0, {}, "READ_IMPLIES_EXEC would make data executable"},
  {"modify_ldt",      Act::kKill, 0, 0, {}, "segment tricks"},
  {"iopl",            Act::kKill, 0, 0, {}, "port I/O"},
  {"ioperm",          Act::kKill, 0, 0, {}, "port I/O"},
  {"io_uring_setup",  Act::kKill, 0, 0, {}, "io_uring operations bypass seccomp"},
  {"io_uring_enter",  Act::kKill, 0, 0, {}, "io_uring operations bypass seccomp"},
  {"io_uring_register", Act::kKill, 0, 0, {}, "io_uring operations bypass seccomp"},
  {"bpf",             Act::kKill, 0, 0, {}, "kernel attack surface"},
  {"perf_event_open", Act::kKill, 0, 0, {}, "kernel attack surface, side channels"},
  {"userfaultfd",     Act::kKill, 0, 0, {}, "stalls the kernel at will (race exploits)"},
  {"keyctl",          Act::kKill, 0, 0, {}, "kernel keyrings"},
  {"add_key",         Act::kKill, 0, 0, {}, "kernel keyrings"},
  {"request_key",     Act::kKill, 0, 0, {}, "kernel keyrings"},
  {"mount",           Act::kKill, 0, 0, {}, "file system escape"},
  {"umount2",         Act::kKill, 0, 0, {}, "file system escape"},
  {"pivot_root",      Act::kKill, 0, 0, {}, "file system escape"},
  {"chroot",          Act::kKill, 0, 0, {}, "file system escape"},
  {"open_by_handle_at", Act::kKill, 0, 0, {}, "file system escape (shocker)"},
  {"unshare",         Act::kKill, 0, 0, {}, "new namespaces"},
  {"setns",           Act::kKill, 0, 0, {}, "other namespaces"},
  {"init_module",     Act::kKill, 0, 0, {}, "kernel modules"},
  {"finit_module",    Act::kKill, 0, 0, {}, "kernel modules"},
  {"delete_module",   Act::kKill, 0, 0, {}, "kernel modules"},
  {"kexec_load",      Act::kKill, 0, 0, {}, "replacing the kernel"},
  {"kexec_file_load", Act::kKill, 0, 0, {}, "replacing the kernel"},
  {"reboot",          Act::kKill, 0, 0, {}, "the host"},
  {"swapon",          Act::kKill, 0, 0, {}, "the host"},
  {"swapoff",         Act::kKill, 0, 0, {}, "the host"},
  {"syslog",          Act::kKill, 0, 0, {}, "kernel log (addresses)"},
  {"acct",            Act::kKill, 0, 0, {}, "the host"},
  {"quotactl",        Act::kKill, 0, 0, {}, "the host"},
};
// clang-format on

constexpr int kDefaultErrno = EPERM;

const char* ActName(Act act) {
  switch (act) {
    case Act::kAllow:
      return "allow";
    case Act::kErrno:
      return "errno";
    case Act::kKill:
      return "kill";
  }
  return "?";
}

struct CtxDeleter {
  void operator()(void* ctx) const { seccomp_release(ctx); }
};
using Ctx = std::unique_ptr<void, CtxDeleter>;

Status SeccompError(const std::string& what, int rc) { return ErrnoError(what, -rc); }

}  // namespace

Result<SyscallFilter> BuildSyscallFilter(int exec_fd, bool notify_kills) {
  Ctx ctx(seccomp_init(SCMP_ACT_ERRNO(kDefaultErrno)));
  if (!ctx) return Status::Error(ErrorCode::kSeccomp, "seccomp_init failed");
  const uint32_t kill = notify_kills ? SCMP_ACT_NOTIFY : SCMP_ACT_KILL_PROCESS;
  // Foreign ABIs: the filter holds x86-64 only, so i386 (`int 0x80`) and x32 numbers hit the
  // bad-architecture action.
  int rc = seccomp_attr_set(ctx.get(), SCMP_FLTATR_ACT_BADARCH, kill);
  if (rc != 0) return SeccompError("seccomp_attr_set(ACT_BADARCH)", rc);
  // The runner sets no_new_privs itself, before the filter is installed.
  rc = seccomp_attr_set(ctx.get(), SCMP_FLTATR_CTL_NNP, 0);
  if (rc != 0) return SeccompError("seccomp_attr_set(CTL_NNP)", rc);

  for (const Rule& rule : kPolicy) {
    const int nr = seccomp_syscall_resolve_name(rule.syscall);
    if (nr == __NR_SCMP_ERROR) {
      return Status::Error(ErrorCode::kSeccomp,
                           std::string("unknown syscall in the policy: ") + rule.syscall);
    }
    uint32_t action = SCMP_ACT_ALLOW;
    if (rule.act == Act::kErrno) action = SCMP_ACT_ERRNO(static_cast<uint32_t>(rule.err));
    if (rule.act == Act::kKill) action = kill;
    // Rows that say what the default does anyway document it (libseccomp refuses them).
    if (action == SCMP_ACT_ERRNO(kDefaultErrno)) continue;
    scmp_arg_cmp cmps[2];
    for (int i = 0; i < rule.nargs; ++i) {
      const Arg& arg = rule.args[i];
      cmps[i] = scmp_arg_cmp{arg.index, arg.op,
                             arg.a == kExecFd ? static_cast<uint64_t>(exec_fd) : arg.a, arg.b};
    }
    rc = seccomp_rule_add_array(ctx.get(), action, nr, static_cast<unsigned>(rule.nargs), cmps);
    if (rc != 0) return SeccompError(std::string("seccomp_rule_add ") + rule.syscall, rc);
  }

  // libseccomp 2.5 exports to a descriptor only.
  UniqueFd memfd(::memfd_create("zerofarm-seccomp", MFD_CLOEXEC));
  if (!memfd.valid()) return ErrnoError("memfd_create", errno);
  rc = seccomp_export_bpf(ctx.get(), memfd.get());
  if (rc != 0) return SeccompError("seccomp_export_bpf", rc);
  struct stat st;
  if (::fstat(memfd.get(), &st) != 0) return ErrnoError("fstat", errno);
  SyscallFilter filter;
  filter.notify_kills = notify_kills;
  filter.program.resize(static_cast<size_t>(st.st_size) / sizeof(sock_filter));
  const size_t want = filter.program.size() * sizeof(sock_filter);
  const ssize_t got = ::pread(memfd.get(), filter.program.data(), want, 0);
  if (got < 0 || static_cast<size_t>(got) != want) return ErrnoError("pread seccomp", errno);
  if (filter.program.empty()) return Status::Error(ErrorCode::kSeccomp, "empty filter");
  return filter;
}

std::string DescribeSyscall(uint32_t audit_arch, int nr) {
  const bool x32 = audit_arch == AUDIT_ARCH_X86_64 && (nr & __X32_SYSCALL_BIT) != 0;
  const char* arch = audit_arch == AUDIT_ARCH_X86_64 ? (x32 ? "x32" : "x86_64")
                     : audit_arch == AUDIT_ARCH_I386 ? "i386"
                                                     : "unknown-arch";
  std::string name = "?";
  if (audit_arch == AUDIT_ARCH_X86_64 || audit_arch == AUDIT_ARCH_I386) {
    const int plain = x32 ? nr & ~__X32_SYSCALL_BIT : nr;
    char* resolved = seccomp_syscall_resolve_num_arch(
        audit_arch == AUDIT_ARCH_I386 ? SCMP_ARCH_X86 : SCMP_ARCH_X86_64, plain);
    if (resolved != nullptr) {
      name = resolved;
      std::free(resolved);
    }
  }
  char buf[64];
  std::snprintf(buf, sizeof buf, " (%d) ", nr);
  return name + buf + arch;
}

std::string DescribeSyscallPolicy() {
  std::string out =
      "architecture: x86_64 only; i386 (int 0x80) and x32 syscalls: kill\n"
      "default for syscalls no row names: errno EPERM\n";
  for (const Rule& rule : kPolicy) {
    char line[256];
    std::snprintf(line, sizeof line, "%-18s %-5s", rule.syscall, ActName(rule.act));
    out += line;
    if (rule.act == Act::kErrno) {
      out += " ";
      out += rule.err == EACCES   ? "EACCES"
             : rule.err == ENOSYS ? "ENOSYS"
             : rule.err == ENOTTY ? "ENOTTY"
                                  : "EPERM";
    }
    if (rule.nargs > 0) out += " (when its arguments match)";
    out += "  ";
    out += rule.why;
    out += "\n";
  }
  return out;
}

}  // namespace zerofarm::sandbox
