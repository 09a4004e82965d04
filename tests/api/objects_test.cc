// The objects API (/v1/objects) against a real `zerofarm serve`: streamed puts read back byte
// for byte, ranges, HEAD, overwrite and delete, paged listings, name rules, tenants, the upload
// limit, kill -9, and the `zerofarm object` CLI.
#include <catch2/catch.hpp>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "run_command.h"
#include "scratch_dir.h"
#include "serve_process.h"
#include "test_bytes.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace zerofarm;
using namespace zerofarm::test;
using namespace std::chrono_literals;

namespace {

// PUT of `file` (streamed by curl -T); the answer.
HttpResult PutFile(const ServeProcess& s, const std::string& token, const std::string& path,
                   const fs::path& file) {
  return Curl(With(Bearer(token), {"-T", file.string()}), s.url("/v1/objects/" + path));
}

json PutOk(const ServeProcess& s, const std::string& token, const std::string& path,
           const fs::path& file) {
  auto r = PutFile(s, token, path, file);
  INFO(path << " -> " << r.status << " " << r.body << r.error);
  REQUIRE(r.status == 201);
  return ParseJson(r);
}

std::vector<std::string> Names(const json& page) {
  std::vector<std::string> out;
  for (const auto& o : page["objects"]) out.push_back(o["name"]);
  return out;
}

struct Served {
  ScratchDir dir;
  ServeProcess s;
};

// A scratch dir and a started serve with `flags`.
std::unique_ptr<Served> StartServe(const std::string& label,
                                   const std::vector<std::string>& flags = {}) {
  auto dir = ScratchDir::Create(label);
  REQUIRE(dir.ok());
  const fs::path data = dir->path() / "data";
  auto out = std::unique_ptr<Served>(new Served{std::move(*dir), ServeProcess(data, flags)});
  std::string err = out->s.Start();
  INFO(err);
  REQUIRE(err.empty());
  return out;
}

}  // namespace

TEST_CASE("an object put over the API reads back byte for byte, in ranges, and until deleted",
          "[api][objects][slow]") {
  auto sv = StartServe("objects-roundtrip");
  ServeProcess& s = sv->s;
  const std::string token = s.token();
  // Over one store block (4 MiB) and not a multiple of it.
  const std::string bytes = TestBytes((5 << 20) + 7, 1);
  const fs::path file = WriteBytes(sv->dir.path() / "big.bin", bytes);

  json put = PutOk(s, token, "media/big.bin", file);
  CHECK(put["container"] == "media");
  CHECK(put["name"] == "big.bin");
  CHECK(put["bytes"] == bytes.size());
  const std::string etag = put["etag"];
  CHECK(etag.size() == 16);

  auto got = Curl(Bearer(token), s.url("/v1/objects/media/big.bin"));
  REQUIRE(got.status == 200);
  CHECK(got.body.size() == bytes.size());
  CHECK(got.body == bytes);
  CHECK(got.header("etag") == "\"" + etag + "\"");
  CHECK(got.header("accept-ranges") == "bytes");

  // The same content has the same ETag under another name.
  CHECK(PutOk(s, token, "media/copy.bin", file)["etag"] == etag);

  auto range = [&](const std::string& spec) {
    return Curl(With(Bearer(token), {"-H", "Range: bytes=" + spec}),
                s.url("/v1/objects/media/big.bin"));
  };
  const std::string total = std::to_string(bytes.size());
  auto first = range("0-9");
  CHECK(first.status == 206);
  CHECK(first.body == bytes.substr(0, 10));
  CHECK(first.header("content-range") == "bytes 0-9/" + total);
  auto middle = range("4194300-4194310");  // across the first block's end
  CHECK(middle.status == 206);
  CHECK(middle.body == bytes.substr(4194300, 11));
  auto suffix = range("-100");
  CHECK(suffix.status == 206);
  CHECK(suffix.body == bytes.substr(bytes.size() - 100));
  CHECK(suffix.header("content-range") == "bytes " + std::to_string(bytes.size() - 100) + "-" +
                                              std::to_string(bytes.size() - 1) + "/" + total);
  auto past = range(total + "-");
  CHECK(past.status == 416);
  CHECK(past.header("content-range") == "bytes */" + total);
  CHECK(ParseJson(past)["error"]["code"] == "range_not_satisfiable");

  auto cached = Curl(With(Bearer(token), {"-H", "If-None-Match: \"" + etag + "\""}),
                     s.url("/v1/objects/media/big.bin"));
  CHECK(cached.status == 304);
  CHECK(cached.body.empty());

  auto head = Curl(With(Bearer(token), {"-I"}), s.url("/v1/objects/media/big.bin"));
  CHECK(head.status == 200);
  CHECK(head.header("content-length") == total);
  CHECK(head.header("etag") == "\"" + etag + "\"");
  CHECK_FALSE(head.header("last-modified").empty());
  CHECK(head.body.empty());

  // Overwrite replaces bytes, size and ETag.
  const fs::path small = WriteBytes(sv->dir.path() / "small.txt", "second");
  json again = PutOk(s, token, "media/big.bin", small);
  CHECK(again["bytes"] == 6);
  CHECK(again["etag"] != etag);
  CHECK(Curl(Bearer(token), s.url("/v1/objects/media/big.bin")).body == "second");
  json list = ParseJson(Curl(Bearer(token), s.url("/v1/objects/media")));
  REQUIRE(list["objects"].size() == 2);
  CHECK(list["objects"][0] == json{{"name", "big.bin"}, {"bytes", 6}, {"etag", again["etag"]}});

  // An empty object is an object.
  const fs::path empty = WriteBytes(sv->dir.path() / "empty", "");
  CHECK(PutOk(s, token, "media/empty", empty)["bytes"] == 0);
  auto got_empty = Curl(Bearer(token), s.url("/v1/objects/media/empty"));
  CHECK(got_empty.status == 200);
  CHECK(got_empty.body.empty());

  auto del = With(Bearer(token), {"-X", "DELETE"});
  CHECK(Curl(del, s.url("/v1/objects/media/big.bin")).status == 204);
  auto gone = Curl(Bearer(token), s.url("/v1/objects/media/big.bin"));
  CHECK(gone.status == 404);
  CHECK(ParseJson(gone)["error"]["code"] == "not_found");
  CHECK(Curl(With(Bearer(token), {"-I"}), s.url("/v1/objects/media/big.bin")).status == 404);
  CHECK(Curl(del, s.url("/v1/objects/media/big.bin")).status == 404);
  CHECK(Curl(Bearer(token), s.url("/v1/objects/media/copy.bin")).body == bytes);
}

TEST_CASE("objects list in name order by prefix, marker and limit, names holding / and UTF-8",
          "[api][objects][slow]") {
  auto sv = StartServe("objects-list");
  ServeProcess& s = sv->s;
  const std::string token = s.token();
  // URL path -> name.
  const std::vector<std::pair<std::string, std::string>> objects = {
      {"b/1", "b/1"},
      {"a/3", "a/3"},
      {"a/1", "a/1"},
      {"a/2", "a/2"},
      {"x%20y", "x y"},
      {"%C3%BC/%C3%B1.txt", "\xc3\xbc/\xc3\xb1.txt"},
      {"deep/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r", "deep/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r"},
  };
  for (const auto& [path, name] : objects) {
    const fs::path file = WriteBytes(sv->dir.path() / "f", "bytes of " + name);
    CHECK(PutOk(s, token, "box/" + path, file)["name"] == name);
  }
  CHECK(Curl(Bearer(token), s.url("/v1/objects/box/%C3%BC/%C3%B1.txt")).body ==
        "bytes of \xc3\xbc/\xc3\xb1.txt");

  json all = ParseJson(Curl(Bearer(token), s.url("/v1/objects/box")));
  CHECK(Names(all) == std::vector<std::string>{"a/1", "a/2", "a/3", "b/1",
                                               "deep/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r", "x y",
                                               "\xc3\xbc/\xc3\xb1.txt"});
  CHECK(all["next_marker"].is_null());
  CHECK(all["objects"][0]["bytes"] == std::string("bytes of a/1").size());

  json page1 = ParseJson(Curl(Bearer(token), s.url("/v1/objects/box?prefix=a/&limit=2")));
  CHECK(Names(page1) == std::vector<std::string>{"a/1", "a/2"});
  REQUIRE(page1["next_marker"] == "a/2");
  json page2 =
      ParseJson(Curl(Bearer(token), s.url("/v1/objects/box?prefix=a/&limit=2&marker=a/2")));
  CHECK(Names(page2) == std::vector<std::string>{"a/3"});
  CHECK(page2["next_marker"].is_null());
  json exact = ParseJson(Curl(Bearer(token), s.url("/v1/objects/box?limit=4")));
  CHECK(Names(exact).size() == 4);
  CHECK(exact["next_marker"] == "b/1");

  CHECK(ParseJson(Curl(Bearer(token), s.url("/v1/objects/nothing")))["objects"].empty());
  for (const char* bad : {"0", "1001", "x", "-1"}) {
    auto r = Curl(Bearer(token), s.url(std::string("/v1/objects/box?limit=") + bad));
    INFO(bad);
    CHECK(r.status == 400);
  }
}

TEST_CASE("bad container and object names are refused with 400", "[api][objects][slow]") {
  auto sv = StartServe("objects-names");
  ServeProcess& s = sv->s;
  const fs::path file = WriteBytes(sv->dir.path() / "f", "x");
  auto code = [&](const std::string& path) {
    auto r = PutFile(s, s.token(), path, file);
    INFO(path << " -> " << r.status << " " << r.body);
    CHECK(r.status == 400);
    return r.status == 400 ? ParseJson(r)["error"]["code"].get<std::string>() : "";
  };
  CHECK(code("bad!/x") == "bad_container_name");
  CHECK(code(std::string(65, 'c') + "/x") == "bad_container_name");
  CHECK(code("b%20x/x") == "bad_container_name");
  CHECK(code(std::string(64, 'c') + "/" + std::string(1025, 'n')) == "bad_object_name");
  CHECK(code("c//x") == "bad_object_name");  // a leading '/'
  CHECK(code("c/a/../b") == "bad_path");
  CHECK(code("c/a/./b") == "bad_path");
  CHECK(code("c/a%00b") == "bad_path");
  CHECK(code("c/%FF") == "bad_path");  // not UTF-8
  CHECK(Curl(Bearer(s.token()), s.url("/v1/objects/bad!")).status == 400);
  // None of them stored anything.
  CHECK(ParseJson(Curl(Bearer(s.token()), s.url("/v1/objects/c")))["objects"].empty());
  // The longest name is fine.
  CHECK(PutFile(s, s.token(), std::string(64, 'c') + "/" + std::string(1024, 'n'), file).status ==
        201);
}

TEST_CASE("another tenant can neither see nor read nor delete a tenant's objects",
          "[api][objects][slow]") {
  auto sv = StartServe("objects-tenants");
  ServeProcess& s = sv->s;
  const std::string alice = s.token();
  const std::string bob = NewToken(s.data(), "bob");
  const fs::path file = WriteBytes(sv->dir.path() / "f", "alice's bytes");
  PutOk(s, alice, "private/secret.txt", file);

  CHECK(Curl(Bearer(bob), s.url("/v1/objects/private/secret.txt")).status == 404);
  CHECK(Curl(With(Bearer(bob), {"-I"}), s.url("/v1/objects/private/secret.txt")).status == 404);
  CHECK(ParseJson(Curl(Bearer(bob), s.url("/v1/objects/private")))["objects"].empty());
  CHECK(Curl(With(Bearer(bob), {"-X", "DELETE"}), s.url("/v1/objects/private/secret.txt")).status ==
        404);
  CHECK(Curl({}, s.url("/v1/objects/private/secret.txt")).status == 401);
  CHECK(Curl({}, s.url("/v1/objects/private")).status == 401);

  // Bob's object of the same name is his own.
  const fs::path his = WriteBytes(sv->dir.path() / "g", "bob's bytes");
  PutOk(s, bob, "private/secret.txt", his);
  CHECK(Curl(Bearer(bob), s.url("/v1/objects/private/secret.txt")).body == "bob's bytes");
  CHECK(Curl(Bearer(alice), s.url("/v1/objects/private/secret.txt")).body == "alice's bytes");
  CHECK(ParseJson(Curl(Bearer(alice), s.url("/v1/objects/private")))["objects"].size() == 1);
}

TEST_CASE("a body over --max-upload is refused with 413 and leaves nothing behind",
          "[api][objects][slow]") {
  auto sv = StartServe("objects-limit", {"--max-upload", "1M"});
  ServeProcess& s = sv->s;
  const std::string token = s.token();
  const fs::path big = WriteBytes(sv->dir.path() / "big", TestBytes(3 << 20, 2));
  const fs::path fits = WriteBytes(sv->dir.path() / "fits", TestBytes(1 << 20, 3));

  SECTION("announced by Content-Length") {
    auto r = PutFile(s, token, "c/big", big);
    INFO(r.body << r.error);
    CHECK(r.status == 413);
  }
  SECTION("found while a chunked body streams") {
    auto r = Curl(With(Bearer(token), {"-H", "Transfer-Encoding: chunked", "-T", big.string()}),
                  s.url("/v1/objects/c/big"));
    INFO(r.body << r.error);
    CHECK(r.status == 413);
  }
  CHECK(Curl(Bearer(token), s.url("/v1/objects/c/big")).status == 404);
  CHECK(ParseJson(Curl(Bearer(token), s.url("/v1/objects/c")))["objects"].empty());

  // At the limit it is stored; an oversized overwrite keeps it.
  json put = PutOk(s, token, "c/fits", fits);
  CHECK(put["bytes"] == 1 << 20);
  CHECK(Curl(With(Bearer(token), {"-H", "Transfer-Encoding: chunked", "-T", big.string()}),
             s.url("/v1/objects/c/fits"))
            .status == 413);
  CHECK(Curl(Bearer(token), s.url("/v1/objects/c/fits")).body == ReadFile(fits));
  CHECK(Names(ParseJson(Curl(Bearer(token), s.url("/v1/objects/c")))) ==
        std::vector<std::string>{"fits"});
}

TEST_CASE("acknowledged objects survive kill -9 and a restart of serve", "[api][objects][slow]") {
  auto sv = StartServe("objects-crash");
  ServeProcess& s = sv->s;
  const std::string token = s.token();
  const std::string big = TestBytes((9 << 20) + 3, 4);
  PutOk(s, token, "keep/big", WriteBytes(sv->dir.path() / "big", big));
  PutOk(s, token, "keep/small", WriteBytes(sv->dir.path() / "small", "v1"));
  PutOk(s, token, "keep/small", WriteBytes(sv->dir.path() / "small", "v2"));
  PutOk(s, token, "keep/gone", WriteBytes(sv->dir.path() / "gone", "x"));
  REQUIRE(Curl(With(Bearer(token), {"-X", "DELETE"}), s.url("/v1/objects/keep/gone")).status ==
          204);

  s.Kill9();
  std::string err = s.Start();
  INFO(err);
  REQUIRE(err.empty());

  CHECK(Curl(Bearer(token), s.url("/v1/objects/keep/big")).body == big);
  CHECK(Curl(Bearer(token), s.url("/v1/objects/keep/small")).body == "v2");
  CHECK(Curl(Bearer(token), s.url("/v1/objects/keep/gone")).status == 404);
  CHECK(Names(ParseJson(Curl(Bearer(token), s.url("/v1/objects/keep")))) ==
        std::vector<std::string>{"big", "small"});
}

TEST_CASE("zerofarm object puts, gets, lists and removes objects", "[api][objects][slow]") {
  auto sv = StartServe("objects-cli");
  ServeProcess& s = sv->s;
  const std::string url = "http://127.0.0.1:" + std::to_string(s.port());
  auto cli = [&](std::vector<std::string> args) {
    std::vector<std::string> argv = {ZF_ZEROFARM_BIN, "object"};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.insert(argv.end(), {"--url", url, "--token", s.token()});
    return RunCommand(argv, 120s);
  };
  const std::string bytes = TestBytes((6 << 20) + 11, 5);
  const fs::path in = WriteBytes(sv->dir.path() / "in.bin", bytes);
  const fs::path out = sv->dir.path() / "out.bin";

  auto put = cli({"put", "cli/dir/\xc3\xa9t\xc3\xa9 1.bin", in.string()});
  INFO(put.out << put.err);
  REQUIRE(put.exit_code == 0);
  CHECK(put.out.find(std::to_string(bytes.size()) + " bytes") != std::string::npos);

  auto get = cli({"get", "cli/dir/\xc3\xa9t\xc3\xa9 1.bin", "-o", out.string()});
  INFO(get.err);
  REQUIRE(get.exit_code == 0);
  CHECK(ReadFile(out) == bytes);
  // The API sees the same object.
  CHECK(Curl(Bearer(s.token()), s.url("/v1/objects/cli/dir/%C3%A9t%C3%A9%201.bin")).body == bytes);

  auto ls = cli({"ls", "cli", "--prefix", "dir/"});
  REQUIRE(ls.exit_code == 0);
  CHECK(ls.out.find("dir/\xc3\xa9t\xc3\xa9 1.bin") != std::string::npos);
  CHECK(ls.out.find(std::to_string(bytes.size())) != std::string::npos);

  REQUIRE(cli({"rm", "cli/dir/\xc3\xa9t\xc3\xa9 1.bin"}).exit_code == 0);
  auto missing = cli({"get", "cli/dir/\xc3\xa9t\xc3\xa9 1.bin", "-o", out.string()});
  CHECK(missing.exit_code == 1);
  CHECK(missing.err.find("not_found") != std::string::npos);
  CHECK(cli({"ls", "cli"}).out.empty());
  CHECK(cli({"put", "no-slash", in.string()}).exit_code == 2);
}
