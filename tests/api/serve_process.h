// Test helpers for the API tests: a real `zerofarm serve` process on a free loopback port with
// a temporary data dir, curl as the HTTP client, raw sockets for what curl will not send, and
// short synthetic clips. Thread-compatible; one test uses one ServeProcess at a time.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "daemon_process.h"

namespace zerofarm::test {

// A running `zerofarm serve --data DIR --listen 127.0.0.1:0 ARGS...` (or `zerofarm proxy ...`);
// killed on destruction.
class ServeProcess {
 public:
  // `command` is the subcommand and its fixed arguments: {"serve"}, or {"proxy", "--ring", R}.
  ServeProcess(std::filesystem::path data, std::vector<std::string> args,
               std::vector<std::string> command = {"serve"})
      : data_(std::move(data)),
        args_(std::move(args)),
        command_(std::move(command)),
        process_(data_.string() + ".log") {}

  // Starts it and waits for "listening on"; the first start also yields the default token.
  // Returns an error text, empty on success.
  std::string Start();
  void Kill9() { process_.Kill9(); }
  // SIGTERM and wait; returns the exit status.
  int Stop() { return process_.Stop(); }
  bool running() const { return process_.running(); }
  pid_t pid() const { return process_.pid(); }

  int port() const { return port_; }
  const std::string& token() const { return token_; }  // the default tenant's
  const std::filesystem::path& data() const { return data_; }
  std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  std::string log() const { return process_.log(); }  // what it printed (stdout and stderr)

 private:
  std::filesystem::path data_;
  std::vector<std::string> args_;
  std::vector<std::string> command_;
  DaemonProcess process_;
  int port_ = 0;
  std::string token_;
};

struct HttpResult {
  int status = 0;                              // 0 when curl failed
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
  std::string error;  // curl's stderr when it failed
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
};

// curl -sS -i ARGS URL (with --path-as-is); the last response's status, headers and body.
HttpResult Curl(const std::vector<std::string>& args, const std::string& url,
                std::chrono::seconds timeout = std::chrono::seconds(60));
std::vector<std::string> Bearer(const std::string& token);  // {"-H", "Authorization: Bearer T"}

// Sends `bytes` on a fresh loopback connection, then reads the answer until the server closes
// or `wait` passes. With close_after_send, closes right after sending (a dropped client).
struct RawResult {
  bool connected = false;
  std::string response;  // everything read
  bool closed_by_server = false;
  size_t sent = 0;     // bytes of the request the server took before any error
  int status() const;  // of the first status line, 0 if none
};
RawResult RawRequest(int port, const std::string& bytes, std::chrono::milliseconds wait,
                     bool close_after_send = false);

// Sends `head`, then one body byte every `interval` until the server answers or closes, or
// `total` passes (a client that trickles its body).
RawResult RawTrickle(int port, const std::string& head, std::chrono::milliseconds interval,
                     std::chrono::milliseconds total);

// A loopback connection that sent `bytes` and stays open, unread, until destroyed: a client
// that holds one of the server's connection slots for as long as a test needs it.
class HeldConnection {
 public:
  HeldConnection(int port, const std::string& bytes);
  ~HeldConnection();
  HeldConnection(HeldConnection&& other) noexcept;
  HeldConnection(const HeldConnection&) = delete;
  HeldConnection& operator=(const HeldConnection&) = delete;
  HeldConnection& operator=(HeldConnection&&) = delete;
  bool connected() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

// A request whose body is sent in chunks (Transfer-Encoding: chunked) as the test goes: a
// client uploading slowly. `head` ends with the blank line.
class UploadStream {
 public:
  UploadStream(int port, const std::string& head);
  ~UploadStream();
  UploadStream(const UploadStream&) = delete;
  UploadStream& operator=(const UploadStream&) = delete;
  bool connected() const { return fd_ >= 0; }
  // Sends one chunk; an empty one ends the body. False once the connection is gone.
  bool SendChunk(std::string_view data);
  // Everything the server answered, read until it closes or 60 s pass.
  std::string Response();

 private:
  int fd_ = -1;
};

// How many TCP connections to 127.0.0.1:`port` are established (from /proc/net/tcp), counted
// from the server's side: what a test waits on instead of sleeping.
size_t EstablishedConnections(int port);

// A short synthetic clip (ffmpeg testsrc2 + sine), cached in the clip cache dir:
// seconds long at 25 fps, keyframe every `gop` frames, 320x180, AAC, MP4 with moov first.
std::filesystem::path MakeShortClip(int seconds, int gop = 25);
int64_t CountFrames(const std::filesystem::path& media);  // ffprobe -count_frames, v:0

// Polls GET /v1/videos/ID until its status is one of `until` (or the deadline); the last
// video object as JSON text.
std::string WaitForStatus(const ServeProcess& s, const std::string& token, const std::string& id,
                          const std::vector<std::string>& until, std::chrono::seconds deadline);

// The helpers below REQUIRE (Catch) what they need, so a test stops at the first failed step.

// One server per test binary and `name` (its scratch folder), started with `flags` on first
// use and again whenever a test left it stopped.
ServeProcess& SharedServer(const std::string& name, const std::vector<std::string>& flags);

// The response body as JSON.
nlohmann::json ParseJson(const HttpResult& r);

// `args` followed by `more` (curl flags after Bearer(token), a command's extra arguments).
std::vector<std::string> With(std::vector<std::string> args, const std::vector<std::string>& more);

// Writes `bytes` to the file `path` (replacing it); returns `path`.
std::filesystem::path WriteBytes(const std::filesystem::path& path, const std::string& bytes);

// A new bearer token of `tenant` (`zerofarm token create`, run beside the server's data).
std::string NewToken(const std::filesystem::path& data, const std::string& tenant);

// Waits up to 240 s for the video to end and requires it ready; the video object.
nlohmann::json WaitReady(const ServeProcess& s, const std::string& token, const std::string& id);

}  // namespace zerofarm::test
