// The CLI as users meet it: on a real (pseudo-)terminal and without one. `transcode` draws a
// progress line on a terminal and prints one summary line either way; `serve` prints its token
// with a sign-in link and stops cleanly on Ctrl-C; a port in use fails before anything exists.
#include <netinet/in.h>
#include <sys/socket.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <regex>
#include <string>
#include <vector>

#include "clip_factory.h"
#include "corpus.h"
#include "run_command.h"
#include "zerofarm/base/unique_fd.h"

namespace zerofarm::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// Guards against a hung process only; no test asserts how long anything takes.
constexpr std::chrono::seconds kTimeout{900};

std::vector<std::string> TranscodeArgs(const fs::path& clip, const ScratchDir& scratch) {
  return {ZF_ZEROFARM_BIN,
          "transcode",
          clip.string(),
          "-o",
          (scratch.path() / "out").string(),
          "--data",
          (scratch.path() / "data").string(),
          "--chunk-seconds",
          "2",
          "--ladder",
          "360p,240p"};
}

// Lines as a terminal shows them: split on newlines and carriage returns.
std::vector<std::string> TerminalLines(const std::string& out) {
  std::vector<std::string> lines;
  std::string line;
  for (char c : out) {
    if (c == '\n' || c == '\r') {
      if (!line.empty()) lines.push_back(line);
      line.clear();
    } else {
      line += c;
    }
  }
  if (!line.empty()) lines.push_back(line);
  return lines;
}

// A TCP listener on a free loopback port (the port a second server will find in use).
struct Listener {
  UniqueFd fd;
  int port = 0;
};

Listener ListenOnLoopback() {
  Listener l;
  l.fd = UniqueFd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (!l.fd.valid() || ::bind(l.fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::listen(l.fd.get(), 1) != 0)
    return l;
  socklen_t len = sizeof(addr);
  ::getsockname(l.fd.get(), reinterpret_cast<sockaddr*>(&addr), &len);
  l.port = ntohs(addr.sin_port);
  return l;
}

}  // namespace

TEST_CASE("transcode on a terminal draws a progress line that counts segments and finishes",
          "[integration][cli][terminal][slow]") {
  // A clip with audio: the audio track once pushed the bar past its width and aborted the run.
  auto clip = MakeClip(Clip::kAacAudio);
  REQUIRE(clip.ok());
  auto scratch = ScratchDir::Create("cli-terminal");
  REQUIRE(scratch.ok());
  CommandResult run = RunOnTerminal(TranscodeArgs(*clip, *scratch), kTimeout);
  INFO("terminal showed:\n" << run.out);
  REQUIRE(run.succeeded());
  CHECK(run.out.find("terminate called") == std::string::npos);
  CHECK(fs::exists(scratch->path() / "out" / "master.m3u8"));

  // Every drawn progress line counts segments done of known, never past 100%.
  static const std::regex kProgress(R"(\[([#.]+)\]\s+(\d+)%\s+(\d+)/(\d+)\+? segments)");
  int drawn = 0;
  for (const auto& line : TerminalLines(run.out)) {
    std::smatch m;
    if (!std::regex_search(line, m, kProgress)) continue;
    ++drawn;
    INFO(line);
    CHECK(std::stoi(m[2]) <= 100);
    CHECK(std::stoi(m[3]) <= std::stoi(m[4]));
    CHECK(m[1].length() == 24);
  }
  CHECK(drawn >= 1);
  // And one summary line: what went where, how fast, how big.
  static const std::regex kSummary(
      R"(zerofarm: .* -> .*: [0-9.]+ s of video in [0-9.]+ s, [0-9.]+x realtime, [0-9.]+ MB)");
  CHECK(std::regex_search(run.out, kSummary));
}

TEST_CASE("transcode without a terminal prints one summary line and no progress drawing",
          "[integration][cli][slow]") {
  auto clip = MakeClip(Clip::kAacAudio);
  REQUIRE(clip.ok());
  auto scratch = ScratchDir::Create("cli-pipe");
  REQUIRE(scratch.ok());
  CommandResult run = RunCommand(TranscodeArgs(*clip, *scratch), kTimeout);
  INFO("stderr:\n" << run.err);
  REQUIRE(run.succeeded());
  CHECK(run.err.find('\r') == std::string::npos);
  CHECK(run.err.find("\033[") == std::string::npos);
  const auto lines = TerminalLines(run.err);
  REQUIRE(lines.size() == 1);
  CHECK(lines[0].find("x realtime") != std::string::npos);
  // Output folders are readable by other users (a web server serving them, say).
  const auto perms = fs::status(scratch->path() / "out").permissions();
  CHECK((perms & fs::perms::others_read) != fs::perms::none);
  CHECK((perms & fs::perms::others_exec) != fs::perms::none);
}

TEST_CASE("serve on a terminal prints its token with a sign-in link and stops on Ctrl-C",
          "[integration][cli][terminal][slow]") {
  auto scratch = ScratchDir::Create("cli-serve-terminal");
  REQUIRE(scratch.ok());
  const std::vector<std::string> args = {ZF_ZEROFARM_BIN, "serve",
                                         "--listen",      "127.0.0.1:0",
                                         "--data",        (scratch->path() / "data").string()};
  auto ready = [](const std::string& out) { return out.find("listening on") != std::string::npos; };
  CommandResult first = RunOnTerminal(args, 120s, ready);
  INFO("terminal showed:\n" << first.out);
  CHECK(first.exit_code == 0);
  CHECK_FALSE(first.timed_out);
  static const std::regex kLink(R"(http://127\.0\.0\.1:\d+/#token=([0-9a-zA-Z_\-]+))");
  std::smatch link;
  REQUIRE(std::regex_search(first.out, link, kLink));
  CHECK(first.out.find("token: " + link[1].str()) != std::string::npos);

  // A restart prints no token (it was shown once) but says how to make another.
  CommandResult second = RunOnTerminal(args, 120s, ready);
  INFO("second start showed:\n" << second.out);
  CHECK(second.exit_code == 0);
  CHECK(second.out.find("#token=") == std::string::npos);
  CHECK(second.out.find("zerofarm token create --data") != std::string::npos);
}

TEST_CASE("serve on a port in use fails with a clear error before creating its data folder",
          "[integration][cli][slow]") {
  auto scratch = ScratchDir::Create("cli-serve-busy");
  REQUIRE(scratch.ok());
  Listener busy = ListenOnLoopback();
  REQUIRE(busy.port > 0);
  const fs::path data = scratch->path() / "data";
  CommandResult run =
      RunCommand({ZF_ZEROFARM_BIN, "serve", "--listen", "127.0.0.1:" + std::to_string(busy.port),
                  "--data", data.string()},
                 120s);
  INFO("stderr: " << run.err);
  CHECK(run.started);
  CHECK_FALSE(run.timed_out);
  CHECK(run.exit_code != 0);
  CHECK(run.err.find("already in use") != std::string::npos);
  CHECK_FALSE(fs::exists(data));
}

TEST_CASE("serve refuses a malformed number in any option before creating its data folder",
          "[integration][cli][clumsy][slow]") {
  auto scratch = ScratchDir::Create("cli-serve-numbers");
  REQUIRE(scratch.ok());
  const fs::path data = scratch->path() / "data";
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"--listen", "127.0.0.1:80x"},
      {"--listen", "127.0.0.1:70000"},
      {"--workers", "2x"},
      {"--workers", "-1"},
      {"--chunk-seconds", "4abc"},
      {"--chunk-seconds", "nan"},
      {"--max-connections", "0"},
      {"--max-connections", "1e3"},
      {"--max-open-uploads", " 5"},
      {"--max-open-uploads-total", "99999999999"},
      {"--max-upload-files", "0x10"},
  };
  for (const auto& [flag, value] : bad) {
    INFO("zerofarm serve " << flag << " '" << value << "'");
    CommandResult run =
        RunCommand({ZF_ZEROFARM_BIN, "serve", "--data", data.string(), flag, value}, 120s);
    INFO("stderr: " << run.err);
    CHECK_FALSE(run.timed_out);
    CHECK(run.exit_code == 2);
    CHECK(run.err.find(flag) != std::string::npos);
  }
  CHECK_FALSE(fs::exists(data));
}

}  // namespace zerofarm::test
