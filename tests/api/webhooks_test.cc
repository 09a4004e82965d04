// Webhooks received by a real HTTP server on loopback: signed, retried after a 500, logged.
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "corpus.h"
#include "serve_process.h"
#include "wait_for.h"
#include "zerofarm/base/unique_fd.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace zerofarm;
using namespace zerofarm::test;
using namespace std::chrono_literals;

namespace {

struct Received {
  std::string head;  // request line and headers
  std::string body;
  int64_t at_ms = 0;
  std::string header(const std::string& name) const {  // case-insensitive, first one
    std::string lower_head = head, lower_name = name + ":";
    for (char& c : lower_head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    for (char& c : lower_name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    size_t at = lower_head.find("\r\n" + lower_name);
    if (at == std::string::npos) return "";
    at += 2 + lower_name.size();
    size_t end = head.find("\r\n", at);
    std::string v = head.substr(at, end - at);
    while (!v.empty() && v.front() == ' ') v.erase(v.begin());
    return v;
  }
};

// A one-thread HTTP/1.1 server on a free loopback port: records each request and answers the
// first `fail_first` of them 500, the rest 200.
class Receiver {
 public:
  explicit Receiver(int fail_first) : fail_first_(fail_first) {
    fd_ = UniqueFd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
    REQUIRE(::listen(fd_.get(), 16) == 0);
    socklen_t len = sizeof(addr);
    ::getsockname(fd_.get(), reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~Receiver() {
    stop_ = true;
    thread_.join();
  }
  int port() const { return port_; }
  std::vector<Received> requests() {
    std::lock_guard lock(mu_);
    return requests_;
  }

 private:
  void Serve() {
    while (!stop_) {
      pollfd p{fd_.get(), POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      UniqueFd c(::accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (!c.valid()) continue;
      std::string data;
      char buf[4096];
      size_t need = std::string::npos;
      while (need == std::string::npos || data.size() < need) {
        pollfd q{c.get(), POLLIN, 0};
        if (::poll(&q, 1, 5000) <= 0) break;
        ssize_t n = ::read(c.get(), buf, sizeof(buf));
        if (n <= 0) break;
        data.append(buf, static_cast<size_t>(n));
        size_t end = data.find("\r\n\r\n");
        if (end != std::string::npos && need == std::string::npos) {
          Received probe{data.substr(0, end), "", 0};
          need = end + 4 + std::stoul("0" + probe.header("Content-Length"));
        }
      }
      const size_t end = data.find("\r\n\r\n");
      if (end == std::string::npos) continue;
      Received r{data.substr(0, end), data.substr(end + 4),
                 std::chrono::duration_cast<std::chrono::milliseconds>(
                     std::chrono::steady_clock::now().time_since_epoch())
                     .count()};
      bool fail;
      {
        std::lock_guard lock(mu_);
        requests_.push_back(r);
        fail = static_cast<int>(requests_.size()) <= fail_first_;
      }
      const std::string answer = fail ? "HTTP/1.1 500 Internal Server Error\r\nContent-Length: "
                                        "4\r\nConnection: close\r\n\r\noops"
                                      : "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: "
                                        "close\r\n\r\nok";
      (void)!::write(c.get(), answer.data(), answer.size());
    }
  }

  int fail_first_;
  UniqueFd fd_;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<Received> requests_;
  std::thread thread_;
};

// The signature as a receiver checks it, computed here independently of the server.
std::string Hmac(const std::string& secret, const std::string& text) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(text.data()), text.size(), mac, &len);
  static const char* d = "0123456789abcdef";
  std::string hex;
  for (unsigned i = 0; i < len; ++i) {
    hex += d[mac[i] >> 4];
    hex += d[mac[i] & 15];
  }
  return hex;
}

json Post(const ServeProcess& s, const std::string& path, const json& body) {
  auto args = Bearer(s.token());
  args.insert(args.end(), {"-H", "Content-Type: application/json", "--data-binary", body.dump()});
  auto r = Curl(args, s.url(path));
  INFO(r.status << " " << r.body << r.error);
  REQUIRE(r.status == 201);
  return json::parse(r.body);
}

// Polls until `pred` holds for the receiver's requests, or 120 s pass.
bool WaitFor(Receiver& rx, const std::function<bool(const std::vector<Received>&)>& pred) {
  return test::WaitFor([&] { return pred(rx.requests()); }, 120s).has_value();
}

}  // namespace

TEST_CASE("webhooks arrive signed, are retried after a failure and are logged",
          "[integration][api][webhooks][slow]") {
  auto dir = ScratchDir::Create("api-webhooks");
  REQUIRE(dir.ok());
  ServeProcess s(dir->path() / "data", {"--chunk-seconds", "1"});
  std::string err = s.Start();
  INFO(err);
  REQUIRE(err.empty());
  Receiver rx(/*fail_first=*/1);

  json hook = Post(s, "/v1/webhooks",
                   {{"url", "http://127.0.0.1:" + std::to_string(rx.port()) + "/hooks/zf"}});
  const std::string secret = hook["secret"];
  const std::string hook_id = hook["id"];
  CHECK(secret.rfind("whsec_", 0) == 0);
  // The secret is shown once: never in the list.
  auto listed = Curl(Bearer(s.token()), s.url("/v1/webhooks"));
  REQUIRE(listed.status == 200);
  CHECK(listed.body.find(secret) == std::string::npos);
  CHECK(listed.body.find(hook_id) != std::string::npos);

  // A video becomes ready: the receiver first answers 500, then gets the same event again.
  const fs::path clip = MakeShortClip(2);
  auto args = Bearer(s.token());
  args.insert(args.end(), {"--data-binary", "@" + clip.string()});
  auto up = Curl(args, s.url("/v1/videos?ladder=360p&filename=hook.mp4"));
  REQUIRE(up.status == 201);
  const std::string video_id = json::parse(up.body)["id"];
  REQUIRE(WaitFor(rx, [](const std::vector<Received>& r) { return r.size() >= 2; }));
  auto got = rx.requests();
  CHECK(got[0].body == got[1].body);  // a retry sends the same event
  CHECK(got[1].at_ms - got[0].at_ms >= 500);
  for (const auto& r : got) {
    INFO(r.head);
    CHECK(r.head.rfind("POST /hooks/zf HTTP/1.1", 0) == 0);
    CHECK(r.header("Content-Type") == "application/json");
    CHECK(r.header("Zerofarm-Event") == "video.ready");
    // Zerofarm-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>
    const std::string sig = r.header("Zerofarm-Signature");
    const size_t comma = sig.find(",v1=");
    REQUIRE(sig.rfind("t=", 0) == 0);
    REQUIRE(comma != std::string::npos);
    const std::string t = sig.substr(2, comma - 2);
    CHECK(sig.substr(comma + 4) == Hmac(secret, t + "." + r.body));
    CHECK(std::abs(std::stoll(t) - std::chrono::duration_cast<std::chrono::seconds>(
                                       std::chrono::system_clock::now().time_since_epoch())
                                       .count()) < 600);
  }
  json event = json::parse(got[1].body);
  CHECK(event["type"] == "video.ready");
  CHECK(event["id"].get<std::string>().rfind("evt_", 0) == 0);
  CHECK(event["data"]["video"]["id"] == video_id);
  CHECK(event["data"]["video"]["status"] == "ready");

  // The delivery log says what happened.
  auto log = Curl(Bearer(s.token()), s.url("/v1/webhooks/" + hook_id + "/deliveries"));
  REQUIRE(log.status == 200);
  json deliveries = json::parse(log.body)["deliveries"];
  REQUIRE(deliveries.size() == 1);
  CHECK(deliveries[0]["event"] == "video.ready");
  CHECK(deliveries[0]["status"] == "delivered");
  CHECK(deliveries[0]["attempts"] == 2);
  CHECK(deliveries[0]["last_status_code"] == 200);

  // Deleting the video tells the endpoint too.
  auto del = Curl({"-X", "DELETE", "-H", "Authorization: Bearer " + s.token()},
                  s.url("/v1/videos/" + video_id));
  CHECK(del.status / 100 == 2);
  REQUIRE(WaitFor(rx, [](const std::vector<Received>& r) {
    return r.size() >= 3 && r.back().header("Zerofarm-Event") == "video.deleted";
  }));

  // Another tenant sees none of it; bad endpoints are refused with the reason.
  auto other = Curl(Bearer("zf_not_a_token"), s.url("/v1/webhooks"));
  CHECK(other.status == 401);
  auto bad_args = Bearer(s.token());
  bad_args.insert(bad_args.end(), {"--data-binary", R"({"url": "ftp://example/x"})"});
  auto bad = Curl(bad_args, s.url("/v1/webhooks"));
  CHECK(bad.status == 400);
  auto deep_args = Bearer(s.token());
  deep_args.insert(deep_args.end(), {"--data-binary", "{\"url\": " + std::string(5000, '[') + "}"});
  CHECK(Curl(deep_args, s.url("/v1/webhooks")).status == 400);

  // Removing the endpoint removes its log.
  auto gone = Curl({"-X", "DELETE", "-H", "Authorization: Bearer " + s.token()},
                   s.url("/v1/webhooks/" + hook_id));
  CHECK(gone.status == 204);
  CHECK(Curl(Bearer(s.token()), s.url("/v1/webhooks/" + hook_id + "/deliveries")).status == 404);
}
