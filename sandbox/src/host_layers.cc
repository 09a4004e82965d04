#include "zerofarm/sandbox/host_layers.h"

#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

namespace zerofarm::sandbox {
namespace {

// Whether a child can be created with these clone flags (it exits at once).
bool CanClone(unsigned long flags) {
  const long pid = ::syscall(SYS_clone, flags | SIGCHLD, nullptr, nullptr, nullptr, nullptr);
  if (pid < 0) return false;
  if (pid == 0) ::_exit(0);
  int status = 0;
  while (::waitpid(static_cast<pid_t>(pid), &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

struct Mount {
  std::string root;
  std::string point;
  std::string fstype;
  std::string super_options;
};

std::vector<Mount> Mounts() {
  std::vector<Mount> mounts;
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string id, parent, dev, root, point, word;
    fields >> id >> parent >> dev >> root >> point;
    while (fields >> word && word != "-") {
    }
    Mount m{root, point, {}, {}};
    std::string source;
    fields >> m.fstype >> source >> m.super_options;
    mounts.push_back(std::move(m));
  }
  return mounts;
}

bool HasWord(const std::string& list, const std::string& word, char sep) {
  std::istringstream in(list);
  std::string item;
  while (std::getline(in, item, sep)) {
    if (item == word) return true;
  }
  return false;
}

std::string ReadLine(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

// The cgroup directory of this process in a hierarchy mounted at m (path relative to its root).
std::string CgroupDir(const Mount& m, const std::string& path) {
  std::string rel = path;
  if (m.root != "/" && rel.rfind(m.root, 0) == 0) rel = rel.substr(m.root.size());
  if (rel == "/") rel.clear();
  return m.point + rel;
}

// Whether a child cgroup with `limit_file` can be made (and removed) in dir.
bool CanMakeChild(const std::string& dir, const char* limit_file, std::vector<std::string>* notes) {
  const std::string probe = dir + "/zerofarm-probe-" + std::to_string(::getpid());
  if (::mkdir(probe.c_str(), 0700) != 0) {
    notes->push_back("cannot create a cgroup in " + dir + ": " + std::strerror(errno));
    return false;
  }
  const bool ok = ::access((probe + "/" + limit_file).c_str(), W_OK) == 0;
  if (!ok) notes->push_back(dir + " has no writable " + limit_file);
  ::rmdir(probe.c_str());
  return ok;
}

// Notes on the cgroup trees tried are kept only when no memory cgroup is found: a host whose
// v2 tree is not delegated but whose v1 memory tree works has nothing to warn about.
void ProbeCgroupTrees(HostLayers* h, std::vector<std::string>* notes);

void ProbeCgroups(HostLayers* h) {
  std::vector<std::string> notes;
  ProbeCgroupTrees(h, &notes);
  if (!h->cgroup_v2_memory && !h->cgroup_v1_memory)
    h->notes.insert(h->notes.end(), notes.begin(), notes.end());
}

void ProbeCgroupTrees(HostLayers* h, std::vector<std::string>* notes) {
  std::ifstream in("/proc/self/cgroup");
  std::string line, v2_path, v1_path;
  while (std::getline(in, line)) {
    const size_t a = line.find(':');
    const size_t b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    const std::string controllers = line.substr(a + 1, b - a - 1);
    const std::string path = line.substr(b + 1);
    if (line.compare(0, a, "0") == 0 && controllers.empty()) v2_path = path;
    if (HasWord(controllers, "memory", ',')) v1_path = path;
  }
  for (const Mount& m : Mounts()) {
    if (m.fstype == "cgroup2" && !v2_path.empty() && !h->cgroup_v2_memory) {
      const std::string dir = CgroupDir(m, v2_path);
      if (HasWord(ReadLine(dir + "/cgroup.subtree_control"), "memory", ' ')) {
        if (CanMakeChild(dir, "memory.max", notes)) {
          h->cgroup_v2_memory = true;
          h->cgroup_parent = dir;
        }
      } else {
        notes->push_back("cgroup v2 at " + m.point + ": memory is not delegated to " + dir);
      }
    }
  }
  if (h->cgroup_v2_memory) return;
  for (const Mount& m : Mounts()) {
    if (m.fstype == "cgroup" && HasWord(m.super_options, "memory", ',') && !v1_path.empty()) {
      const std::string dir = CgroupDir(m, v1_path);
      if (CanMakeChild(dir, "memory.limit_in_bytes", notes)) {
        h->cgroup_v1_memory = true;
        h->cgroup_parent = dir;
        return;
      }
    }
  }
}

HostLayers Probe() {
  HostLayers h;
  h.user_ns = CanClone(CLONE_NEWUSER);
  // The sandbox makes every other namespace inside its user namespace.
  const unsigned long base = h.user_ns ? CLONE_NEWUSER : 0;
  h.mount_ns = CanClone(base | CLONE_NEWNS);
  h.pid_ns = CanClone(base | CLONE_NEWPID);
  h.net_ns = CanClone(base | CLONE_NEWNET);
  h.ipc_ns = CanClone(base | CLONE_NEWIPC);
  h.uts_ns = CanClone(base | CLONE_NEWUTS);
  h.seccomp = ::prctl(PR_GET_SECCOMP, 0, 0, 0, 0) >= 0;
  uint32_t notif = SECCOMP_RET_USER_NOTIF;
  const bool notif_action = ::syscall(SYS_seccomp, SECCOMP_GET_ACTION_AVAIL, 0, &notif) == 0;
  // The runner takes the listener out of the child with pidfd_getfd.
  const bool getfd = ::syscall(SYS_pidfd_getfd, -1, -1, 0) < 0 && errno != ENOSYS;
  h.seccomp_notify = h.seccomp && notif_action && getfd;
  if (h.seccomp && !h.seccomp_notify) {
    h.notes.push_back(
        "seccomp user notification unavailable: a killed program's syscall "
        "cannot be named");
  }
  ProbeCgroups(&h);
  if (!h.cgroup_v2_memory && !h.cgroup_v1_memory) {
    h.notes.push_back("memory is limited by RLIMIT_AS only (address space, not resident memory)");
  }
  return h;
}

}  // namespace

std::vector<std::string> HostLayers::Active() const {
  std::vector<std::string> out;
  if (user_ns) out.push_back("user_ns");
  if (mount_ns) out.push_back("mount_ns");
  if (pid_ns) out.push_back("pid_ns");
  if (net_ns) out.push_back("net_ns");
  if (ipc_ns) out.push_back("ipc_ns");
  if (uts_ns) out.push_back("uts_ns");
  if (seccomp) out.push_back("seccomp");
  if (cgroup_v2_memory || cgroup_v1_memory) out.push_back("memory_cgroup");
  return out;
}

std::vector<std::string> HostLayers::Missing() const {
  std::vector<std::string> out;
  if (!user_ns) out.push_back("user_ns");
  if (!mount_ns) out.push_back("mount_ns");
  if (!pid_ns) out.push_back("pid_ns");
  if (!net_ns) out.push_back("net_ns");
  if (!ipc_ns) out.push_back("ipc_ns");
  if (!uts_ns) out.push_back("uts_ns");
  if (!seccomp) out.push_back("seccomp");
  if (!cgroup_v2_memory && !cgroup_v1_memory) out.push_back("memory_cgroup");
  return out;
}

const HostLayers& ProbeHostLayers() {
  static const HostLayers layers = [] {
    HostLayers h = Probe();
    for (const std::string& missing : h.Missing()) {
      std::fprintf(stderr,
                   "zerofarm sandbox: WARNING: isolation layer '%s' is not available on this "
                   "host; sandboxed programs run without it (named in every run report)\n",
                   missing.c_str());
    }
    for (const std::string& note : h.notes) {
      std::fprintf(stderr, "zerofarm sandbox: note: %s\n", note.c_str());
    }
    return h;
  }();
  return layers;
}

}  // namespace zerofarm::sandbox
