// Server: the HTTP API of zerofarm on Boost.Beast (routes in ARCHITECTURE.md and
// api/openapi.yaml). Asynchronous: `io_threads` run the sockets, one strand per connection;
// everything that touches the disk or the store runs on a separate handler pool, so no I/O
// thread blocks. Upload bodies stream into the VideoService piece by piece (bounded memory).
// Every input has an explicit limit below; exceeding one is answered with its 4xx/503.
// Lifetime: the service and the token store must outlive the Server. Destroying the Server
// stops it (open connections are closed). Thread safety: port() may be called from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "zerofarm/api/tokens.h"
#include "zerofarm/base/status.h"
#include "zerofarm/scheduler/video_service.h"

namespace zerofarm::api {

struct ServerOptions {
  std::string address = "127.0.0.1";                // loopback unless told otherwise
  uint16_t port = 8080;                             // 0 = any free port (see port())
  std::filesystem::path web_dir;                    // the web UI's static files; may be missing
  uint64_t max_upload_bytes = uint64_t{64} << 30;   // request body of an upload -> 413
  uint32_t max_header_bytes = 16 * 1024;            // request line + headers -> 431
  uint64_t max_small_body_bytes = 64 * 1024;        // body of any non-upload request -> 413
  std::chrono::milliseconds header_timeout{10000};  // whole request head must arrive -> 408
  std::chrono::milliseconds idle_timeout{60000};    // no byte for this long mid-body -> 408
  std::chrono::milliseconds request_timeout{6 * 3600 * 1000};  // whole body by then -> 408
  size_t max_connections = 256;                                // beyond: 503 and close
  // Jobs (/v1/jobs): each instance's memory and wall time when the job names none, and the
  // most a job may ask for (more is refused with 400 bad_job).
  uint64_t job_memory_bytes = uint64_t{256} << 20;
  uint64_t job_max_memory_bytes = uint64_t{4} << 30;
  std::chrono::milliseconds job_timeout{60000};
  std::chrono::milliseconds job_max_timeout{6 * 3600 * 1000};
  int io_threads = 0;  // threads running the sockets; 0: one per CPU, at most 4
  int handler_threads = 4;
};

class Server {
 public:
  // Binds and starts serving. Errors: "io_error" (cannot bind/listen).
  static Result<std::unique_ptr<Server>> Start(const ServerOptions& options,
                                               scheduler::VideoService& videos, TokenStore& tokens);
  virtual ~Server() = default;
  virtual uint16_t port() const = 0;

  // Every (method, path template) the server answers, e.g. ("GET", "/v1/videos/{id}"); the
  // routes api/openapi.yaml must document (static web files aside).
  static const std::vector<std::pair<std::string, std::string>>& Routes();
};

}  // namespace zerofarm::api
