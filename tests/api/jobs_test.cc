// Storage-side jobs (/v1/jobs) against a real `zerofarm serve`: programs validated when they are
// stored, Debian's stripped busybox run as map and reduce instances next to stored text, results
// equal to the same tools over the whole text, failures that say why, tenants, hostile programs,
// cancel, and the `zerofarm job` CLI.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "run_command.h"
#include "scratch_dir.h"
#include "serve_process.h"
#include "wait_for.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace zerofarm;
using namespace zerofarm::test;
using namespace std::chrono_literals;

namespace {

const fs::path kBusybox = "/bin/busybox";

// The server's child processes that run a program ("pid exe" each). The sandboxes a server
// keeps prepared for its next runs are children too, but still its own executable, waiting.
std::vector<std::string> ChildrenRunningPrograms(int server) {
  std::error_code ec;
  const fs::path own = fs::read_symlink("/proc/" + std::to_string(server) + "/exe", ec);
  std::vector<std::string> running;
  std::istringstream pids(RunCommand({"pgrep", "-P", std::to_string(server)}, 10s).out);
  for (std::string pid; pids >> pid;) {
    const fs::path exe = fs::read_symlink("/proc/" + pid + "/exe", ec);
    if (ec && !fs::exists("/proc/" + pid)) continue;  // it ended meanwhile
    if (ec || exe != own) running.push_back(pid + " " + (ec ? "(a zombie)" : exe.string()));
  }
  return running;
}

json Put(const ServeProcess& s, const std::string& token, const std::string& path,
         const fs::path& file) {
  auto r = Curl(With(Bearer(token), {"-T", file.string()}), s.url("/v1/objects/" + path));
  INFO(path << " -> " << r.status << " " << r.body << r.error);
  REQUIRE(r.status == 201);
  return ParseJson(r);
}

HttpResult Submit(const ServeProcess& s, const std::string& token, const json& job) {
  return Curl(With(Bearer(token), {"-X", "POST", "-H", "Content-Type: application/json",
                                   "--data-binary", job.dump()}),
              s.url("/v1/jobs"));
}

// Submits `job` and waits for its end; the final job.
json RunJob(const ServeProcess& s, const std::string& token, const json& job) {
  auto created = Submit(s, token, job);
  INFO(created.status << " " << created.body);
  REQUIRE(created.status == 201);
  const std::string id = ParseJson(created)["id"];
  CHECK(ParseJson(created)["status"] == "running");
  json last;
  const bool ended = WaitFor(
                         [&] {
                           last = ParseJson(Curl(Bearer(token), s.url("/v1/jobs/" + id)));
                           return last.value("status", "") != "running";
                         },
                         120s)
                         .has_value();
  INFO(last.dump(1));
  REQUIRE(ended);
  return last;
}

// Deterministic log lines (some long enough to cross small parts), `lines` of them.
std::string LogText(size_t lines) {
  static const char* kLevels[] = {"INFO", "DEBUG", "ERROR", "WARN", "INFO", "INFO", "ERROR"};
  std::string text;
  uint64_t x = 88172645463325252ull;
  for (size_t i = 0; i < lines; ++i) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    text += "2026-12-07T10:" + std::to_string(i % 60) + " " + kLevels[x % 7] + " request " +
            std::to_string(x % 100000) + std::string(x % 200, 'x') + "\n";
  }
  return text;
}

size_t CountLines(const std::string& text, const std::string& word) {
  size_t n = 0;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (line.find(word) != std::string::npos) ++n;
  return n;
}

bool HaveBusybox() {
  if (fs::exists(kBusybox)) return true;
  WARN("busybox-static is not installed (scripts/setup.sh installs it); skipping");
  return false;
}

struct Served {
  ScratchDir dir;
  ServeProcess s;
};

std::unique_ptr<Served> StartServe(const std::string& label) {
  auto dir = ScratchDir::Create(label);
  REQUIRE(dir.ok());
  const fs::path data = dir->path() / "data";
  auto out = std::unique_ptr<Served>(new Served{std::move(*dir), ServeProcess(data, {})});
  std::string err = out->s.Start();
  INFO(err);
  REQUIRE(err.empty());
  return out;
}

}  // namespace

TEST_CASE(
    "a stored static program is validated and its verdict shows in HEAD, listings and its report",
    "[api][jobs][slow]") {
  if (!HaveBusybox()) return;
  auto sv = StartServe("jobs-programs");
  ServeProcess& s = sv->s;
  const std::string token = s.token();
  json put = Put(s, token, "bin/busybox", kBusybox);
  REQUIRE(put.contains("program"));
  CHECK(put["program"]["verdict"] == "accepted");
  CHECK(put["program"]["sha256"].get<std::string>().size() == 64);

  // An ELF header with nothing sound behind it is stored, and refused as a program.
  const fs::path junk = WriteBytes(sv->dir.path() / "junk", std::string("\x7f"
                                                                        "ELF\x02\x01\x01",
                                                                        7) +
                                                                std::string(500, 'z'));
  json bad = Put(s, token, "bin/junk", junk);
  CHECK(bad["program"]["verdict"] == "rejected");
  CHECK_FALSE(bad["program"]["reason"].get<std::string>().empty());
  // Plain data is no program at all.
  json text = Put(s, token, "bin/readme.txt", WriteBytes(sv->dir.path() / "t", "hello"));
  CHECK_FALSE(text.contains("program"));

  auto head = Curl(With(Bearer(token), {"-I"}), s.url("/v1/objects/bin/busybox"));
  CHECK(head.header("x-program-verdict") == "accepted");
  auto head_bad = Curl(With(Bearer(token), {"-I"}), s.url("/v1/objects/bin/junk"));
  CHECK(head_bad.header("x-program-verdict") == "rejected");
  CHECK_FALSE(head_bad.header("x-program-reason").empty());
  CHECK(Curl(With(Bearer(token), {"-I"}), s.url("/v1/objects/bin/readme.txt"))
            .header("x-program-verdict")
            .empty());

  json list = ParseJson(Curl(Bearer(token), s.url("/v1/objects/bin")));
  REQUIRE(list["objects"].size() == 3);
  CHECK(list["objects"][0]["program"]["verdict"] == "accepted");  // busybox
  CHECK(list["objects"][1]["program"]["verdict"] == "rejected");  // junk
  CHECK_FALSE(list["objects"][2].contains("program"));

  // The validator's whole report is kept: stripped busybox is decoded, not taken on trust.
  json report = ParseJson(Curl(Bearer(token), s.url("/v1/objects/bin/busybox?validation")));
  CHECK(report["verdict"] == "accepted");
  CHECK(report["sha256"] == put["program"]["sha256"]);
  CHECK(report["counts"]["instructions"].get<uint64_t>() > 100000);
  CHECK(Curl(Bearer(token), s.url("/v1/objects/bin/readme.txt?validation")).status == 404);
}

TEST_CASE(
    "a parallel grep job counts the lines of stored logs that grep counts over the whole text",
    "[api][jobs][slow]") {
  if (!HaveBusybox()) return;
  auto sv = StartServe("jobs-grep");
  ServeProcess& s = sv->s;
  const std::string token = s.token();
  Put(s, token, "bin/busybox", kBusybox);
  std::string all;
  for (int day = 1; day <= 3; ++day) {
    const std::string text = LogText(6000 + 1000 * day);
    all += text;
    Put(s, token, "logs/2026-12-0" + std::to_string(day) + ".log",
        WriteBytes(sv->dir.path() / "log", text));
  }
  Put(s, token, "logs/other.txt", WriteBytes(sv->dir.path() / "o", "ERROR not in the input\n"));

  const json job{
      {"map",
       {{"program", "bin/busybox"},
        {"args", {"grep", "-c", "ERROR"}},
        {"ok_exit_codes", {0, 1}},  // grep -c exits 1 on a part without a match
        {"input", {{"container", "logs"}, {"prefix", "2026-"}}}}},
      {"reduce", {{"program", "bin/busybox"}, {"args", {"awk", "{s+=$1} END {print s}"}}}},
      {"split", {{"bytes", "64K"}}},  // many parts: lines cross every boundary
      {"output", {{"container", "results"}, {"prefix", "grep/"}}},
      {"limits", {{"memory", "128M"}, {"timeout", "60s"}}}};
  json done = RunJob(s, token, job);
  INFO(done.dump(1).substr(0, 4000));
  REQUIRE(done["status"] == "done");
  CHECK(done["error"].is_null());
  CHECK(done["result"] == std::to_string(CountLines(all, "ERROR")) + "\n");

  // One map instance per part of each input, each with its accounting; then one reduce.
  const json& instances = done["instances"];
  uint64_t parts = 0, map_bytes_in = 0;
  for (const auto& i : instances) {
    CHECK(i["state"] == "done");
    CHECK(i["verdict"] == "accepted");
    CHECK(i["node"].is_string());
    CHECK(i["attempts"] == 1);
    CHECK(i["wall_seconds"].get<double>() > 0);
    CHECK(i["stopped_by"].is_null());
    if (i["stage"] == "map") {
      ++parts;
      map_bytes_in += i["bytes_in"].get<uint64_t>();
      CHECK(i["input"].get<std::string>().starts_with("logs/2026-12-0"));
      CHECK((i["exit_code"] == 0 || i["exit_code"] == 1));
    }
  }
  CHECK(instances.back()["stage"] == "reduce");
  CHECK(parts >= all.size() / 65536);
  CHECK(map_bytes_in >= all.size());  // every byte read once, plus the line ends past parts

  // Every instance's stdout became an object of the output container.
  json outputs = ParseJson(Curl(Bearer(token), s.url("/v1/objects/results?prefix=grep/")));
  CHECK(outputs["objects"].size() == instances.size());
  CHECK(Curl(Bearer(token), s.url("/v1/objects/results/grep/reduce")).body == done["result"]);

  // The job is listed.
  json jobs = ParseJson(Curl(Bearer(token), s.url("/v1/jobs")));
  REQUIRE(jobs["jobs"].size() == 1);
  CHECK(jobs["jobs"][0]["id"] == done["id"]);
  CHECK(jobs["jobs"][0]["instances_done"] == instances.size());
}

TEST_CASE("a map-reduce word count gives the counts of tr | sort | uniq -c over the same text",
          "[api][jobs][slow]") {
  if (!HaveBusybox()) return;
  auto sv = StartServe("jobs-wordcount");
  ServeProcess& s = sv->s;
  const std::string token = s.token();
  Put(s, token, "bin/busybox", kBusybox);
  std::string text;
  const char* words[] = {"farm", "render", "video", "node", "chunk", "the", "a", "sandbox"};
  uint64_t x = 42;
  for (int i = 0; i < 40000; ++i) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    text += words[(x >> 33) % 8];
    text += (x >> 40) % 9 == 0 ? "\n" : " ";
  }
  text += "\n";
  const fs::path file = WriteBytes(sv->dir.path() / "words.txt", text);
  Put(s, token, "books/words.txt", file);

  json done = RunJob(
      s, token,
      {{"map",
        {{"program", "bin/busybox"},
         {"args", {"awk", "{for (i = 1; i <= NF; i++) c[$i]++} END {for (w in c) print w, c[w]}"}},
         {"input", {{"container", "books"}, {"prefix", "words"}}}}},
       {"reduce",
        {{"program", "bin/busybox"},
         {"args", {"awk", "{c[$1] += $2} END {for (w in c) print c[w], w}"}}}},
       {"split", {{"bytes", "64K"}}}});
  REQUIRE(done["status"] == "done");

  // The reference: the classic pipeline over the whole file, on this machine.
  auto ref =
      RunCommand({"sh", "-c", "tr -s ' ' '\\n' < " + file.string() + " | sort | uniq -c"}, 60s);
  REQUIRE(ref.exit_code == 0);
  auto counts = [](const std::string& out) {
    std::map<std::string, uint64_t> m;
    std::istringstream in(out);
    uint64_t n;
    std::string w;
    while (in >> n >> w) m[w] = n;
    return m;
  };
  const auto want = counts(ref.out);
  CHECK(want.size() == 8);
  CHECK(counts(done["result"]) == want);
  CHECK(done["instances"].size() > 2);  // the text was split
}

TEST_CASE("a program that fails by itself fails its job once, saying which instance and why",
          "[api][jobs][slow]") {
  if (!HaveBusybox()) return;
  auto sv = StartServe("jobs-failure");
  ServeProcess& s = sv->s;
  const std::string token = s.token();
  Put(s, token, "bin/busybox", kBusybox);
  Put(s, token, "in/a.txt", WriteBytes(sv->dir.path() / "a", "one\ntwo\n"));
  json done = RunJob(s, token,
                     {{"map",
                       {{"program", "bin/busybox"},
                        {"args", {"grep", "-c", "nothing matches this"}},
                        {"input", {{"container", "in"}}}}}});
  CHECK(done["status"] == "failed");
  CHECK(done["error"]["code"] == "program_failed");
  const std::string message = done["error"]["message"];
  CHECK(message.find("map-00000") != std::string::npos);
  CHECK(message.find("exited with code 1") != std::string::npos);
  CHECK(done["instances"][0]["attempts"] == 1);  // not retried
  // What the program said on stderr comes with the reason.
  json said = RunJob(s, token,
                     {{"map",
                       {{"program", "bin/busybox"},
                        {"args", {"cat", "/no/such/file"}},
                        {"input", {{"container", "in"}}}}}});
  CHECK(said["status"] == "failed");
  CHECK(said["error"]["message"].get<std::string>().find("/no/such/file") != std::string::npos);
  CHECK(done["instances"][0]["exit_code"] == 1);
  CHECK(done["result"].is_null());

  // A program stopped by its limits says which one.
  json slow = RunJob(
      s, token,
      {{"map",
        {{"program", "bin/busybox"}, {"args", {"sleep", "30"}}, {"input", {{"container", "in"}}}}},
       {"limits", {{"timeout", "500ms"}}}});
  CHECK(slow["status"] == "failed");
  CHECK(slow["instances"][0]["stopped_by"] == "timeout");
  CHECK(slow["error"]["message"].get<std::string>().find("timeout") != std::string::npos);

  // And one writing past its output quota.
  Put(s, token, "in/b.txt", WriteBytes(sv->dir.path() / "b", std::string(100000, 'y') + "\n"));
  json loud = RunJob(s, token,
                     {{"map",
                       {{"program", "bin/busybox"},
                        {"args", {"cat"}},
                        {"input", {{"container", "in"}, {"prefix", "b"}}}}},
                      {"limits", {{"output", "1K"}}}});
  CHECK(loud["status"] == "failed");
  CHECK(loud["instances"][0]["stopped_by"].is_string());
  CHECK(loud["instances"][0]["bytes_out"].get<uint64_t>() <= 1024);
}

TEST_CASE("jobs refuse other tenants' programs and inputs, non-programs and malformed documents",
          "[api][jobs][slow]") {
  if (!HaveBusybox()) return;
  auto sv = StartServe("jobs-refusals");
  ServeProcess& s = sv->s;
  const std::string alice = s.token();
  const std::string bob = NewToken(s.data(), "bob");
  Put(s, alice, "bin/busybox", kBusybox);
  Put(s, alice, "bin/notes.txt", WriteBytes(sv->dir.path() / "n", "not a program"));
  Put(s, alice, "bin/junk",
      WriteBytes(sv->dir.path() / "j", std::string("\x7f"
                                                   "ELFjunk",
                                                   7)));
  Put(s, alice, "secret/data.txt", WriteBytes(sv->dir.path() / "d", "alice's secret\n"));
  Put(s, bob, "mine/x.txt", WriteBytes(sv->dir.path() / "x", "bob's\n"));

  auto error = [&](const std::string& token, const json& job) {
    auto r = Submit(s, token, job);
    INFO(job.dump() << " -> " << r.status << " " << r.body);
    CHECK(r.status >= 400);
    return std::make_pair(r.status, ParseJson(r)["error"]["code"].get<std::string>());
  };
  auto map = [](const std::string& program, const std::string& container) {
    return json{
        {"map", {{"program", program}, {"args", {"cat"}}, {"input", {{"container", container}}}}}};
  };
  // Bob can name neither Alice's program nor her input: for him they do not exist.
  CHECK(error(bob, map("bin/busybox", "mine")) == std::make_pair(404, std::string("not_found")));
  Put(s, bob, "bin/busybox", kBusybox);
  CHECK(error(bob, map("bin/busybox", "secret")).second == "bad_job");  // no input matches
  CHECK(error(alice, map("bin/notes.txt", "secret")) ==
        std::make_pair(422, std::string("not_a_program")));
  CHECK(error(alice, map("bin/junk", "secret")) ==
        std::make_pair(422, std::string("program_rejected")));
  CHECK(error(alice, map("busybox", "secret")).second == "bad_job");
  CHECK(error(alice, json{{"reduce", {}}}).second == "bad_job");
  CHECK(error(alice, json::array()).first == 400);
  json bad_limits = map("bin/busybox", "secret");
  bad_limits["limits"] = {{"memory", "1T"}};
  CHECK(error(alice, bad_limits).second == "bad_job");
  auto garbage = Curl(With(Bearer(alice), {"-X", "POST", "--data-binary", "{\"map\": [[[["}),
                      s.url("/v1/jobs"));
  CHECK(garbage.status == 400);
  // Jobs are the tenant's own too.
  json done = RunJob(s, alice, map("bin/busybox", "secret"));
  CHECK(done["result"] == "alice's secret\n");
  CHECK(Curl(Bearer(bob), s.url("/v1/jobs/" + done["id"].get<std::string>())).status == 404);
  CHECK(ParseJson(Curl(Bearer(bob), s.url("/v1/jobs")))["jobs"].empty());
  CHECK(Curl(Bearer(alice), s.url("/v1/jobs/j_nonsense")).status == 404);
  CHECK(s.running());
}

TEST_CASE("hostile programs submitted as jobs read nothing, reach nothing and leave no process",
          "[api][jobs][slow]") {
  if (RunCommand({"gcc", "--version"}, 30s).exit_code != 0) {
    WARN("gcc is missing; skipping");
    return;
  }
  auto sv = StartServe("jobs-hostile");
  ServeProcess& s = sv->s;
  const std::string token = s.token();
  // One program, one attack per argument; it prints ESCAPED when an attack worked.
  const fs::path src = WriteBytes(sv->dir.path() / "hostile.c", R"(
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <unistd.h>
int main(int argc, char** argv) {
  const char* what = argc > 1 ? argv[1] : "";
  if (!strcmp(what, "files")) {
    if (open("/etc/passwd", O_RDONLY) >= 0) puts("ESCAPED open");
    if (opendir("/proc")) puts("ESCAPED proc");
    if (open("/tmp/zerofarm-hostile", O_CREAT | O_WRONLY, 0644) >= 0) puts("ESCAPED create");
  } else if (!strcmp(what, "net")) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd >= 0) {
      struct sockaddr_in a = {0};
      a.sin_family = AF_INET;
      a.sin_port = htons(atoi(argv[2]));
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      if (connect(fd, (struct sockaddr*)&a, sizeof a) == 0) puts("ESCAPED connect");
    }
  } else if (!strcmp(what, "procs")) {
    pid_t p = fork();
    if (p == 0) for (;;) pause();
    if (p > 0) puts("ESCAPED fork");
    char* sh[] = {"/bin/sh", 0};
    execve("/bin/sh", sh, 0);
    if (kill(-1, SIGKILL) == 0) puts("ESCAPED kill");
  } else if (!strcmp(what, "exec-memory")) {
    if (mmap(0, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) !=
        MAP_FAILED)
      puts("ESCAPED mmap");
  } else if (!strcmp(what, "ptrace")) {
    if (ptrace(PTRACE_TRACEME, 0, 0, 0) == 0) puts("ESCAPED ptrace");
  } else if (!strcmp(what, "memory")) {
    for (;;) { char* p = malloc(1 << 20); if (!p) break; memset(p, 1, 1 << 20); }
  } else if (!strcmp(what, "spin")) {
    for (volatile unsigned long i = 0;; ++i) {}
  }
  puts("done");
  return 0;
}
)");
  const fs::path bin = sv->dir.path() / "hostile";
  auto cc = RunCommand({"gcc", "-O1", "-static", "-o", bin.string(), src.string()}, 120s);
  INFO(cc.err);
  REQUIRE(cc.exit_code == 0);
  REQUIRE(RunCommand({"strip", bin.string()}, 30s).exit_code == 0);
  json put = Put(s, token, "bin/hostile", bin);
  REQUIRE(put["program"]["verdict"] == "accepted");
  Put(s, token, "in/x", WriteBytes(sv->dir.path() / "x", "x\n"));
  const std::vector<std::vector<std::string>> attacks = {
      {"files"},  {"net", std::to_string(s.port())},
      {"procs"},  {"exec-memory"},
      {"ptrace"}, {"memory"},
      {"spin"}};
  for (const auto& args : attacks) {
    json done = RunJob(
        s, token,
        {{"map", {{"program", "bin/hostile"}, {"args", args}, {"input", {{"container", "in"}}}}},
         {"limits", {{"memory", "64M"}, {"timeout", "3s"}, {"cpu", "1s"}}}});
    INFO(args[0] << ": " << done.dump(1));
    const json& instance = done["instances"][0];
    // Either a sandbox rule stopped it, or every attack was refused and it said so.
    if (done["status"] == "done") {
      CHECK(done["result"].get<std::string>().find("ESCAPED") == std::string::npos);
      CHECK(done["result"].get<std::string>().find("done") != std::string::npos);
    } else {
      CHECK(instance["stopped_by"].is_string());
      CHECK(done["error"]["code"] == "program_failed");
    }
    if (args[0] == "memory") CHECK(instance["stopped_by"] == "memory");
    if (args[0] == "spin") CHECK(instance["stopped_by"].is_string());
    // No process of it is left: no child of the server runs a program.
    CHECK(ChildrenRunningPrograms(s.pid()).empty());
  }
  CHECK_FALSE(fs::exists("/tmp/zerofarm-hostile"));
  CHECK(s.running());
}

TEST_CASE("a cancelled job stops its instances and says it was cancelled", "[api][jobs][slow]") {
  if (!HaveBusybox()) return;
  auto sv = StartServe("jobs-cancel");
  ServeProcess& s = sv->s;
  const std::string token = s.token();
  Put(s, token, "bin/busybox", kBusybox);
  Put(s, token, "in/x", WriteBytes(sv->dir.path() / "x", "x\n"));
  auto created = Submit(s, token,
                        {{"map",
                          {{"program", "bin/busybox"},
                           {"args", {"sleep", "60"}},
                           {"input", {{"container", "in"}}}}}});
  REQUIRE(created.status == 201);
  const std::string id = ParseJson(created)["id"];
  REQUIRE(WaitFor(
      [&] {
        json j = ParseJson(Curl(Bearer(token), s.url("/v1/jobs/" + id)));
        return j["instances"][0]["state"] == "running";
      },
      30s));
  CHECK(Curl(With(Bearer(token), {"-X", "DELETE"}), s.url("/v1/jobs/" + id)).status == 204);
  json last;
  REQUIRE(WaitFor(
      [&] {
        last = ParseJson(Curl(Bearer(token), s.url("/v1/jobs/" + id)));
        return last["status"] != "running";
      },
      10s));
  CHECK(last["status"] == "failed");
  CHECK(last["error"]["code"] == "cancelled");
  CHECK(ChildrenRunningPrograms(s.pid()).empty());
}

TEST_CASE("zerofarm job run submits a job, follows it and prints its result", "[api][jobs][slow]") {
  if (!HaveBusybox()) return;
  auto sv = StartServe("jobs-cli");
  ServeProcess& s = sv->s;
  const std::string token = s.token();
  Put(s, token, "bin/busybox", kBusybox);
  Put(s, token, "logs/a.log", WriteBytes(sv->dir.path() / "a", LogText(3000)));
  const fs::path job =
      WriteBytes(sv->dir.path() / "job.json", json{{"map",
                                                    {{"program", "bin/busybox"},
                                                     {"args", {"grep", "-c", "WARN"}},
                                                     {"input", {{"container", "logs"}}}}}}
                                                  .dump());
  const std::vector<std::string> base{ZF_ZEROFARM_BIN, "job",     "run",     job.string(),
                                      "--url",         s.url(""), "--token", token};
  auto run = RunCommand(With(base, {"--report"}), 120s);
  INFO(run.err);
  REQUIRE(run.exit_code == 0);
  CHECK(run.out == std::to_string(CountLines(LogText(3000), "WARN")) + "\n");
  CHECK(run.err.find("1/1 instances done") != std::string::npos);
  CHECK(run.err.find("accepted") != std::string::npos);  // the --report table
  // On a terminal the progress redraws one line; the result is the same.
  auto tty = RunOnTerminal(base, 120s);
  CHECK(tty.exit_code == 0);
  CHECK(tty.out.find(std::to_string(CountLines(LogText(3000), "WARN"))) != std::string::npos);

  auto listed =
      RunCommand({ZF_ZEROFARM_BIN, "job", "ls", "--url", s.url(""), "--token", token}, 30s);
  CHECK(listed.exit_code == 0);
  CHECK(listed.out.find("done") != std::string::npos);
  auto bad = RunCommand(
      {ZF_ZEROFARM_BIN, "job", "run", "/nonexistent.json", "--url", s.url(""), "--token", token},
      30s);
  CHECK(bad.exit_code == 1);
  CHECK(RunCommand({ZF_ZEROFARM_BIN, "job", "frobnicate"}, 30s).exit_code == 2);
}
