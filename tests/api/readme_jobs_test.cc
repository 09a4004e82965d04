// The README's job examples (examples/jobs/*.json, shown verbatim in README.md) run through
// `zerofarm job run` against a real `zerofarm serve`, with the static GNU grep and sqlite3
// this build makes and Debian's busybox, and give what the same tools give over the whole data.
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "run_command.h"
#include "scratch_dir.h"
#include "serve_process.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace zerofarm;
using namespace zerofarm::test;
using namespace std::chrono_literals;

namespace {

const fs::path kExamples = fs::path(ZF_SOURCE_DIR) / "examples" / "jobs";

uint64_t Next(uint64_t& x) {
  x ^= x << 13, x ^= x >> 7, x ^= x << 17;
  return x;
}

std::vector<std::string> SortedLines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  std::sort(lines.begin(), lines.end());
  return lines;
}

}  // namespace

TEST_CASE(
    "the README's grep, word count and SQL jobs give what the same tools give over all the data",
    "[api][jobs][readme][slow]") {
  const char* programs_env = std::getenv("ZEROFARM_PROGRAMS_DIR");
  const fs::path programs = programs_env ? programs_env : "";
  if (programs.empty() || !fs::exists(programs / "grep") || !fs::exists(programs / "sqlite3") ||
      !fs::exists("/bin/busybox")) {
    WARN(
        "the static grep and sqlite3 (ZEROFARM_STATIC_TOOLS) or busybox-static are missing; "
        "skipping");
    return;
  }
  // The README shows each example file as it is.
  const std::string readme = ReadFile(fs::path(ZF_SOURCE_DIR) / "README.md");
  for (const char* name : {"grep.json", "wordcount.json", "sql.json"}) {
    INFO(name << " is not shown verbatim in README.md");
    CHECK(readme.find(ReadFile(kExamples / name)) != std::string::npos);
  }

  auto dir = ScratchDir::Create("readme-jobs");
  REQUIRE(dir.ok());
  const fs::path data = dir->path() / "data";
  ServeProcess s(data, {});
  REQUIRE(s.Start().empty());
  const std::vector<std::string> api{"--url", s.url(""), "--token", s.token()};
  auto zf = [&](std::vector<std::string> args) {
    args.insert(args.begin(), ZF_ZEROFARM_BIN);
    args.insert(args.end(), api.begin(), api.end());
    auto r = RunCommand(args, 300s);
    INFO(FormatCommand(args) << "\n" << r.err);
    REQUIRE(r.exit_code == 0);
    return r.out;
  };
  CHECK(zf({"object", "put", "bin/grep", (programs / "grep").string()}).find("bin/grep") == 0);
  zf({"object", "put", "bin/sqlite3", (programs / "sqlite3").string()});
  zf({"object", "put", "bin/busybox", "/bin/busybox"});

  // Logs: 3 objects, 2.5 MiB each, so the 1 MiB split cuts lines.
  std::string all_logs;
  uint64_t x = 7;
  for (int f = 1; f <= 3; ++f) {
    std::string text;
    while (text.size() < (5u << 19)) {
      const uint64_t r = Next(x);
      text += "2026-12-07 " + std::string(r % 7 == 0 ? "ERROR" : "INFO") +
              " service=" + std::to_string(r % 13) + " " + std::string(r % 300, 'x') + "\n";
    }
    all_logs += text;
    zf({"object", "put", "logs/app-" + std::to_string(f) + ".log",
        WriteBytes(dir->path() / "log", text).string()});
  }
  const fs::path logs_file = WriteBytes(dir->path() / "all.log", all_logs);
  auto grep = RunCommand({"sh", "-c", "grep -c ERROR < " + logs_file.string()}, 60s);
  REQUIRE(grep.exit_code == 0);
  CHECK(zf({"job", "run", (kExamples / "grep.json").string()}) == grep.out);

  // Books: two texts; the classic pipeline over both.
  const char* words[] = {"farm", "render", "video", "node", "chunk", "the", "a", "sandbox", "of"};
  std::string books;
  for (int b = 1; b <= 2; ++b) {
    std::string text;
    for (int i = 0; i < 30000; ++i) {
      const uint64_t r = Next(x);
      text += words[r % 9];
      text += r % 11 == 0 ? "\n" : " ";
    }
    text += "\n";
    books += text;
    zf({"object", "put", "books/book-" + std::to_string(b) + ".txt",
        WriteBytes(dir->path() / "book", text).string()});
  }
  const fs::path books_file = WriteBytes(dir->path() / "books.txt", books);
  auto uniq = RunCommand(
      {"sh", "-c", "tr -s ' ' '\\n' < " + books_file.string() + " | sort | uniq -c"}, 60s);
  REQUIRE(uniq.exit_code == 0);
  CHECK(SortedLines(zf({"job", "run", (kExamples / "wordcount.json").string()})) ==
        SortedLines(uniq.out));
  CHECK(zf({"object", "ls", "results", "--prefix", "wordcount/"}).find("wordcount/reduce") !=
        std::string::npos);

  // Requests: CSV without a header, split over two objects.
  std::string csv_all;
  for (int f = 1; f <= 2; ++f) {
    std::string csv;
    for (int i = 0; i < 20000; ++i) {
      const uint64_t r = Next(x);
      static const char* kServices[] = {"api", "web", "media", "auth"};
      static const int kStatus[] = {200, 200, 200, 304, 404, 500, 503};
      csv += std::string(kServices[r % 4]) + "," + std::to_string(kStatus[(r >> 8) % 7]) + "," +
             std::to_string((r >> 20) % 100000) + "\n";
    }
    csv_all += csv;
    zf({"object", "put", "requests/day-" + std::to_string(f) + ".csv",
        WriteBytes(dir->path() / "csv", csv).string()});
  }
  const fs::path csv_file = WriteBytes(dir->path() / "all.csv", csv_all);
  auto sql = RunCommand(
      {(programs / "sqlite3").string(), "-batch", "-bail", "-csv", "-cmd",
       "CREATE TABLE r(service TEXT, status INTEGER, bytes INTEGER);", "-cmd",
       ".import --csv " + csv_file.string() + " r", ":memory:",
       "SELECT service, COUNT(*), SUM(status >= 500), SUM(bytes) FROM r GROUP BY service "
       "ORDER BY service;"},
      60s);
  INFO(sql.err);
  REQUIRE(sql.exit_code == 0);
  CHECK(sql.out.size() > 20);
  CHECK(zf({"job", "run", (kExamples / "sql.json").string()}) == sql.out);
}
