// Test helpers for the API tests (serve_process.h).
#include "serve_process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cctype>
#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "clip_factory.h"
#include "corpus.h"
#include "run_command.h"

namespace zerofarm::test {

namespace fs = std::filesystem;

std::string ServeProcess::Start() {
  std::error_code ec;
  fs::create_directories(data_.parent_path(), ec);
  std::vector<std::string> argv = {ZF_ZEROFARM_BIN};
  argv.insert(argv.end(), command_.begin(), command_.end());
  argv.insert(argv.end(), {"--data", data_.string(), "--listen", "127.0.0.1:0"});
  if (const char* u = std::getenv("ZEROFARM_TEST_UNSANDBOXED"); u && *u && command_[0] == "serve")
    argv.push_back("--unsandboxed");
  argv.insert(argv.end(), args_.begin(), args_.end());
  return process_.Start(
      argv,
      [this](const std::string& text) {
        if (size_t t = text.find("token: "); t != std::string::npos && token_.empty())
          token_ = text.substr(t + 7, text.find('\n', t) - t - 7);
        const size_t l = text.find("listening on http://127.0.0.1:");
        if (l == std::string::npos) return false;
        port_ = std::stoi(text.substr(l + 30));
        return true;
      },
      std::chrono::seconds(120));
}

std::vector<std::string> Bearer(const std::string& token) {
  return {"-H", "Authorization: Bearer " + token};
}

HttpResult Curl(const std::vector<std::string>& args, const std::string& url,
                std::chrono::seconds timeout) {
  std::vector<std::string> argv = {"curl",         "-sS",        "-i",
                                   "--path-as-is", "--max-time", std::to_string(timeout.count())};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.push_back(url);
  auto r = RunCommand(argv, timeout + std::chrono::seconds(10));
  HttpResult out;
  if (!r.succeeded()) {
    out.error = r.DescribeEnd() + ": " + r.err;
    if (r.out.empty()) return out;
  }
  std::string_view rest = r.out;
  // Skip interim (1xx) responses; parse the last head.
  while (true) {
    size_t end = rest.find("\r\n\r\n");
    if (end == std::string_view::npos) return out;
    std::string_view head = rest.substr(0, end);
    rest.remove_prefix(end + 4);
    if (head.size() < 12 || head.substr(0, 5) != "HTTP/") return out;
    out.status = std::stoi(std::string(head.substr(head.find(' ') + 1, 3)));
    if (out.status >= 100 && out.status < 200) continue;
    out.headers.clear();
    size_t pos = head.find("\r\n");
    while (pos != std::string_view::npos && pos < head.size()) {
      size_t next = head.find("\r\n", pos + 2);
      std::string_view line = head.substr(
          pos + 2, next == std::string_view::npos ? std::string_view::npos : next - pos - 2);
      size_t colon = line.find(':');
      if (colon != std::string_view::npos) {
        std::string name(line.substr(0, colon));
        for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        std::string_view value = line.substr(colon + 1);
        while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
        out.headers[name] = std::string(value);
      }
      pos = next;
    }
    out.body = std::string(rest);
    return out;
  }
}

int RawResult::status() const {
  if (response.size() < 12 || response.compare(0, 5, "HTTP/") != 0) return 0;
  return std::atoi(response.c_str() + response.find(' ') + 1);
}

namespace {

// Sends all of `data`; false when the connection is gone.
bool SendChunkBytes(int fd, std::string_view data) {
  size_t sent = 0;
  while (sent < data.size()) {
    ssize_t n = ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return false;
    sent += static_cast<size_t>(n);
  }
  return true;
}

// A TCP connection to 127.0.0.1:port, or -1.
int ConnectLoopback(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

RawResult RawRequest(int port, const std::string& bytes, std::chrono::milliseconds wait,
                     bool close_after_send) {
  RawResult out;
  const int fd = ConnectLoopback(port);
  if (fd < 0) return out;
  out.connected = true;
  size_t sent = 0;
  while (sent < bytes.size()) {
    ssize_t n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;
    sent += static_cast<size_t>(n);
  }
  out.sent = sent;
  if (close_after_send) {
    ::close(fd);
    return out;
  }
  const auto deadline = std::chrono::steady_clock::now() + wait;
  char buf[65536];
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) {
      out.closed_by_server = true;
      break;
    }
    out.response.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

HeldConnection::HeldConnection(int port, const std::string& bytes) : fd_(ConnectLoopback(port)) {
  if (fd_ >= 0) (void)::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
}

HeldConnection::~HeldConnection() {
  if (fd_ >= 0) ::close(fd_);
}

HeldConnection::HeldConnection(HeldConnection&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }

UploadStream::UploadStream(int port, const std::string& head) : fd_(ConnectLoopback(port)) {
  if (fd_ >= 0 && !SendChunkBytes(fd_, head)) {
    ::close(fd_);
    fd_ = -1;
  }
}

UploadStream::~UploadStream() {
  if (fd_ >= 0) ::close(fd_);
}

bool UploadStream::SendChunk(std::string_view data) {
  if (fd_ < 0) return false;
  char size[32];
  std::snprintf(size, sizeof(size), "%zx\r\n", data.size());
  return SendChunkBytes(fd_, size) && SendChunkBytes(fd_, data) && SendChunkBytes(fd_, "\r\n");
}

std::string UploadStream::Response() {
  std::string out;
  if (fd_ < 0) return out;
  char buf[65536];
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 1000) < 0) break;
    if (!(p.revents & (POLLIN | POLLHUP))) {
      if (out.find("\r\n\r\n") != std::string::npos) break;  // a whole head, no more coming
      continue;
    }
    ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

RawResult RawTrickle(int port, const std::string& head, std::chrono::milliseconds interval,
                     std::chrono::milliseconds total) {
  RawResult out;
  const int fd = ConnectLoopback(port);
  if (fd < 0) return out;
  out.connected = true;
  ::send(fd, head.data(), head.size(), MSG_NOSIGNAL);
  const auto end = std::chrono::steady_clock::now() + total;
  char buf[4096];
  while (std::chrono::steady_clock::now() < end) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(interval.count())) > 0) {
      ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
      if (n <= 0) {
        out.closed_by_server = true;
        break;
      }
      out.response.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (::send(fd, "x", 1, MSG_NOSIGNAL) != 1) break;
  }
  ::close(fd);
  return out;
}

fs::path MakeShortClip(int seconds, int gop) {
  const std::string d = std::to_string(seconds);
  auto clip = MakeCachedClip("api-" + d + "s-gop" + std::to_string(gop) + ".mp4",
                             {"-f",        "lavfi",
                              "-i",        "testsrc2=size=320x180:rate=25:duration=" + d,
                              "-f",        "lavfi",
                              "-i",        "sine=frequency=440:duration=" + d,
                              "-c:v",      "libx264",
                              "-preset",   "ultrafast",
                              "-g",        std::to_string(gop),
                              "-pix_fmt",  "yuv420p",
                              "-c:a",      "aac",
                              "-movflags", "+faststart"});
  return clip.ok() ? *clip : fs::path();
}

int64_t CountFrames(const fs::path& media) {
  auto r = RunCommand({"ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
                       "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", media.string()},
                      std::chrono::seconds(120));
  if (!r.succeeded()) return -1;
  try {
    return std::stoll(r.out);
  } catch (const std::exception&) {
    return -1;
  }
}

std::string WaitForStatus(const ServeProcess& s, const std::string& token, const std::string& id,
                          const std::vector<std::string>& until, std::chrono::seconds deadline) {
  const auto end = std::chrono::steady_clock::now() + deadline;
  std::string last;
  while (std::chrono::steady_clock::now() < end) {
    auto r = Curl(Bearer(token), s.url("/v1/videos/" + id));
    last = r.body;
    if (r.status == 200) {
      auto j = nlohmann::json::parse(r.body, nullptr, false);
      if (!j.is_discarded() &&
          std::find(until.begin(), until.end(), j.value("status", "")) != until.end())
        return r.body;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  return last;
}

size_t EstablishedConnections(int port) {
  std::ifstream tcp("/proc/net/tcp");
  std::string line;
  std::getline(tcp, line);  // the header
  size_t n = 0;
  char want[8];
  std::snprintf(want, sizeof(want), ":%04X", port);
  while (std::getline(tcp, line)) {
    std::istringstream fields(line);
    std::string slot, local, remote, state;
    fields >> slot >> local >> remote >> state;
    // The server's end: local address 127.0.0.1 (0100007F) on the port, state 01 ESTABLISHED.
    if (state == "01" && local == std::string("0100007F") + want) ++n;
  }
  return n;
}

ServeProcess& SharedServer(const std::string& name, const std::vector<std::string>& flags) {
  struct Shared {
    ScratchDir dir;
    std::unique_ptr<ServeProcess> server;
  };
  static std::map<std::string, Shared> servers;
  auto it = servers.find(name);
  if (it == servers.end()) {
    auto dir = ScratchDir::Create(name);
    REQUIRE(dir.ok());
    auto server = std::make_unique<ServeProcess>(dir->path() / "data", flags);
    it = servers.emplace(name, Shared{std::move(*dir), std::move(server)}).first;
  }
  ServeProcess& server = *it->second.server;
  if (!server.running()) {
    std::string err = server.Start();
    INFO(err);
    REQUIRE(err.empty());
  }
  return server;
}

nlohmann::json ParseJson(const HttpResult& r) {
  INFO("status " << r.status << " body: " << r.body << " " << r.error);
  auto j = nlohmann::json::parse(r.body, nullptr, false);
  REQUIRE(!j.is_discarded());
  return j;
}

std::vector<std::string> With(std::vector<std::string> args, const std::vector<std::string>& more) {
  args.insert(args.end(), more.begin(), more.end());
  return args;
}

fs::path WriteBytes(const fs::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

std::string NewToken(const fs::path& data, const std::string& tenant) {
  auto r =
      RunCommand({ZF_ZEROFARM_BIN, "token", "create", "--data", data.string(), "--tenant", tenant},
                 std::chrono::seconds(30));
  INFO(r.err);
  REQUIRE(r.succeeded());
  std::string token = r.out.substr(0, r.out.find('\n'));
  REQUIRE(token.rfind("zf_", 0) == 0);
  return token;
}

nlohmann::json WaitReady(const ServeProcess& s, const std::string& token, const std::string& id) {
  std::string body = WaitForStatus(s, token, id, {"ready", "failed"}, std::chrono::seconds(240));
  auto j = nlohmann::json::parse(body, nullptr, false);
  INFO(body << "\nserver log: " << s.log());
  REQUIRE(!j.is_discarded());
  REQUIRE(j["status"] == "ready");
  return j;
}

}  // namespace zerofarm::test
