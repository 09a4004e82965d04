// zerofarm object: put, get, list and remove a tenant's objects over the HTTP API
// (/v1/objects, ARCHITECTURE.md "Objects and jobs"), with a small Boost.Beast client that
// streams the file both ways (memory stays at one buffer whatever the object's size).
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "cli/api_client.h"
#include "cli/commands.h"
#include "cli/flags.h"

namespace zerofarm::cli {
namespace {

using json = nlohmann::json;

constexpr const char* kUsage =
    "usage: zerofarm object put CONTAINER/NAME FILE       store FILE ('-': stdin) as the object\n"
    "       zerofarm object get CONTAINER/NAME [-o FILE]  write the object to FILE (default: "
    "stdout)\n"
    "       zerofarm object ls CONTAINER [--prefix P]     list names (bytes, etag, name)\n"
    "       zerofarm object rm CONTAINER/NAME             remove the object\n"
    "options (every action):\n"
    "  --url URL      the server (default http://127.0.0.1:8080); plain http only\n"
    "  --token TOKEN  the bearer token (default: $ZEROFARM_TOKEN); it picks the tenant\n"
    "\n"
    "Objects belong to the token's tenant. CONTAINER is 1-64 of [A-Za-z0-9_.-]; NAME is what\n"
    "follows the first '/', and may itself hold '/' (\"logs/2026/01.txt\"). Bytes stream both\n"
    "ways: a put is acknowledged once the object is stored and synced; a get checks the length.\n"
    "Exit 0 on success, 1 on an error (the server's code and message are printed), 2 on usage.\n";

int Usage(const std::string& error) {
  std::fprintf(stderr, "zerofarm object: %s\n%s", error.c_str(), kUsage);
  return 2;
}

int Fail(const std::string& error) {
  std::fprintf(stderr, "zerofarm object: error: %s\n", error.c_str());
  return 1;
}

struct Options {
  std::string action;  // put, get, ls, rm
  std::string host;
  std::string port;
  std::string token;
  std::string container;
  std::string name;    // put, get, rm
  std::string file;    // put: the input, get: the output ("" or "-": stdout)
  std::string prefix;  // ls
};

std::optional<std::string> ParseOptions(int argc, char** argv, Options& o) {
  Flags flags(argc, argv);
  const std::string url = flags.Take("url").value_or("http://127.0.0.1:8080");
  const char* env = std::getenv("ZEROFARM_TOKEN");
  o.token = flags.Take("token").value_or(env ? env : "");
  o.file = flags.Take("output", "o").value_or("");
  const std::optional<std::string> prefix = flags.Take("prefix");
  o.prefix = prefix.value_or("");
  if (!flags.error().empty()) return flags.error();
  if (!flags.Unknown().empty()) return "unknown option " + flags.Unknown().front();
  if (!ParseUrl(url, o.host, o.port)) return "--url is http://HOST[:PORT], not " + url;
  if (o.token.empty()) return "a token is required: --token TOKEN or ZEROFARM_TOKEN";
  const auto& args = flags.Positional();
  if (args.empty()) return "expected an action: put, get, ls or rm";
  o.action = args[0];
  const size_t want = o.action == "put" ? 3 : 2;
  if (o.action != "put" && o.action != "get" && o.action != "ls" && o.action != "rm")
    return "unknown action " + o.action + " (put, get, ls or rm)";
  if (args.size() != want)
    return o.action + (o.action == "put"  ? " takes CONTAINER/NAME FILE"
                       : o.action == "ls" ? " takes CONTAINER"
                                          : " takes CONTAINER/NAME");
  if (prefix && o.action != "ls") return "--prefix is for ls";
  if (!o.file.empty() && o.action != "get") return "-o is for get";
  if (o.action == "ls") {
    o.container = args[1];
    if (o.container.empty() || o.container.find('/') != std::string::npos)
      return "ls takes a CONTAINER (no '/')";
    return std::nullopt;
  }
  const size_t slash = args[1].find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == args[1].size())
    return "expected CONTAINER/NAME, not " + args[1];
  o.container = args[1].substr(0, slash);
  o.name = args[1].substr(slash + 1);
  if (o.action == "put") o.file = args[2];
  return std::nullopt;
}

int RunPut(ApiClient& c, const Options& o, const std::string& target) {
  std::FILE* in = o.file == "-" ? stdin : std::fopen(o.file.c_str(), "rb");
  if (!in) return Fail("cannot open " + o.file);
  std::optional<uint64_t> size;
  if (in != stdin && std::fseek(in, 0, SEEK_END) == 0) {
    const long end = std::ftell(in);
    if (end >= 0) size = static_cast<uint64_t>(end);
    std::rewind(in);
  }
  http::response<http::string_body> res;
  std::string error;
  const bool ok = c.Put(target, in, size, res, error);
  if (in != stdin) std::fclose(in);
  if (!ok) return Fail(error);
  if (res.result_int() != 201) return Fail(ApiError(res.result_int(), res.body()));
  json j = json::parse(res.body(), nullptr, false);
  std::printf("%s/%s: %s bytes, etag %s\n", o.container.c_str(), o.name.c_str(),
              j.is_object() ? j["bytes"].dump().c_str() : "?",
              j.is_object() ? j.value("etag", "?").c_str() : "?");
  return 0;
}

int RunGet(ApiClient& c, const Options& o, const std::string& target) {
  const bool to_stdout = o.file.empty() || o.file == "-";
  std::FILE* out = to_stdout ? stdout : std::fopen(o.file.c_str(), "wb");
  if (!out) return Fail("cannot create " + o.file);
  unsigned status = 0;
  std::string body, error;
  bool ok = c.Get(target, out, status, body, error);
  if (!to_stdout && std::fclose(out) != 0 && ok) {
    ok = false;
    error = "cannot write " + o.file;
  }
  if (!ok || status != 200) {
    if (!to_stdout) std::remove(o.file.c_str());
    return Fail(ok ? ApiError(status, body) : error);
  }
  return 0;
}

int RunList(ApiClient& c, const Options& o) {
  std::string marker;
  while (true) {
    std::string target = "/v1/objects/" + Escape(o.container, false) + "?limit=1000";
    if (!o.prefix.empty()) target += "&prefix=" + Escape(o.prefix, false);
    if (!marker.empty()) target += "&marker=" + Escape(marker, false);
    http::response<http::string_body> res;
    std::string error;
    if (!c.Simple(http::verb::get, target, res, error)) return Fail(error);
    if (res.result_int() != 200) return Fail(ApiError(res.result_int(), res.body()));
    json j = json::parse(res.body(), nullptr, false);
    if (!j.is_object() || !j.contains("objects") || !j["objects"].is_array())
      return Fail("the server's listing is not understood");
    for (const auto& obj : j["objects"])
      std::printf("%12s  %s  %s\n", obj["bytes"].dump().c_str(), obj.value("etag", "").c_str(),
                  obj.value("name", "").c_str());
    if (!j.contains("next_marker") || !j["next_marker"].is_string()) return 0;
    marker = j["next_marker"].get<std::string>();
  }
}

}  // namespace

int ObjectCommand(int argc, char** argv) {
  Flags probe(argc, argv);
  if (probe.Has("help") || probe.Has("h")) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  Options o;
  if (auto error = ParseOptions(argc, argv, o)) return Usage(*error);
  ApiClient c({o.host, o.port, o.token}, "zerofarm-object");
  std::string error;
  if (!c.Connect(error)) return Fail(error);
  if (o.action == "ls") return RunList(c, o);
  const std::string target =
      "/v1/objects/" + Escape(o.container, false) + "/" + Escape(o.name, true);
  if (o.action == "put") return RunPut(c, o, target);
  if (o.action == "get") return RunGet(c, o, target);
  http::response<http::string_body> res;
  if (!c.Simple(http::verb::delete_, target, res, error)) return Fail(error);
  if (res.result_int() != 204) return Fail(ApiError(res.result_int(), res.body()));
  return 0;
}

}  // namespace zerofarm::cli
