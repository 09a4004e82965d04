// The runner against hostile programs: each small static program tries one escape and reports
// what happened on its stdout channel; each test asserts the exact outcome (the errno the
// program saw, or the rule that killed it) and that the run report names it.
#include "zerofarm/sandbox/runner.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "test_programs.h"
#include "zerofarm/base/unique_fd.h"
#include "zerofarm/sandbox/host_layers.h"
#include "zerofarm/sandbox/sealed_program.h"
#include "zerofarm/sandbox/validator.h"

namespace zerofarm::sandbox {
namespace {

using Catch::Matchers::Contains;
using sandbox_test::Compile;
using sandbox_test::HaveGcc;
using sandbox_test::TempDir;

constexpr const char* kFlags = "-static -O1 -pthread -Wl,-z,noexecstack";

constexpr const char* kPrelude = R"(#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
)";

struct Built {
  std::optional<SealedProgram> program;
  ValidationReport verdict;
};

// Compiles `main_source` (after the prelude), seals and validates it.
Built Build(const TempDir& dir, const std::string& name, const std::string& main_source) {
  std::string log;
  const auto path = Compile(dir, name + ".c", kPrelude + main_source, kFlags, &log);
  INFO(log);
  REQUIRE(path.has_value());
  Result<SealedProgram> sealed = LoadProgram(path->string());
  REQUIRE(sealed.ok());
  Result<ValidationReport> verdict = Validate(sealed->bytes());
  REQUIRE(verdict.ok());
  Built b;
  b.program.emplace(std::move(*sealed));
  b.verdict = std::move(*verdict);
  return b;
}

SandboxSpec StdSpec(const Built& b, std::vector<std::string> args = {}) {
  SandboxSpec spec;
  spec.program = &*b.program;
  spec.verdict = &b.verdict;
  spec.argv = {"program"};
  spec.argv.insert(spec.argv.end(), args.begin(), args.end());
  spec.channels = {
      {"stdin", 0, Direction::kIn, ChannelEnd::Memory(), 1 << 20},
      {"stdout", 1, Direction::kOut, ChannelEnd::Memory(), 1 << 20},
      {"stderr", 2, Direction::kOut, ChannelEnd::Memory(), 1 << 20},
  };
  spec.limits.memory_bytes = 256 << 20;
  spec.limits.wall_timeout = std::chrono::milliseconds(10000);
  spec.limits.cpu_seconds = 10;
  return spec;
}

RunReport MustRun(const SandboxSpec& spec) {
  Result<RunReport> report = RunSandboxed(spec);
  INFO((report.ok() ? std::string() : report.status().ToString()));
  REQUIRE(report.ok());
  INFO(RunReportToJson(*report));
  return std::move(report).value();
}

const std::string& Stdout(const RunReport& r) { return r.channels.at(1).captured; }

bool Has(const std::string& layer) {
  for (const std::string& l : ProbeHostLayers().Active()) {
    if (l == layer) return true;
  }
  return false;
}

#define REQUIRE_LAYERS(...)                                                         \
  do {                                                                              \
    if (!HaveGcc()) {                                                               \
      WARN("gcc is not available; skipping a hostile-program test");                \
      return;                                                                       \
    }                                                                               \
    for (const char* layer : std::initializer_list<const char*>{__VA_ARGS__}) {     \
      if (!Has(layer)) {                                                            \
        WARN(std::string("SKIPPED: this host lacks the isolation layer ") + layer); \
        return;                                                                     \
      }                                                                             \
    }                                                                               \
  } while (0)

TEST_CASE("a well-behaved program copies its input channel to its output channel",
          "[sandbox][runner]") {
  REQUIRE_LAYERS("user_ns", "mount_ns", "pid_ns", "seccomp");
  TempDir dir;
  Built b = Build(dir, "copy", R"(
int main(void) {
  printf("%s\n", getenv("ZEROFARM_CHANNELS"));
  char buf[4096];
  ssize_t n;
  while ((n = read(3, buf, sizeof buf)) > 0) {
    if (write(4, buf, (size_t)n) != n) return 2;
  }
  return n == 0 ? 0 : 1;
})");
  SandboxSpec spec = StdSpec(b);
  std::string input(100000, 'x');
  for (size_t i = 0; i < input.size(); ++i) input[i] = static_cast<char>('a' + i % 26);
  spec.channels.push_back({"frames", 3, Direction::kIn, ChannelEnd::Memory(input), 1 << 20});
  spec.channels.push_back({"encoded", 4, Direction::kOut, ChannelEnd::Memory(), 1 << 20});
  const RunReport r = MustRun(spec);
  CHECK(r.ended == RunEnd::kExited);
  CHECK(r.exit_code == 0);
  CHECK(r.stopped_by == StopRule::kNone);
  CHECK(Stdout(r) == "in:0:stdin,out:1:stdout,out:2:stderr,in:3:frames,out:4:encoded\n");
  CHECK(r.channels[3].bytes == input.size());
  CHECK(r.channels[4].bytes == input.size());
  CHECK(r.channels[4].captured == input);
  CHECK(r.verdict == Verdict::kAccepted);
  CHECK(r.spawn_ms > 0);
  CHECK(r.peak_memory_bytes > 0);
  CHECK_THAT(RunReportToJson(r), Contains("\"encoded\"") && Contains("\"spawn_ms\""));
  CHECK(r.layers_missing == ProbeHostLayers().Missing());
  CHECK(r.layers_active == ProbeHostLayers().Active());
}

TEST_CASE("channels can be pipes the caller already owns", "[sandbox][runner]") {
  REQUIRE_LAYERS("user_ns", "pid_ns", "seccomp");
  TempDir dir;
  Built b = Build(dir, "upper", R"(
int main(void) {
  char buf[256];
  ssize_t n;
  while ((n = read(0, buf, sizeof buf)) > 0) {
    for (ssize_t i = 0; i < n; ++i) buf[i] = (char)(buf[i] - 'a' + 'A');
    if (write(3, buf, (size_t)n) != n) return 2;
  }
  return 0;
})");
  Result<Pipe> in = MakePipe();
  Result<Pipe> out = MakePipe();
  REQUIRE(in.ok());
  REQUIRE(out.ok());
  REQUIRE(::write(in->write.get(), "abc", 3) == 3);
  in->write.Close();
  SandboxSpec spec = StdSpec(b);
  spec.channels[0].end = ChannelEnd::Descriptor(in->read.get());
  spec.channels.push_back(
      {"result", 3, Direction::kOut, ChannelEnd::Descriptor(out->write.get()), 1 << 20});
  const RunReport r = MustRun(spec);
  CHECK(r.exit_code == 0);
  CHECK(r.channels[0].bytes == 3);
  CHECK(r.channels[3].bytes == 3);
  out->write.Close();
  char got[8] = {};
  CHECK(::read(out->read.get(), got, sizeof got) == 3);
  CHECK(std::string(got) == "ABC");
}

TEST_CASE("a sandboxed program may start threads but not processes", "[sandbox][runner]") {
  REQUIRE_LAYERS("user_ns", "pid_ns", "seccomp");
  TempDir dir;
  Built b = Build(dir, "threads", R"(
static void* work(void* arg) { *(int*)arg = 42; return arg; }
int main(void) {
  int value = 0;
  pthread_t t;
  int rc = pthread_create(&t, NULL, work, &value);
  if (rc == 0) pthread_join(t, NULL);
  printf("thread=%d value=%d\n", rc, value);
  errno = 0;
  pid_t pid = fork();
  printf("fork=%d errno=%d\n", (int)pid, errno);
  return 0;
})");
  const RunReport r = MustRun(StdSpec(b));
  CHECK(r.exit_code == 0);
  CHECK(Stdout(r) == "thread=0 value=42\nfork=-1 errno=1\n");
}

TEST_CASE("only the channels are open and the program is PID 1 as an unprivileged user",
          "[sandbox][runner]") {
  REQUIRE_LAYERS("user_ns", "pid_ns", "uts_ns", "seccomp");
  // A descriptor this process leaves open without close-on-exec must not reach the program.
  UniqueFd leak(::dup2(STDIN_FILENO, 57) == 57 ? 57 : -1);
  REQUIRE(leak.valid());
  TempDir dir;
  Built b = Build(dir, "identity", R"(
#include <sys/stat.h>
#include <sys/utsname.h>
int main(void) {
  int open_fds = 0;
  struct stat st;
  for (int fd = 0; fd < 1024; ++fd) {
    if (fstat(fd, &st) == 0) ++open_fds;
  }
  struct utsname u;
  uname(&u);
  char* env_count = getenv("PATH");
  printf("fds=%d pid=%d uid=%d gid=%d host=%s path=%s\n", open_fds, (int)getpid(),
         (int)getuid(), (int)getgid(), u.nodename, env_count ? env_count : "unset");
  return 0;
})");
  const RunReport r = MustRun(StdSpec(b));
  CHECK(Stdout(r) == "fds=3 pid=1 uid=1000 gid=1000 host=zerofarm path=unset\n");
}

TEST_CASE("a program cannot read a file and no content leaks", "[sandbox][runner]") {
  REQUIRE_LAYERS("mount_ns", "seccomp");
  TempDir dir;
  Built b = Build(dir, "read_file", R"(
int main(void) {
  errno = 0;
  int fd = open("/etc/passwd", O_RDONLY);
  printf("open=%d errno=%d\n", fd, errno);
  char buf[4096];
  ssize_t n;
  while (fd >= 0 && (n = read(fd, buf, sizeof buf)) > 0) fwrite(buf, 1, (size_t)n, stdout);
  return 0;
})");
  const RunReport r = MustRun(StdSpec(b));
  CHECK(r.exit_code == 0);
  CHECK(Stdout(r) == "open=-1 errno=13\n");
  CHECK_THAT(Stdout(r), !Contains("root:"));
}

TEST_CASE("a program cannot list /proc", "[sandbox][runner]") {
  REQUIRE_LAYERS("mount_ns", "seccomp");
  TempDir dir;
  Built b = Build(dir, "list_proc", R"(
int main(void) {
  errno = 0;
  DIR* d = opendir("/proc");
  printf("opendir=%s errno=%d\n", d ? "ok" : "null", errno);
  struct dirent* e;
  while (d && (e = readdir(d)) != NULL) printf("%s\n", e->d_name);
  return 0;
})");
  const RunReport r = MustRun(StdSpec(b));
  CHECK(Stdout(r) == "opendir=null errno=13\n");
}

TEST_CASE("a program cannot open a socket or reach a loopback listener", "[sandbox][runner]") {
  REQUIRE_LAYERS("net_ns", "seccomp");
  UniqueFd listener(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  REQUIRE(listener.valid());
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::listen(listener.get(), 8) == 0);
  socklen_t len = sizeof addr;
  REQUIRE(::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  const std::string port = std::to_string(ntohs(addr.sin_port));

  TempDir dir;
  Built b = Build(dir, "socket", R"(
int main(int argc, char** argv) {
  errno = 0;
  int s = socket(AF_INET, SOCK_STREAM, 0);
  printf("socket=%d errno=%d\n", s, errno);
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons((unsigned short)atoi(argv[1]));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  errno = 0;
  int c = connect(s < 0 ? 0 : s, (struct sockaddr*)&a, sizeof a);
  printf("connect=%d errno=%d\n", c, errno);
  return 0;
})");
  const RunReport r = MustRun(StdSpec(b, {port}));
  CHECK(Stdout(r) == "socket=-1 errno=13\nconnect=-1 errno=1\n");
  // Nothing reached the listener.
  UniqueFd accepted(::accept(listener.get(), nullptr, nullptr));
  CHECK_FALSE(accepted.valid());
  CHECK(errno == EAGAIN);
}

TEST_CASE("fork, a fork bomb and execve are refused with EPERM", "[sandbox][runner]") {
  REQUIRE_LAYERS("pid_ns", "seccomp");
  TempDir dir;
  Built b = Build(dir, "spawn", R"(
int main(void) {
  int forks = 0, err = 0;
  for (int i = 0; i < 1000; ++i) {
    pid_t p = fork();
    if (p == 0) _exit(0);
    if (p > 0) ++forks; else err = errno;
  }
  errno = 0;
  pid_t v = vfork();
  if (v == 0) _exit(0);
  int verr = errno;
  printf("forks=%d errno=%d vfork=%d errno=%d\n", forks, err, (int)v, verr);
  char* argv[] = {"/bin/sh", NULL};
  errno = 0;
  int e = execve("/bin/sh", argv, NULL);
  printf("execve=%d errno=%d\n", e, errno);
  return 0;
})");
  const RunReport r = MustRun(StdSpec(b));
  CHECK(r.exit_code == 0);
  CHECK(Stdout(r) == "forks=0 errno=1 vfork=-1 errno=1\nexecve=-1 errno=1\n");
}

TEST_CASE("ptrace kills the program and the report names the syscall", "[sandbox][runner]") {
  REQUIRE_LAYERS("seccomp");
  TempDir dir;
  Built b = Build(dir, "ptrace", R"(
int main(void) {
  printf("before\n");
  fflush(stdout);
  long r = ptrace(PTRACE_TRACEME, 0, 0, 0);
  printf("ptrace=%ld errno=%d\n", r, errno);
  return 0;
})");
  const RunReport r = MustRun(StdSpec(b));
  CHECK(Stdout(r) == "before\n");
  CHECK(r.stopped_by == StopRule::kSeccomp);
  CHECK(r.ended == RunEnd::kSignaled);
  if (ProbeHostLayers().seccomp_notify) {
    REQUIRE(r.seccomp_syscall.has_value());
    CHECK_THAT(*r.seccomp_syscall, Contains("ptrace") && Contains("x86_64"));
  } else {
    WARN("seccomp user notification is unavailable: the syscall is not named");
    CHECK(r.signal == SIGSYS);
  }
}

TEST_CASE("a program cannot kill another process", "[sandbox][runner]") {
  REQUIRE_LAYERS("pid_ns", "seccomp");
  struct Victim {
    pid_t pid = ::fork();
    ~Victim() {
      if (pid > 0) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, nullptr, 0);
      }
    }
  } guard;
  const pid_t victim = guard.pid;
  REQUIRE(victim >= 0);
  if (victim == 0) {
    ::pause();
    ::_exit(0);
  }
  TempDir dir;
  Built b = Build(dir, "kill", R"(
int main(int argc, char** argv) {
  errno = 0;
  int k = kill(atoi(argv[1]), SIGKILL);
  printf("kill=%d errno=%d\n", k, errno);
  errno = 0;
  k = kill(-1, SIGKILL);
  printf("kill_all=%d errno=%d\n", k, errno);
  errno = 0;
  k = syscall(SYS_tgkill, atoi(argv[1]), atoi(argv[1]), SIGKILL);
  printf("tgkill=%d errno=%d\n", k, errno);
  return 0;
})");
  const RunReport r = MustRun(StdSpec(b, {std::to_string(victim)}));
  CHECK(Stdout(r) == "kill=-1 errno=1\nkill_all=-1 errno=1\ntgkill=-1 errno=1\n");
  int status = 0;
  CHECK(::waitpid(victim, &status, WNOHANG) == 0);  // still alive
}

TEST_CASE("executable memory cannot be mapped and the heap cannot be made executable",
          "[sandbox][runner]") {
  REQUIRE_LAYERS("seccomp");
  TempDir dir;
  Built b = Build(dir, "exec_memory", R"(
int main(void) {
  errno = 0;
  void* p = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS,
                 -1, 0);
  printf("mmap=%s errno=%d\n", p == MAP_FAILED ? "failed" : "mapped", errno);
  char* heap = malloc(3 * 4096);
  char* page = (char*)(((unsigned long)heap + 4095) & ~4095UL);
  errno = 0;
  int m = mprotect(page, 4096, PROT_READ | PROT_WRITE | PROT_EXEC);
  printf("mprotect=%d errno=%d\n", m, errno);
  errno = 0;
  void* w = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  m = mprotect(w, 4096, PROT_READ | PROT_EXEC);
  printf("mprotect_rx=%d errno=%d\n", m, errno);
  return 0;
})");
  const RunReport r = MustRun(StdSpec(b));
  CHECK(r.exit_code == 0);
  CHECK(Stdout(r) == "mmap=failed errno=13\nmprotect=-1 errno=13\nmprotect_rx=-1 errno=13\n");
}

TEST_CASE("int 0x80 hidden from the validator is killed by the architecture check",
          "[sandbox][runner]") {
  REQUIRE_LAYERS("seccomp");
  TempDir dir;
  // The int 0x80 sits in bytes no instruction stream reaches (the validator reports them as a
  // data region and, by default, accepts); an indirect call runs them anyway.
  Built b = Build(dir, "int80", R"(
__asm__(".text\n.Lhidden_int80:\n  mov $20, %eax\n  int $0x80\n  ret\n");
int main(void) {
  printf("before\n");
  fflush(stdout);
  long r;
  __asm__ volatile("lea .Lhidden_int80(%%rip), %%rax\n  call *%%rax"
                   : "=a"(r) : : "memory", "rcx", "rdx", "r11");
  printf("int80=%ld\n", r);
  return 0;
})");
  REQUIRE(b.verdict.accepted());
  CHECK(b.verdict.counts.data_region_bytes > 0);
  const RunReport r = MustRun(StdSpec(b));
  CHECK(Stdout(r) == "before\n");
  if (r.ended == RunEnd::kSignaled && r.signal == SIGSEGV) {
    WARN("this kernel has no i386 emulation: int 0x80 faults before seccomp sees it");
    return;
  }
  CHECK(r.stopped_by == StopRule::kSeccomp);
  if (ProbeHostLayers().seccomp_notify) {
    REQUIRE(r.seccomp_syscall.has_value());
    CHECK_THAT(*r.seccomp_syscall, Contains("getpid (20) i386"));
  }
}

TEST_CASE("an x32 syscall is killed by the architecture check", "[sandbox][runner]") {
  REQUIRE_LAYERS("seccomp");
  TempDir dir;
  Built b = Build(dir, "x32", R"(
int main(void) {
  printf("before\n");
  fflush(stdout);
  long r = syscall(0x40000000 | SYS_getpid);
  printf("x32=%ld errno=%d\n", r, errno);
  return 0;
})");
  const RunReport r = MustRun(StdSpec(b));
  CHECK(Stdout(r) == "before\n");
  CHECK(r.stopped_by == StopRule::kSeccomp);
  if (ProbeHostLayers().seccomp_notify) {
    REQUIRE(r.seccomp_syscall.has_value());
    CHECK_THAT(*r.seccomp_syscall, Contains("x32"));
  }
}

TEST_CASE("a program that exhausts memory is stopped by the memory limit", "[sandbox][runner]") {
  REQUIRE_LAYERS("seccomp");
  TempDir dir;
  Built b = Build(dir, "memory", R"(
int main(void) {
  size_t total = 0;
  for (;;) {
    char* p = malloc(1 << 20);
    if (p == NULL) { printf("malloc failed after %zu MiB\n", total >> 20); return 3; }
    memset(p, 1, 1 << 20);
    total += 1 << 20;
  }
})");
  SandboxSpec spec = StdSpec(b);
  spec.limits.memory_bytes = 64 << 20;
  const RunReport r = MustRun(spec);
  if (r.memory_limit_via == MemoryLimitVia::kRlimitAs) {
    WARN("no memory cgroup: RLIMIT_AS makes malloc fail instead");
    CHECK(r.exit_code == 3);
    CHECK_THAT(Stdout(r), Contains("malloc failed"));
    return;
  }
  CHECK(r.stopped_by == StopRule::kMemory);
  CHECK(r.signal == SIGKILL);
  CHECK(r.peak_memory_source == MemorySource::kCgroup);
  CHECK(r.peak_memory_bytes <= (64u << 20));
}

TEST_CASE("a program spinning forever is stopped by the CPU limit", "[sandbox][runner]") {
  REQUIRE_LAYERS("seccomp");
  TempDir dir;
  Built b = Build(dir, "spin", R"(
int main(void) { volatile unsigned long n = 0; for (;;) ++n; })");
  SandboxSpec spec = StdSpec(b);
  spec.limits.cpu_seconds = 1;
  spec.limits.wall_timeout = std::chrono::milliseconds(30000);
  const RunReport r = MustRun(spec);
  CHECK(r.stopped_by == StopRule::kCpu);
  CHECK(r.signal == SIGKILL);
}

TEST_CASE("channels can be callbacks and an input stops at its quota", "[sandbox][runner]") {
  REQUIRE_LAYERS("user_ns", "pid_ns", "seccomp");
  TempDir dir;
  Built b = Build(dir, "count", R"(
int main(void) {
  char buf[256];
  ssize_t n, total = 0;
  while ((n = read(0, buf, sizeof buf)) > 0) total += n;
  dprintf(3, "read %zd bytes", total);
  return 0;
})");
  std::vector<std::string> pieces = {"0123456789", "abcdefghij", ""};
  size_t next = 0;
  std::string pushed;
  SandboxSpec spec = StdSpec(b);
  spec.channels[0].end = ChannelEnd::Pull([&]() -> Result<std::string> { return pieces[next++]; });
  spec.channels[0].quota_bytes = 15;
  spec.channels.push_back({"result", 3, Direction::kOut, ChannelEnd::Push([&](std::string_view d) {
                             pushed.append(d);
                             return Status::Ok();
                           }),
                           1 << 20});
  const RunReport r = MustRun(spec);
  CHECK(r.exit_code == 0);
  CHECK(pushed == "read 15 bytes");
  CHECK(r.channels[0].bytes == 15);
  CHECK(r.channels[0].quota_reached);
  CHECK(r.channels[3].bytes == pushed.size());
}

TEST_CASE("a program sleeping forever is stopped by the wall-clock timeout", "[sandbox][runner]") {
  REQUIRE_LAYERS("pid_ns");
  TempDir dir;
  Built b = Build(dir, "sleep", R"(
int main(void) { for (;;) sleep(100); })");
  SandboxSpec spec = StdSpec(b);
  spec.limits.wall_timeout = std::chrono::milliseconds(300);
  const RunReport r = MustRun(spec);
  CHECK(r.stopped_by == StopRule::kTimeout);
  CHECK(r.signal == SIGKILL);
}

TEST_CASE("a cancelled run is killed at once even when the program is silent, not at its timeout",
          "[sandbox][runner]") {
  REQUIRE_LAYERS("pid_ns");
  TempDir dir;
  Built b = Build(dir, "silent", R"(
int main(void) { for (;;) sleep(100); })");
  SandboxSpec spec = StdSpec(b);
  // A silent (or stopped) program gives the runner no channel event to notice a cancel by.
  spec.limits.wall_timeout = std::chrono::milliseconds(600000);
  std::atomic<bool> cancel{false};
  spec.cancel = &cancel;
  std::thread canceller([&cancel] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    cancel = true;
  });
  const RunReport r = MustRun(spec);
  canceller.join();
  CHECK(r.stopped_by == StopRule::kCancelled);
  CHECK(r.signal == SIGKILL);
}

TEST_CASE("a program writing past its output quota is stopped by the quota", "[sandbox][runner]") {
  REQUIRE_LAYERS("pid_ns");
  TempDir dir;
  Built b = Build(dir, "flood", R"(
int main(void) {
  static char buf[65536];
  memset(buf, 'z', sizeof buf);
  for (int i = 0; i < 64; ++i) {
    if (write(1, buf, sizeof buf) < 0) return 4;
  }
  return 0;
})");
  SandboxSpec spec = StdSpec(b);
  spec.channels[1].quota_bytes = 4096;
  const RunReport r = MustRun(spec);
  CHECK(r.stopped_by == StopRule::kQuota);
  CHECK(r.channels[1].quota_reached);
  CHECK(r.channels[1].bytes == 4096);
  CHECK(Stdout(r).size() == 4096);
  CHECK_THAT(r.detail, Contains("stdout"));
}

TEST_CASE("a program exhausting descriptors gets EMFILE at its limit", "[sandbox][runner]") {
  REQUIRE_LAYERS("seccomp");
  TempDir dir;
  Built b = Build(dir, "fds", R"(
int main(void) {
  int count = 0, err = 0;
  for (int i = 0; i < 100000; ++i) {
    if (dup(1) < 0) { err = errno; break; }
    ++count;
  }
  printf("dups=%d errno=%d\n", count, err);
  return 0;
})");
  SandboxSpec spec = StdSpec(b);
  spec.limits.max_open_files = 32;
  const RunReport r = MustRun(spec);
  CHECK(r.exit_code == 0);
  // 0, 1 and 2 are open, the rest up to the limit are the dups.
  CHECK(Stdout(r) == "dups=29 errno=24\n");
}

TEST_CASE("a program the validator rejected is refused before it runs", "[sandbox][runner]") {
  REQUIRE_LAYERS();
  TempDir dir;
  Built b = Build(dir, "plain", "int main(void) { return 0; }\n");
  b.verdict.verdict = Verdict::kRejected;
  Result<RunReport> r = RunSandboxed(StdSpec(b));
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == ErrorCode::kRejected);
  SandboxSpec spec = StdSpec(b);
  spec.verdict = nullptr;
  CHECK(RunSandboxed(spec).status().code() == ErrorCode::kNotValidated);
}

TEST_CASE("a second run cannot see the first run's files, processes or memory",
          "[sandbox][runner]") {
  REQUIRE_LAYERS("user_ns", "mount_ns", "pid_ns", "seccomp");
  TempDir dir;
  Built b = Build(dir, "leftovers", R"(
static void* sleeper(void* arg) { (void)arg; for (;;) sleep(1000); return NULL; }
int main(int argc, char** argv) {
  if (argc > 1 && strcmp(argv[1], "first") == 0) {
    size_t size = (size_t)96 << 20;
    char* p = malloc(size);
    if (p == NULL) return 3;
    char* volatile touched = p;  /* the stores must happen */
    memset(touched, 7, size);
    errno = 0;
    int fd = open("/left-behind", O_CREAT | O_WRONLY, 0644);
    printf("create=%d errno=%d\n", fd < 0 ? -1 : 0, fd < 0 ? errno : 0);
    pthread_t t;
    printf("thread=%d\n", pthread_create(&t, NULL, sleeper, NULL));
    return p[size - 1] == 7 ? 0 : 4;
  }
  errno = 0;
  int fd = open("/left-behind", O_RDONLY);
  printf("open=%d\n", fd < 0 ? -1 : 0);
  printf("pid=%d ppid=%d\n", (int)getpid(), (int)getppid());
  return 0;
})");
  SetPreparedSandboxes(4);
  MustRun(StdSpec(b, {"second"}));  // the pool is running and fills up
  for (int i = 0; i < 200 && PreparedSandboxPids().size() < 4; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const std::vector<pid_t> prepared = PreparedSandboxPids();
  REQUIRE(prepared.size() == 4);

  const RunReport first = MustRun(StdSpec(b, {"first"}));
  REQUIRE(first.exit_code == 0);
  CHECK(Stdout(first) == "create=-1 errno=13\nthread=0\n");
  const RunReport second = MustRun(StdSpec(b, {"second"}));
  CHECK(second.exit_code == 0);
  // No file, no process of the first run's (its thread was left sleeping): the second is
  // PID 1 of a namespace of its own.
  CHECK(Stdout(second) == "open=-1\npid=1 ppid=0\n");
  // Both ran in sandboxes prepared before the first run, and both are gone.
  const std::vector<pid_t> left = PreparedSandboxPids();
  int gone = 0;
  for (pid_t pid : prepared) {
    if (std::find(left.begin(), left.end(), pid) != left.end()) continue;
    CHECK(::kill(pid, 0) == -1);
    ++gone;
  }
  CHECK(gone >= 2);
  // The first run's memory is charged to its own cgroup only.
  if (first.peak_memory_source == MemorySource::kCgroup) {
    CHECK(first.peak_memory_bytes >= (96u << 20));
    CHECK(second.peak_memory_source == MemorySource::kCgroup);
    CHECK(second.peak_memory_bytes < (16u << 20));
  } else {
    WARN("no memory cgroup: peak memory comes from getrusage");
  }
}

TEST_CASE("a runner started with a niceness still runs programs that ask for their own",
          "[sandbox][runner]") {
  REQUIRE_LAYERS("user_ns", "pid_ns", "seccomp");
  TempDir dir;
  Built b = Build(dir, "noop", "int main(void) { return 0; }\n");
  // In a process of its own (niceness cannot be given back without privilege, and its
  // prepared sandboxes inherit it): started at niceness 10, a run asking for 2 (it runs at 12;
  // the program cannot look, getpriority is not on the allow-list) must start and end well.
  const pid_t runner = ::fork();
  REQUIRE(runner >= 0);
  if (runner == 0) {
    if (::setpriority(PRIO_PROCESS, 0, 10) != 0) ::_exit(2);
    SandboxSpec spec = StdSpec(b);
    spec.limits.nice = 2;
    Result<RunReport> r = RunSandboxed(spec);
    if (!r.ok()) ::_exit(3);
    ::_exit(r->exit_code == 0 ? 0 : 4);
  }
  int status = 0;
  REQUIRE(::waitpid(runner, &status, 0) == runner);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);  // 3: the run failed to start (a raised priority refused)
}

TEST_CASE("prepared sandboxes die with their process and leave no zombies", "[sandbox][runner]") {
  REQUIRE_LAYERS("user_ns", "pid_ns", "seccomp");
  TempDir dir;
  Built b = Build(dir, "noop", "int main(void) { return 0; }\n");
  SetPreparedSandboxes(4);
  for (int i = 0; i < 6; ++i) CHECK(MustRun(StdSpec(b)).exit_code == 0);
  // Every used sandbox was reaped: no child of this process is a zombie.
  siginfo_t info{};
  CHECK(::waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) == 0);
  CHECK(info.si_pid == 0);
  // Fewer kept ready: the others are ended and reaped at once.
  SetPreparedSandboxes(1);
  CHECK(PreparedSandboxPids().size() <= 1);
  info = {};
  CHECK(::waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) == 0);
  CHECK(info.si_pid == 0);

  // A process with prepared sandboxes is killed: they die with it.
  Result<Pipe> pids_pipe = MakePipe();
  REQUIRE(pids_pipe.ok());
  const pid_t owner = ::fork();
  REQUIRE(owner >= 0);
  if (owner == 0) {
    // Only what the child needs: a run, a full pool, its pids on the pipe, then wait.
    SetPreparedSandboxes(3);
    Result<RunReport> r = RunSandboxed(StdSpec(b));
    if (!r.ok() || r->exit_code != 0) ::_exit(2);
    std::vector<pid_t> pids;
    for (int i = 0; i < 500 && pids.size() < 3; ++i) {
      ::usleep(10000);
      pids = PreparedSandboxPids();
    }
    const ssize_t bytes = static_cast<ssize_t>(pids.size() * sizeof(pid_t));
    if (::write(pids_pipe->write.get(), pids.data(), pids.size() * sizeof(pid_t)) != bytes) {
      ::_exit(3);
    }
    pids_pipe->write.Close();
    for (;;) ::pause();
  }
  pids_pipe->write.Close();
  pid_t pids[3] = {};
  size_t got = 0;
  while (got < sizeof pids) {
    const ssize_t n =
        ::read(pids_pipe->read.get(), reinterpret_cast<char*>(pids) + got, sizeof pids - got);
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  ::kill(owner, SIGKILL);
  int status = 0;
  REQUIRE(::waitpid(owner, &status, 0) == owner);
  REQUIRE(got == sizeof pids);
  for (pid_t pid : pids) {
    // Orphans go to the init process, which reaps them; until then they may be zombies.
    bool dead = false;
    for (int i = 0; i < 500 && !dead; ++i) {
      char state = 0;
      FILE* f = std::fopen(("/proc/" + std::to_string(pid) + "/stat").c_str(), "r");
      if (f == nullptr) {
        dead = true;
        break;
      }
      const int fields = std::fscanf(f, "%*d %*s %c", &state);
      std::fclose(f);
      dead = fields == 1 && (state == 'Z' || state == 'X');
      if (!dead) ::usleep(10000);
    }
    INFO("prepared sandbox " << pid);
    CHECK(dead);
  }
  SetPreparedSandboxes(4);
}

TEST_CASE("many threads can run sandboxes at once, each in its own", "[sandbox][runner]") {
  REQUIRE_LAYERS("user_ns", "pid_ns", "seccomp");
  TempDir dir;
  Built b = Build(dir, "echo_arg", R"(
int main(int argc, char** argv) {
  printf("%s pid=%d\n", argc > 1 ? argv[1] : "?", (int)getpid());
  return 0;
})");
  constexpr int kThreads = 4;
  constexpr int kRuns = 5;
  std::atomic<int> good{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kRuns; ++i) {
        const std::string tag = std::to_string(t) + "." + std::to_string(i);
        Result<RunReport> r = RunSandboxed(StdSpec(b, {tag}));
        if (r.ok() && r->exit_code == 0 && r->channels.at(1).captured == tag + " pid=1\n") {
          ++good;
        } else {
          std::fprintf(stderr, "run %s: %s\n", tag.c_str(),
                       r.ok() ? RunReportToJson(*r).c_str() : r.status().ToString().c_str());
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  CHECK(good.load() == kThreads * kRuns);
}

TEST_CASE("a run whose arguments do not fit a prepared sandbox's message still runs",
          "[sandbox][runner]") {
  REQUIRE_LAYERS("user_ns", "pid_ns", "seccomp");
  TempDir dir;
  Built b = Build(dir, "arg_length", R"(
int main(int argc, char** argv) {
  printf("argc=%d len=%zu pid=%d\n", argc, argc > 1 ? strlen(argv[1]) : 0, (int)getpid());
  return 0;
})");
  const std::string big(100000, 'a');  // over one plan message: a child cloned for the run
  const RunReport r = MustRun(StdSpec(b, {big}));
  CHECK(r.exit_code == 0);
  CHECK(Stdout(r) == "argc=2 len=100000 pid=1\n");
}

}  // namespace
}  // namespace zerofarm::sandbox
