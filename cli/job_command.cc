// zerofarm job: submit a storage-side job (ARCHITECTURE.md "Objects and jobs") and follow it
// to its end, or list, show and cancel jobs, over the HTTP API (/v1/jobs).
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>

#include "cli/api_client.h"
#include "cli/commands.h"
#include "cli/flags.h"

namespace zerofarm::cli {
namespace {

using json = nlohmann::json;

constexpr const char* kUsage =
    "usage: zerofarm job run JOB.json   submit the job ('-': stdin), follow it, print its result\n"
    "       zerofarm job ls             list the tenant's jobs, newest first\n"
    "       zerofarm job get ID         the job and its instances, as JSON\n"
    "       zerofarm job cancel ID      cancel a running job\n"
    "options (every action):\n"
    "  --url URL      the server (default http://127.0.0.1:8080); plain http only\n"
    "  --token TOKEN  the bearer token (default: $ZEROFARM_TOKEN); it picks the tenant\n"
    "run only:\n"
    "  --detach       print the job's id and return at once\n"
    "  --report       print the instance table (node, verdict, exit, times, bytes) at the end\n"
    "\n"
    "A job runs a program object on the nodes that hold its input objects: a map instance per\n"
    "part of each input, its part on stdin, and an optional reduce instance reading every map\n"
    "output in order. run prints the job's result (the reduce output, or the map outputs in\n"
    "order) on stdout and its progress on stderr; Ctrl-C cancels the job.\n"
    "Exit 0 when the job is done, 1 when it failed or on an error, 2 on usage.\n";

int Usage(const std::string& error) {
  std::fprintf(stderr, "zerofarm job: %s\n%s", error.c_str(), kUsage);
  return 2;
}

int Fail(const std::string& error) {
  std::fprintf(stderr, "zerofarm job: error: %s\n", error.c_str());
  return 1;
}

std::atomic<bool> g_interrupted{false};
void OnInterrupt(int) { g_interrupted.store(true); }

struct Options {
  ApiTarget target;
  std::string action;
  std::string arg;  // JOB.json or ID
  bool detach = false;
  bool report = false;
};

std::optional<std::string> ParseOptions(int argc, char** argv, Options& o) {
  Flags flags(argc, argv, {"detach", "report"});
  const std::string url = flags.Take("url").value_or("http://127.0.0.1:8080");
  const char* env = std::getenv("ZEROFARM_TOKEN");
  o.target.token = flags.Take("token").value_or(env ? env : "");
  o.detach = flags.Take("detach").has_value();
  o.report = flags.Take("report").has_value();
  if (!flags.error().empty()) return flags.error();
  if (!flags.Unknown().empty()) return "unknown option " + flags.Unknown().front();
  if (!ParseUrl(url, o.target.host, o.target.port))
    return "--url is http://HOST[:PORT], not " + url;
  if (o.target.token.empty()) return "a token is required: --token TOKEN or ZEROFARM_TOKEN";
  const auto& args = flags.Positional();
  if (args.empty()) return "expected an action: run, ls, get or cancel";
  o.action = args[0];
  if (o.action != "run" && o.action != "ls" && o.action != "get" && o.action != "cancel")
    return "unknown action " + o.action + " (run, ls, get or cancel)";
  const size_t want = o.action == "ls" ? 1 : 2;
  if (args.size() != want)
    return o.action + (o.action == "run"  ? " takes JOB.json"
                       : o.action == "ls" ? " takes no argument"
                                          : " takes ID");
  if (want == 2) o.arg = args[1];
  if ((o.detach || o.report) && o.action != "run") return "--detach and --report are for run";
  return std::nullopt;
}

// The answer of one request as JSON, or an error line.
std::optional<json> Call(ApiClient& c, http::verb verb, const std::string& target,
                         const std::string& body, unsigned want, std::string& error) {
  http::response<http::string_body> res;
  const bool sent =
      body.empty() ? c.Simple(verb, target, res, error) : c.Send(verb, target, body, res, error);
  if (!sent) return std::nullopt;
  if (res.result_int() != want) {
    error = ApiError(res.result_int(), res.body());
    return std::nullopt;
  }
  if (want == 204) return json::object();
  json j = json::parse(res.body(), nullptr, false);
  if (j.is_discarded()) {
    error = "the server's answer is not JSON";
    return std::nullopt;
  }
  return j;
}

std::string Seconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", s);
  return buf;
}

void PrintInstances(const json& job) {
  std::fprintf(stderr, "%-10s %-7s %-28s %-22s %-9s %5s %8s %8s %12s %12s %10s\n", "instance",
               "stage", "input", "node", "verdict", "exit", "wall s", "cpu s", "bytes in",
               "bytes out", "network");
  for (const auto& i : job.value("instances", json::array())) {
    auto text = [&](const char* k) {
      return i.contains(k) && i[k].is_string() ? i[k].get<std::string>() : std::string("-");
    };
    std::string exit = i.contains("exit_code") && i["exit_code"].is_number()
                           ? std::to_string(i["exit_code"].get<int>())
                           : (i.contains("stopped_by") && i["stopped_by"].is_string()
                                  ? i["stopped_by"].get<std::string>()
                                  : "-");
    std::fprintf(stderr, "%-10s %-7s %-28s %-22s %-9s %5s %8s %8s %12llu %12llu %10llu\n",
                 text("name").c_str(), text("stage").c_str(), text("input").substr(0, 28).c_str(),
                 text("node").substr(0, 22).c_str(), text("verdict").c_str(), exit.c_str(),
                 Seconds(i.value("wall_seconds", 0.0)).c_str(),
                 Seconds(i.value("cpu_seconds", 0.0)).c_str(),
                 static_cast<unsigned long long>(i.value("bytes_in", uint64_t{0})),
                 static_cast<unsigned long long>(i.value("bytes_out", uint64_t{0})),
                 static_cast<unsigned long long>(i.value("network_bytes", uint64_t{0})));
  }
}

// "3/8 instances done, 2 running" from a job's instances.
std::string Progress(const json& job) {
  size_t done = 0, running = 0, total = 0;
  for (const auto& i : job.value("instances", json::array())) {
    ++total;
    const std::string state = i.value("state", "");
    if (state == "done") ++done;
    if (state == "running") ++running;
  }
  return std::to_string(done) + "/" + std::to_string(total) + " instances done, " +
         std::to_string(running) + " running";
}

int RunJob(ApiClient& c, const Options& o) {
  std::string text;
  if (o.arg == "-") {
    std::ostringstream s;
    s << std::cin.rdbuf();
    text = s.str();
  } else {
    std::ifstream in(o.arg, std::ios::binary);
    if (!in) return Fail("cannot open " + o.arg);
    std::ostringstream s;
    s << in.rdbuf();
    text = s.str();
  }
  if (json::parse(text, nullptr, false).is_discarded()) return Fail(o.arg + " is not JSON");
  std::string error;
  auto created = Call(c, http::verb::post, "/v1/jobs", text, 201, error);
  if (!created) return Fail(error);
  const std::string id = created->value("id", "");
  if (o.detach) {
    std::printf("%s\n", id.c_str());
    return 0;
  }
  std::signal(SIGINT, OnInterrupt);
  std::signal(SIGTERM, OnInterrupt);
  const bool tty = ::isatty(STDERR_FILENO) != 0;
  std::fprintf(stderr, "job %s submitted\n", id.c_str());
  std::string last;
  json job;
  int polls = 0;
  for (;;) {
    if (g_interrupted.load()) {
      (void)Call(c, http::verb::delete_, "/v1/jobs/" + id, "", 204, error);
      std::fprintf(stderr, "%sjob %s: cancelled\n", tty ? "\n" : "", id.c_str());
      return 1;
    }
    auto got = Call(c, http::verb::get, "/v1/jobs/" + id, "", 200, error);
    if (!got) return Fail(error);
    job = std::move(*got);
    const std::string line = Progress(job);
    if (line != last) {
      if (tty)
        std::fprintf(stderr, "\r\033[Kjob %s: %s", id.c_str(), line.c_str());
      else
        std::fprintf(stderr, "job %s: %s\n", id.c_str(), line.c_str());
      last = line;
    }
    if (job.value("status", "") != "running") break;
    // Short jobs end in tens of milliseconds: look often at first, then every 200 ms.
    std::this_thread::sleep_for(std::chrono::milliseconds(++polls < 40 ? 25 : 200));
  }
  if (tty) std::fputc('\n', stderr);
  if (o.report) PrintInstances(job);
  if (job.value("status", "") != "done") {
    const json err = job.value("error", json::object());
    return Fail("job " + id + " failed: " +
                (err.is_object() ? err.value("code", "") + ": " + err.value("message", "")
                                 : std::string("no reason given")));
  }
  if (job.contains("result") && job["result"].is_string())
    std::fwrite(job["result"].get_ref<const std::string&>().data(), 1,
                job["result"].get_ref<const std::string&>().size(), stdout);
  if (job.value("result_truncated", false))
    std::fprintf(stderr, "zerofarm job: the result is cut at 1 MiB; the outputs hold it whole\n");
  for (const auto& name : job.value("outputs", json::array()))
    if (name.is_string()) std::fprintf(stderr, "stored %s\n", name.get<std::string>().c_str());
  return 0;
}

}  // namespace

int JobCommand(int argc, char** argv) {
  Flags probe(argc, argv);
  if (probe.Has("help") || probe.Has("h")) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  Options o;
  if (auto error = ParseOptions(argc, argv, o)) return Usage(*error);
  ApiClient c(o.target, "zerofarm-job");
  std::string error;
  if (!c.Connect(error)) return Fail(error);
  if (o.action == "run") return RunJob(c, o);
  if (o.action == "cancel") {
    if (!Call(c, http::verb::delete_, "/v1/jobs/" + Escape(o.arg, false), "", 204, error))
      return Fail(error);
    return 0;
  }
  if (o.action == "get") {
    auto job = Call(c, http::verb::get, "/v1/jobs/" + Escape(o.arg, false), "", 200, error);
    if (!job) return Fail(error);
    std::printf("%s\n", job->dump(2).c_str());
    return 0;
  }
  auto list = Call(c, http::verb::get, "/v1/jobs", "", 200, error);
  if (!list) return Fail(error);
  for (const auto& j : list->value("jobs", json::array()))
    std::printf("%s  %-8s  %3llu/%-3llu  %s\n", j.value("id", "").c_str(),
                j.value("status", "").c_str(),
                static_cast<unsigned long long>(j.value("instances_done", uint64_t{0})),
                static_cast<unsigned long long>(j.value("instances_total", uint64_t{0})),
                j.contains("request") && j["request"].contains("map")
                    ? j["request"]["map"].value("program", "").c_str()
                    : "");
  return 0;
}

}  // namespace zerofarm::cli
