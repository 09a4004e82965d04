// zerofarm serve: the all-in-one node (HTTP API + scheduler + embedded store), and zerofarm
// proxy: the same API and scheduler in front of a cluster of storage nodes.
#include <netdb.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "cli/commands.h"
#include "cli/flags.h"
#include "cli/key_flags.h"
#include "zerofarm/api/server.h"
#include "zerofarm/api/tokens.h"
#include "zerofarm/base/process_memory.h"
#include "zerofarm/base/unique_fd.h"
#include "zerofarm/sandbox/host_layers.h"
#include "zerofarm/scheduler/video_service.h"
#include "zerofarm/scheduler/worker_runtime.h"
#include "zerofarm/storage/live_ring.h"
#include "zerofarm/storage/node_protocol.h"
#include "zerofarm/storage/ring.h"

namespace zerofarm::cli {
namespace {

namespace fs = std::filesystem;

// Fails when HOST:PORT cannot be listened on (in use, or not an address of this machine), so
// that serve says so before it creates anything. Port 0 (any free port) always passes.
Status CheckListenAddress(const std::string& host, uint16_t port) {
  if (port == 0) return Status::Ok();
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(port);
  if (int rc =
          ::getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &found);
      rc != 0)
    return Status::Error(ErrorCode::kInvalidArgument,
                         "cannot listen on " + host + ": " + ::gai_strerror(rc));
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> owned(found, &::freeaddrinfo);
  UniqueFd fd(::socket(found->ai_family, found->ai_socktype | SOCK_CLOEXEC, found->ai_protocol));
  if (!fd.valid()) return ErrnoError("socket", errno);
  const int one = 1;
  (void)::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(fd.get(), found->ai_addr, found->ai_addrlen) != 0) {
    const int err = errno;
    const std::string where = host + ":" + service;
    if (err == EADDRINUSE)
      return Status::Error(ErrorCode::kAddressInUse,
                           where +
                               " is already in use (another zerofarm serve?); stop it or "
                               "choose another address with --listen");
    return Status::Error(ErrorCode::kInvalidArgument,
                         "cannot listen on " + where + ": " + std::strerror(err));
  }
  return Status::Ok();
}

// The URL users open: a wildcard listen address is reached through loopback.
std::string BaseUrl(const std::string& host, uint16_t port) {
  std::string h = host;
  if (h.empty() || h == "0.0.0.0") h = "127.0.0.1";
  if (h == "::") h = "::1";
  if (h.find(':') != std::string::npos) h = "[" + h + "]";
  return "http://" + h + ":" + std::to_string(port);
}

constexpr const char* kUsage =
    "usage: zerofarm serve [--data DIR] [--listen 127.0.0.1:8080] [--web DIR] [limits...]\n"
    "\n"
    "Runs the HTTP API, the scheduler and an embedded store in one process. Zero configuration:\n"
    "the first start creates DIR and prints a bearer token for tenant \"default\"\n"
    "(more with `zerofarm token create --data DIR --tenant NAME`).\n"
    "\n"
    "  --data DIR              store, uploads and renditions (default ./zerofarm-data)\n"
    "  --listen HOST:PORT      address to listen on (default 127.0.0.1:8080, loopback only;\n"
    "                          port 0 picks a free port, printed at start)\n"
    "  --web DIR               the web UI's files (default <exe>/../share/zerofarm/web)\n"
    "  --task-slots N          tasks (worker processes) at once, all videos together\n"
    "                          (default: cores; --workers N is the same flag)\n"
    "  --chunk-seconds S       segment length target (default 4)\n"
    "  --worker-memory SIZE    each sandboxed worker's memory limit (default 3G)\n"
    "limits (each answered with its HTTP status):\n"
    "  --max-upload SIZE       largest upload body, e.g. 20G (default 64G) -> 413\n"
    "  --max-header SIZE       largest request head (default 16K) -> 431\n"
    "  --header-timeout DUR    the request head must arrive within (default 10s) -> 408\n"
    "  --idle-timeout DUR      longest pause inside a body or a response (default 60s) -> 408\n"
    "  --request-timeout DUR   a request's body must have arrived within (default 6h) -> 408\n"
    "  --max-connections N     open connections (default 256) -> 503\n"
    "  --max-open-uploads N    unfinished tus uploads per tenant (default 100) -> 429\n"
    "  --max-open-uploads-total N  unfinished tus uploads of all tenants (default 10000) -> 503\n"
    "  --upload-expiry DUR     an unfinished tus upload with no new byte for this long is\n"
    "                          removed (default 24h; tus Upload-Expires)\n"
    "  --max-upload-files N    uploads receiving bytes at once, each holding its file open\n"
    "                          (default: a quarter of the descriptor limit) -> 503\n"
    "  --job-memory SIZE       memory of a job's instance when the job names none (256M)\n"
    "  --job-max-memory SIZE   the most a job may ask per instance (default 4G) -> 400\n"
    "  --job-timeout DUR       wall time of an instance when the job names none (60s)\n"
    "  --job-max-timeout DUR   the most a job may ask per instance (default 6h) -> 400\n"
    "\n"
    "--unsandboxed runs the worker as a plain process (development only; loudly reported).\n";

constexpr const char* kProxyUsage =
    "usage: zerofarm proxy --ring RING --data DIR --listen HOST:PORT [--web DIR] [limits...]\n"
    "\n"
    "Runs the HTTP API and the scheduler in front of a cluster of storage nodes (zerofarm node):\n"
    "uploads are cut into chunks stored on the ring's nodes, each chunk is transcoded by a\n"
    "sandboxed worker on a node holding it, and the renditions are stitched and served here.\n"
    "DIR keeps the proxy's own state (records, job state, upload files, tokens, renditions):\n"
    "a restarted proxy resumes every job. The first start prints a bearer token.\n"
    "\n"
    "  --ring RING             the ring file (zerofarm ring build); rewriting it (or SIGHUP)\n"
    "                          reloads it while jobs and downloads go on\n"
    "  --data DIR              the proxy's state (default ./zerofarm-proxy)\n"
    "  --listen HOST:PORT      address to listen on (default 127.0.0.1:8080)\n"
    "  --web DIR               the web UI's files (default <exe>/../share/zerofarm/web)\n"
    "  --chunk-seconds S       segment length target (default 4)\n"
    "  --backup-after DUR      a task running this long and 3x its job's median gets a backup\n"
    "                          copy on another node holding its chunk (default 15s)\n"
    "  --key FILE              the farm key (zerofarm key create): CURVE authentication and\n"
    "                          encryption of every connection to the nodes; required unless\n"
    "  --insecure              is given (nodes started --insecure; loudly reported)\n"
    "limits: as for zerofarm serve (--max-upload, --max-header, --header-timeout,\n"
    "  --idle-timeout, --request-timeout, --max-connections, --max-open-uploads,\n"
    "  --max-open-uploads-total, --upload-expiry, --max-upload-files, --job-memory,\n"
    "  --job-max-memory, --job-timeout, --job-max-timeout).\n";

int PrintUsage(bool proxy, const std::string& why) {
  std::fprintf(stderr, "zerofarm %s: %s\n%s", proxy ? "proxy" : "serve", why.c_str(),
               proxy ? kProxyUsage : kUsage);
  return 2;
}

fs::path DefaultWebDir() {
  std::error_code ec;
  fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return {};
  return (self.parent_path() / ".." / "share" / "zerofarm" / "web").lexically_normal();
}

// The flags of serve and proxy as given, defaults filled in, none checked yet.
struct FrontFlags {
  fs::path data;
  std::string ring_path, backup_after, listen, web, chunk, worker_memory;
  Flags::Named task_slots{"--task-slots", "0"};
  std::string max_upload, max_header, header_timeout, idle_timeout, request_timeout;
  std::string max_connections, open_uploads, open_uploads_total, upload_expiry, upload_files;
  std::string job_memory, job_max_memory, job_timeout, job_max_timeout;
  std::optional<std::string> key_path;
  bool insecure = false;
  bool unsandboxed = false;
};

// What a checked command line asks for.
struct FrontOptions {
  fs::path data;
  std::string ring_path;  // proxy only
  bool unsandboxed = false;
  uint64_t worker_memory = 0;
  api::ServerOptions server;
  scheduler::VideoServiceOptions service;
};

FrontFlags TakeFrontFlags(Flags& flags, bool proxy) {
  FrontFlags f;
  f.data = flags.Take("data").value_or(proxy ? "zerofarm-proxy" : "zerofarm-data");
  f.ring_path = proxy ? flags.Take("ring").value_or("") : "";
  f.backup_after = proxy ? flags.Take("backup-after").value_or("15s") : "15s";
  f.listen = flags.Take("listen").value_or("127.0.0.1:8080");
  f.web = flags.Take("web").value_or("");
  if (!proxy)
    if (auto slots = flags.TakeRenamed("task-slots", {"workers"})) f.task_slots = *slots;
  f.chunk = flags.Take("chunk-seconds").value_or("4");
  f.worker_memory = proxy ? "3G" : flags.Take("worker-memory").value_or("3G");
  f.max_upload = flags.Take("max-upload").value_or("64G");
  f.max_header = flags.Take("max-header").value_or("16K");
  f.header_timeout = flags.Take("header-timeout").value_or("10s");
  f.idle_timeout = flags.Take("idle-timeout").value_or("60s");
  f.request_timeout = flags.Take("request-timeout").value_or("6h");
  f.max_connections = flags.Take("max-connections").value_or("256");
  f.open_uploads = flags.Take("max-open-uploads").value_or("100");
  f.open_uploads_total = flags.Take("max-open-uploads-total").value_or("10000");
  f.upload_expiry = flags.Take("upload-expiry").value_or("24h");
  f.upload_files = flags.Take("max-upload-files").value_or("0");
  f.job_memory = flags.Take("job-memory").value_or("256M");
  f.job_max_memory = flags.Take("job-max-memory").value_or("4G");
  f.job_timeout = flags.Take("job-timeout").value_or("60s");
  f.job_max_timeout = flags.Take("job-max-timeout").value_or("6h");
  f.key_path = proxy ? flags.Take("key") : std::nullopt;
  f.insecure = proxy && flags.Has("insecure");
  if (f.insecure) (void)flags.Take("insecure");
  f.unsandboxed = !proxy && flags.Has("unsandboxed");
  if (f.unsandboxed) (void)flags.Take("unsandboxed");
  return f;
}

// Checks the listen address and the counts; a usage error's text, or nullopt.
// Strict numbers: "8080x", " 4" or "1e9" slots are a usage error, never a silent prefix.
std::optional<std::string> ParseAddressAndCounts(const FrontFlags& f, FrontOptions* o) {
  api::ServerOptions& so = o->server;
  scheduler::VideoServiceOptions& vo = o->service;
  const size_t colon = f.listen.rfind(':');
  if (colon == std::string::npos) return "--listen needs HOST:PORT";
  so.address = f.listen.substr(0, colon);
  if (so.address.size() > 2 && so.address.front() == '[')
    so.address = so.address.substr(1, so.address.size() - 2);
  const auto port = ParseInteger(f.listen.substr(colon + 1), 0, 65535);
  if (!port) return "--listen port must be a whole number 0-65535";
  so.port = static_cast<uint16_t>(*port);
  const auto slots = ParseInteger(f.task_slots.value, 0, 1024);
  if (!slots) return f.task_slots.flag + " takes a whole number 0-1024 (0: one per core)";
  vo.task_slots = static_cast<int>(*slots);
  const auto chunk_s = ParseDecimal(f.chunk, 0.5, 60);
  if (!chunk_s) return "--chunk-seconds must be a number within 0.5-60";
  vo.chunk_seconds = *chunk_s;
  const auto connections = ParseInteger(f.max_connections, 1, 1'000'000);
  if (!connections) return "--max-connections takes a whole number 1-1000000";
  so.max_connections = static_cast<size_t>(*connections);
  const auto per_tenant = ParseInteger(f.open_uploads, 0, 1'000'000'000);
  const auto total = ParseInteger(f.open_uploads_total, 0, 1'000'000'000);
  const auto files = ParseInteger(f.upload_files, 0, 1'000'000'000);
  if (!per_tenant || !total || !files)
    return "--max-open-uploads, --max-open-uploads-total and --max-upload-files take "
           "a whole number";
  vo.max_open_uploads_per_tenant = static_cast<size_t>(*per_tenant);
  vo.max_open_uploads = static_cast<size_t>(*total);
  vo.max_upload_descriptors = static_cast<size_t>(*files);
  return std::nullopt;
}

// Checks the sizes and durations; a usage error's text, or nullopt.
std::optional<std::string> ParseSizesAndDurations(const FrontFlags& f, FrontOptions* o) {
  api::ServerOptions& so = o->server;
  scheduler::VideoServiceOptions& vo = o->service;
  auto upload = ParseByteSize(f.max_upload);
  auto header = ParseByteSize(f.max_header);
  auto memory = ParseByteSize(f.worker_memory);
  auto ht = ParseDuration(f.header_timeout);
  auto it = ParseDuration(f.idle_timeout);
  auto rt = ParseDuration(f.request_timeout);
  if (!upload || !header || *header < 1024 || *header > (64u << 20) || !memory || !ht || !it ||
      !rt || ht->count() <= 0 || it->count() <= 0 || rt->count() <= 0)
    return "a limit is malformed (sizes like 16K or 20G, durations like 10s or 500ms)";
  auto expiry = ParseDuration(f.upload_expiry);
  if (!expiry || expiry->count() < 1000)
    return "--upload-expiry takes a duration of at least 1s, such as 24h";
  vo.upload_expiry = std::chrono::duration_cast<std::chrono::seconds>(*expiry);
  auto backup = ParseDuration(f.backup_after);
  if (!backup || backup->count() <= 0) return "--backup-after takes a duration such as 15s";
  vo.backup_after = *backup;
  o->worker_memory = *memory;
  so.max_upload_bytes = *upload;
  so.max_header_bytes = static_cast<uint32_t>(*header);
  so.header_timeout = *ht;
  so.idle_timeout = *it;
  so.request_timeout = *rt;
  auto job_memory = ParseByteSize(f.job_memory);
  auto job_max_memory = ParseByteSize(f.job_max_memory);
  auto job_timeout = ParseDuration(f.job_timeout);
  auto job_max_timeout = ParseDuration(f.job_max_timeout);
  if (!job_memory || !job_max_memory || *job_memory < (16u << 20) || *job_memory > *job_max_memory)
    return "--job-memory (at least 16M) and --job-max-memory take sizes, the default at most "
           "the cap";
  if (!job_timeout || !job_max_timeout || job_timeout->count() < 100 ||
      *job_timeout > *job_max_timeout)
    return "--job-timeout (at least 100ms) and --job-max-timeout take durations, the default "
           "at most the cap";
  so.job_memory_bytes = *job_memory;
  so.job_max_memory_bytes = *job_max_memory;
  so.job_timeout = *job_timeout;
  so.job_max_timeout = *job_max_timeout;
  return std::nullopt;
}

// Every default and every flag error of serve and proxy. Returns the exit status to stop with
// (2: usage; the farm key's own), or nullopt to run.
std::optional<int> ParseFrontFlags(Flags& flags, bool proxy, FrontOptions* o) {
  const auto usage = [proxy](const std::string& why) { return PrintUsage(proxy, why); };
  const FrontFlags f = TakeFrontFlags(flags, proxy);
  if (!flags.error().empty()) return usage(flags.error());
  if (!flags.Unknown().empty()) return usage("unknown option " + flags.Unknown().front());
  if (!flags.Positional().empty()) return usage("unexpected argument " + flags.Positional()[0]);
  if (proxy && f.ring_path.empty()) return usage("--ring is required");
  if (proxy)
    if (auto stop = LoadFarmKeyFlags("proxy", f.key_path, f.insecure, &o->service.farm_key))
      return *stop;
  if (auto why = ParseAddressAndCounts(f, o)) return usage(*why);
  if (auto why = ParseSizesAndDurations(f, o)) return usage(*why);
  o->server.web_dir = f.web.empty() ? DefaultWebDir() : fs::path(f.web);
  o->data = f.data;
  o->ring_path = f.ring_path;
  o->unsandboxed = f.unsandboxed;
  return std::nullopt;
}

// Blocks SIGINT, SIGTERM and, for a proxy (it reloads its ring then), SIGHUP (taken by sigwait
// in Serve; every thread started later inherits the mask) and ignores SIGPIPE.
sigset_t BlockStopSignals(bool proxy) {
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  if (proxy) sigaddset(&stop_signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);
  return stop_signals;
}

// The proxy runs no worker: the nodes do, validated and sandboxed, and every task result says
// how it ran. Loads the ring into the service options; an exit status on failure.
std::optional<int> LoadRing(FrontOptions* o) {
  auto ring = storage::Ring::Load(o->ring_path);
  if (!ring.ok()) {
    std::fprintf(stderr, "zerofarm proxy: error: cannot load the ring %s: %s\n",
                 o->ring_path.c_str(), ring.status().message().c_str());
    return 3;
  }
  std::fprintf(stderr, "zerofarm proxy: ring %s of %zu nodes, %d replicas, %u partitions\n",
               storage::ChecksumHex(ring->ContentHash()).c_str(), ring->nodes().size(),
               ring->replicas(), ring->partitions());
  o->service.ring = std::make_shared<storage::LiveRing>(std::move(*ring));
  return std::nullopt;
}

// Loads and validates the worker serve runs its tasks with; an exit status on failure.
std::optional<int> LoadWorker(const char* name, FrontOptions* o) {
  scheduler::WorkerRuntimeOptions wo;
  wo.path = scheduler::DefaultWorkerPath();
  wo.isolation =
      o->unsandboxed ? scheduler::Isolation::kUnsandboxed : scheduler::Isolation::kSandbox;
  wo.memory_bytes = o->worker_memory;
  wo.verdict_cache_dir = o->data / "verdicts";
  auto worker = scheduler::WorkerRuntime::Load(wo);
  if (!worker.ok()) {
    std::fprintf(stderr, "zerofarm %s: error: %s: %s\n", name, wo.path.c_str(),
                 worker.status().message().c_str());
    return 3;
  }
  if ((*worker)->isolation() == scheduler::Isolation::kSandbox) {
    // What the sandbox can enforce on this host, said once at start (a missing layer has
    // already been warned about, and every task report names it too).
    std::string layers;
    for (const std::string& l : sandbox::ProbeHostLayers().Active()) layers += " " + l;
    std::fprintf(stderr,
                 "zerofarm: workers run validated and sandboxed (%s, sha256 %.16s...; layers:%s)\n",
                 wo.path.c_str(), (*worker)->program_sha256().c_str(), layers.c_str());
  }
  o->service.worker = *worker;
  return std::nullopt;
}

// The bearer token made for tenant "default" when the token file holds none yet; empty when
// there are tokens already.
Result<std::string> FirstToken(api::TokenStore& tokens) {
  auto count = tokens.Count();
  if (!count.ok() || *count != 0) return std::string();
  return tokens.Create("default");
}

// The start-up lines on stdout; the last one is what scripts wait for.
void PrintStarted(const std::string& url, const std::string& first_token, const fs::path& data) {
  if (!first_token.empty()) {
    std::printf(
        "zerofarm: first start: bearer token for tenant \"default\" (shown once, keep it):\n"
        "token: %s\n"
        "zerofarm: open %s/#token=%s to sign in to the web page\n",
        first_token.c_str(), url.c_str(), first_token.c_str());
  } else {
    std::printf(
        "zerofarm: sign in with a token printed at the first start, or make another: "
        "zerofarm token create --data %s --tenant NAME\n",
        data.c_str());
  }
  // Last: scripts wait for this line, and by then the token lines above are out.
  std::printf("zerofarm: listening on %s (data %s)\n", url.c_str(), data.c_str());
  std::fflush(stdout);
}

void LogProxy(const std::string& line) {
  std::fprintf(stderr, "zerofarm proxy: %s\n", line.c_str());
}

// Runs the service and the HTTP server until SIGINT or SIGTERM; the exit status. A proxy
// follows its ring file (rewritten, or SIGHUP) meanwhile.
int Serve(const char* name, FrontOptions& o, const sigset_t& stop_signals) {
  o.service.data_dir = o.data;
  auto service = scheduler::VideoService::Open(o.service);
  if (!service.ok()) {
    std::fprintf(stderr, "zerofarm %s: error: %s: %s\n", name, o.data.c_str(),
                 service.status().message().c_str());
    return 3;
  }
  api::TokenStore tokens(o.data / "tokens.tsv");
  auto first_token = FirstToken(tokens);
  if (!first_token.ok()) {
    std::fprintf(stderr, "zerofarm %s: error: %s\n", name, first_token.status().message().c_str());
    return 3;
  }
  auto server = api::Server::Start(o.server, **service, tokens);
  if (!server.ok()) {
    std::fprintf(stderr, "zerofarm %s: error: %s\n", name, server.status().message().c_str());
    return 3;
  }
  PrintStarted(BaseUrl(o.server.address, (*server)->port()), *first_token, o.data);

  std::optional<storage::RingFileWatch> watch;
  if (o.service.ring) watch.emplace(*o.service.ring, o.ring_path, LogProxy);
  int sig = 0;
  while (true) {
    sigwait(&stop_signals, &sig);
    if (sig != SIGHUP) break;
    if (watch) (void)watch->ReloadNow();
  }
  watch.reset();
  std::fprintf(stderr, "zerofarm: stopping (signal %d)\n", sig);
  server->reset();   // no new requests
  service->reset();  // jobs stop; their state stays for the next start
  return 0;
}

int RunFront(int argc, char** argv, bool proxy) {
  const char* name = proxy ? "proxy" : "serve";
  Flags flags(argc, argv, {"unsandboxed", "insecure"});
  if (flags.Has("help") || flags.Has("h")) {
    std::fputs(proxy ? kProxyUsage : kUsage, stdout);
    return 0;
  }
  // Before any thread: freed buffers of several MiB go back to the kernel (process_memory.h).
  TuneAllocatorForServer();
  FrontOptions o;
  if (auto stop = ParseFrontFlags(flags, proxy, &o)) return *stop;

  // A port in use fails here, before the data folder or anything in it is created.
  if (Status free = CheckListenAddress(o.server.address, o.server.port); !free.ok()) {
    std::fprintf(stderr, "zerofarm %s: error: %s\n", name, free.message().c_str());
    return 3;
  }
  const sigset_t stop_signals = BlockStopSignals(proxy);
  if (auto stop = proxy ? LoadRing(&o) : LoadWorker(name, &o)) return *stop;
  return Serve(name, o, stop_signals);
}

}  // namespace

int ServeCommand(int argc, char** argv) { return RunFront(argc, argv, /*proxy=*/false); }
int ProxyCommand(int argc, char** argv) { return RunFront(argc, argv, /*proxy=*/true); }

}  // namespace zerofarm::cli
