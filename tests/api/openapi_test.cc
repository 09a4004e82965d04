// api/openapi.yaml against the server: every documented route answers (no 404
// route_not_found, no 405) and every route the server has is documented.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "corpus.h"
#include "serve_process.h"
#include "zerofarm/api/server.h"

namespace fs = std::filesystem;
using namespace zerofarm;
using namespace zerofarm::test;
using namespace std::chrono_literals;

namespace {

// (METHOD, path) pairs under "paths:" of the YAML, read by indentation: a path is a key at
// indent 2 starting with '/', a method a key at indent 4 named like an HTTP method.
std::set<std::pair<std::string, std::string>> YamlRoutes(const fs::path& file) {
  std::ifstream in(file);
  std::set<std::pair<std::string, std::string>> out;
  std::string line, path;
  bool in_paths = false;
  static const std::set<std::string> kMethods = {"get",    "head",  "post",   "put",
                                                 "delete", "patch", "options"};
  while (std::getline(in, line)) {
    if (line.rfind("paths:", 0) == 0) {
      in_paths = true;
      continue;
    }
    if (!in_paths) continue;
    if (!line.empty() && line[0] != ' ' && line[0] != '#') break;  // next top-level key
    size_t indent = line.find_first_not_of(' ');
    if (indent == std::string::npos) continue;
    std::string key = line.substr(indent, line.find(':', indent) - indent);
    if (indent == 2 && !key.empty() && key[0] == '/') path = key;
    if (indent == 4 && kMethods.count(key)) {
      for (char& c : key) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      out.insert({key, path});
    }
  }
  return out;
}

}  // namespace

TEST_CASE("api/openapi.yaml documents exactly the routes the server answers",
          "[integration][api][openapi][slow]") {
  const auto yaml = YamlRoutes(fs::path(ZF_SOURCE_DIR) / "api" / "openapi.yaml");
  REQUIRE(yaml.size() > 10);
  std::set<std::pair<std::string, std::string>> server(api::Server::Routes().begin(),
                                                       api::Server::Routes().end());
  for (const auto& r : server) {
    INFO(r.first << " " << r.second << " is served but not in openapi.yaml");
    CHECK(yaml.count(r));
  }
  for (const auto& r : yaml) {
    INFO(r.first << " " << r.second << " is in openapi.yaml but not served");
    CHECK(server.count(r));
  }

  // And the running server answers each documented route with something other than
  // "no such route" or "method not allowed".
  auto dir = ScratchDir::Create("api-openapi");
  REQUIRE(dir.ok());
  ServeProcess s(dir->path() / "data", {});
  std::string err = s.Start();
  INFO(err);
  REQUIRE(err.empty());
  for (const auto& [method, path] : yaml) {
    std::string concrete = path;
    auto fill = [&](const std::string& name, const std::string& value) {
      for (size_t at; (at = concrete.find(name)) != std::string::npos;)
        concrete.replace(at, name.size(), value);
    };
    fill("{id}", "v_0123456789abcdef");
    fill("{upload_id}", "u_0123456789abcdef01234567");
    fill("{rung}", "360p");
    fill("{file}", "index.m3u8");
    fill("{playback_id}", "v_0123456789abcdef");
    fill("{key_id}", "k_0123456789abcdef");
    fill("{container}", "c");
    fill("{name}", "dir/o");
    std::vector<std::string> args = Bearer(s.token());
    args.insert(args.end(), {"-X", method, "-H", "Tus-Resumable: 1.0.0"});
    if (method == "HEAD") args = {"-I", "-H", "Authorization: Bearer " + s.token()};
    if (method == "POST" && path == "/v1/uploads")
      args.insert(args.end(), {"-H", "Upload-Length: 0"});
    auto r = Curl(args, s.url(concrete), 30s);
    INFO(method << " " << concrete << " -> " << r.status << " " << r.body << r.error);
    CHECK(r.status != 0);
    CHECK(r.status != 405);
    CHECK(r.body.find("route_not_found") == std::string::npos);
  }
}
