// Server (server.h): Boost.Beast sessions on one event loop per socket thread (a connection
// stays on the loop that accepted it, as with nginx's workers); handlers on a separate pool.
#include "zerofarm/api/server.h"

#include <fcntl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <thread>
#include <vector>

#include "http_util.h"
#include "router.h"
#include "zerofarm/base/unique_fd.h"

namespace zerofarm::api {
namespace {

namespace beast = boost::beast;
namespace net = boost::asio;
using tcp = net::ip::tcp;

constexpr size_t kChunk = 128 * 1024;  // response bytes written per step
// File bytes handed to sendfile(2) for one connection before the loop serves the others.
constexpr uint64_t kSendfileTurn = 1024 * 1024;
// Request body bytes gathered on the connection's loop before one hand-off to the handler
// pool (handing over each read cost two thread switches per 64 KiB). Two such buffers per
// connection while a body is read: one filling, one being written by the pool.
constexpr size_t kBodyChunk = 1024 * 1024;
// After an answer that ends the connection mid-body (413, a refused upload), what the client still
// sends is read and dropped until it stops, for at most kDrainTime in all (as nginx's lingering
// close). Closing while bytes still arrive resets the connection, and a client busy sending (curl
// after "100 Continue") then fails on its write and never reads the answer: a 4 MiB cap let a
// 21 MiB upload over a 20 MiB limit end as "100" instead of 413 on a loaded machine. Time bounds
// what a client can hold; the byte cap only bounds the CPU spent on a very fast one.
constexpr size_t kMaxDrain = size_t{256} << 20;
constexpr std::chrono::seconds kDrainTime{5};

constexpr const char* kAllowHeaders =
    "Authorization, Content-Type, Upload-Offset, Upload-Length, Upload-Metadata, "
    "Tus-Resumable, Range, If-None-Match, If-Range";
constexpr const char* kExposeHeaders =
    "Location, Upload-Offset, Upload-Length, Tus-Resumable, Tus-Version, Tus-Extension, "
    "Tus-Max-Size, Upload-Expires, Zerofarm-Video-Id, Content-Range, ETag, Content-Length, "
    "Accept-Ranges, Retry-After";

struct Shared {
  Shared(const ServerOptions& o, scheduler::VideoService& v, TokenStore& t)
      : opt(o), router(opt, v, t, counters), pool(static_cast<size_t>(o.handler_threads)) {}
  ServerOptions opt;
  HttpCounters counters;
  Router router;
  net::thread_pool pool;
};

// A body that is not wanted (a request that should have none): read and dropped, bounded.
class DiscardSink final : public BodySink {
 public:
  DiscardSink(Response answer, uint64_t limit) : answer_(std::move(answer)), limit_(limit) {}
  uint64_t limit() const override { return limit_; }
  Status Consume(std::span<const std::byte>) override { return Status::Ok(); }
  Response Finish() override { return std::move(answer_); }
  Response Fail(const Status& why) override {
    Response r =
        ErrorResponse(why.code() == ErrorCode::kBodyLimit ? 413 : 400, why.code(), why.message());
    r.close = true;
    return r;
  }

 private:
  Response answer_;
  uint64_t limit_;
};

// Sink calls never let an exception escape into a pool thread.
template <class F>
Status Guarded(F f) {
  try {
    return f();
  } catch (const std::exception& e) {
    return Status::Error(ErrorCode::kInternal, std::string("internal error: ") + e.what());
  }
}
Response FailGuarded(BodySink& sink, const Status& why) {
  try {
    return sink.Fail(why);
  } catch (const std::exception& e) {
    return ErrorResponse(500, ErrorCode::kInternal, std::string("internal error: ") + e.what());
  }
}
Response FinishGuarded(BodySink& sink) {
  try {
    return sink.Finish();
  } catch (const std::exception& e) {
    return ErrorResponse(500, ErrorCode::kInternal, std::string("internal error: ") + e.what());
  }
}

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket&& socket, Shared& sh)
      : stream_(std::move(socket)), read_timer_(stream_.get_executor()), sh_(sh) {
    ++sh_.counters.connections;
    beast::error_code ec;
    stream_.socket().set_option(tcp::no_delay(true), ec);
    // Answers are written with non-blocking system calls from the loop (WritePieces).
    stream_.socket().native_non_blocking(true, ec);
  }
  ~Session() { --sh_.counters.connections; }

  void Start(bool reject) {
    net::dispatch(stream_.get_executor(), [self = shared_from_this(), reject] {
      if (!reject) return self->ReadHeader();
      self->sh_.counters.CountRejection("connections");
      Response r = ErrorResponse(503, ErrorCode::kTooManyConnections,
                                 "the server is at its connection limit; retry shortly");
      r.Header("Retry-After", "1");
      r.close = true;
      self->Send(std::move(r));
    });
  }

 private:
  // Read deadlines use a timer of their own that cancels the read (the stream's expiry
  // would close the socket, and the client would never see its 408).
  void ArmReadTimer(std::chrono::milliseconds d) {
    stream_.expires_never();
    ArmDeadline(d);
  }
  // Ends the deadline of a finished read; true when the read ended because the deadline passed.
  bool ReadTimedOut(const beast::error_code& ec) {
    deadline_ = kNoDeadline;
    return read_timed_out_ && ec == net::error::operation_aborted;
  }

  // The pending socket operation (a read, a write, a wait to write) is cancelled unless it ends
  // within `d`. One coarse timer per connection: a new deadline only moves a time stamp, and
  // the timer is set again only when it fires early or a deadline comes before it (keep-alive
  // requests used to set and cancel two kernel timers each).
  void ArmDeadline(std::chrono::milliseconds d) {
    read_timed_out_ = false;
    deadline_ = std::chrono::steady_clock::now() + d;
    if (timer_set_ && timer_at_ <= deadline_) return;
    SetTimer(deadline_);
  }
  void SetTimer(std::chrono::steady_clock::time_point at) {
    timer_set_ = true;
    timer_at_ = at;
    read_timer_.expires_at(at);  // a wait still pending ends as cancelled (an older generation)
    read_timer_.async_wait([weak = weak_from_this(), gen = ++timer_gen_](beast::error_code) {
      auto self = weak.lock();
      if (!self || gen != self->timer_gen_) return;
      self->OnTimer();
    });
  }
  void OnTimer() {
    timer_set_ = false;
    if (deadline_ == kNoDeadline) return;  // nothing waits; the next deadline sets it again
    if (std::chrono::steady_clock::now() < deadline_) return SetTimer(deadline_);
    deadline_ = kNoDeadline;
    read_timed_out_ = true;
    beast::error_code ignored;
    stream_.socket().cancel(ignored);
  }

  void ReadHeader() {
    header_.emplace();
    header_->header_limit(sh_.opt.max_header_bytes);
    // Body limits are the route's (checked against Content-Length when routed and again while
    // the body streams); the head parser must not apply its 1 MB default.
    header_->body_limit(std::numeric_limits<std::uint64_t>::max());
    ArmReadTimer(sh_.opt.header_timeout);
    http::async_read_header(stream_, buffer_, *header_,
                            beast::bind_front_handler(&Session::OnHeader, shared_from_this()));
  }

  void OnHeader(beast::error_code ec, size_t) {
    const bool timed_out = ReadTimedOut(ec);
    if (ec == http::error::end_of_stream) return Close();
    if (timed_out) {
      if (!header_->got_some() && buffer_.size() == 0) return Close();  // idle keep-alive
      sh_.counters.CountRejection("header_timeout");
      return SendError(408, ErrorCode::kRequestTimeout, "the request head did not arrive in time");
    }
    if (ec == http::error::header_limit) {
      sh_.counters.CountRejection("header_too_large");
      return SendError(
          431, ErrorCode::kHeaderTooLarge,
          "the request head is larger than " + std::to_string(sh_.opt.max_header_bytes) + " bytes");
    }
    if (ec && ec.category() == http::make_error_code(http::error::bad_target).category()) {
      sh_.counters.CountRejection("malformed");
      return SendError(400, ErrorCode::kBadRequest, "malformed request: " + ec.message());
    }
    if (ec) return Close();
    // A body whose length is ambiguous is never read: the connection closes after the answer,
    // so no byte of it can be taken for another request (request smuggling).
    if (Status framing = CheckFraming(header_->get().version(), header_->get()); !framing.ok()) {
      sh_.counters.CountRejection("bad_framing");
      return SendError(framing.code() == ErrorCode::kNotImplemented ? 501 : 400, framing.code(),
                       framing.message());
    }
    keep_alive_ = header_->get().keep_alive();
    request_deadline_ = std::chrono::steady_clock::now() + sh_.opt.request_timeout;
    expect_continue_ = beast::iequals(header_->get()[http::field::expect], "100-continue");
    if (header_->is_done() && Router::IsPlaybackRead(header_->get())) {
      // Playback reads are routed here: players poll playlists every few seconds, and a
      // hand-off to the pool and back cost more than the answer itself.
      Routed routed = sh_.router.Route(header_->get());
      return OnRouted(routed);
    }
    auto req = std::make_shared<Request>(header_->get());
    auto self = shared_from_this();
    net::post(sh_.pool, [self, req] {
      auto routed = std::make_shared<Routed>(self->sh_.router.Route(*req));
      net::post(self->stream_.get_executor(), [self, routed] { self->OnRouted(*routed); });
    });
  }

  void OnRouted(Routed& r) {
    const bool has_body = !header_->is_done();
    if (r.sink) {
      sink_ = std::move(r.sink);
      sink_ended_ = false;
      if (!has_body) return PostFinish();
      return StartBody(sink_->limit());
    }
    if (!has_body) return Send(std::move(r.response));
    if (r.response.status >= 300 || expect_continue_) {  // answer without reading the body
      r.response.close = true;
      return Send(std::move(r.response));
    }
    sink_ = std::make_unique<DiscardSink>(std::move(r.response), sh_.opt.max_small_body_bytes);
    sink_ended_ = false;
    StartBody(sh_.opt.max_small_body_bytes);
  }

  void StartBody(uint64_t limit) {
    direct_left_.reset();
    if (boost::optional<uint64_t> length = header_->content_length();
        length && !header_->chunked()) {
      if (*length > limit) {
        sh_.counters.CountRejection("body_too_large");
        return FailBody(
            Status::Error(ErrorCode::kBodyLimit, "the body passes the limit of this request"));
      }
      direct_left_ = *length;
    }
    body_.emplace(std::move(*header_));
    body_->body_limit(limit);
    if (!expect_continue_) return ReadBody();
    static const std::string kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
    stream_.expires_after(sh_.opt.idle_timeout);
    net::async_write(
        stream_, net::buffer(kContinue), [self = shared_from_this()](beast::error_code ec, size_t) {
          if (ec) return self->FailBody(Status::Error(ErrorCode::kConnectionLost, ec.message()));
          self->ReadBody();
        });
  }

  void ReadBody() {
    if (chunk_.size() != kBodyChunk) chunk_.resize(kBodyChunk);
    if (direct_left_) return ReadBodyDirect();
    auto& b = body_->get().body();
    b.data = chunk_.data() + filled_;
    b.size = chunk_.size() - filled_;
    ArmBodyReadTimer();
    body_read_in_flight_ = true;
    http::async_read_some(stream_, buffer_, *body_,
                          beast::bind_front_handler(&Session::OnBody, shared_from_this()));
  }

  void OnBody(beast::error_code ec, size_t) {
    body_read_in_flight_ = false;
    const bool timed_out = ReadTimedOut(ec);
    if (sink_ended_) return;  // the sink already answered (it failed); the read was cancelled
    if (ec == http::error::need_buffer) ec = {};
    const size_t got_now = chunk_.size() - filled_ - body_->get().body().size;
    sh_.counters.bytes_in += got_now;
    filled_ += got_now;
    const size_t got = filled_;
    if (ec) {
      Status why;
      if (ec == http::error::body_limit) {
        sh_.counters.CountRejection("body_too_large");
        why = Status::Error(ErrorCode::kBodyLimit, "the body passes the limit of this request");
      } else if (timed_out) {
        sh_.counters.CountRejection(deadline_bound_ ? "request_timeout" : "body_timeout");
        why = Status::Error(ErrorCode::kTimeout,
                            deadline_bound_ ? "the request took longer than the server allows"
                                            : "no body bytes arrived for too long");
      } else if (ec == http::error::partial_message || ec == http::error::end_of_stream ||
                 ec.category() != http::make_error_code(http::error::bad_target).category()) {
        why = Status::Error(ErrorCode::kConnectionLost,
                            "the connection closed mid-body: " + ec.message());
      } else {
        why = Status::Error(ErrorCode::kBadRequest, "malformed body: " + ec.message());
      }
      // Bytes that arrived with the error are kept (tus resumes after them).
      filled_ = 0;
      return FailBody(why, why.code() == ErrorCode::kBodyLimit ? 0 : got);
    }
    const bool done = body_->is_done();
    // Keep reading on the loop until the chunk is full or the body ends.
    if (!done && filled_ < chunk_.size()) return ReadBody();
    HandOff(got, done);
  }

  // A body read ends at the sooner of the idle timeout and the request's deadline.
  void ArmBodyReadTimer() {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        request_deadline_ - std::chrono::steady_clock::now());
    deadline_bound_ = left < sh_.opt.idle_timeout;
    ArmReadTimer(std::max(std::chrono::milliseconds(1),
                          std::min(left, std::chrono::milliseconds(sh_.opt.idle_timeout))));
  }

  // An identity (Content-Length) body is read straight from the socket into the chunk, as much
  // as the socket holds per read. Through the parser every read took at most the 16 KiB of
  // the head's buffer (with a timer armed for each), which held a 1 GB upload near 30 MB/s
  // while both ends sat idle waiting on each other.
  void ReadBodyDirect() {
    const size_t room =
        static_cast<size_t>(std::min<uint64_t>(chunk_.size() - filled_, *direct_left_));
    // What the head's read already took from the socket comes first; bytes past the body stay
    // in buffer_ for the next request.
    if (buffer_.size() > 0 && room > 0) {
      const size_t n = std::min(room, buffer_.size());
      std::memcpy(chunk_.data() + filled_, buffer_.data().data(), n);
      buffer_.consume(n);
      return OnBodyDirect({}, n);
    }
    if (room == 0) return OnBodyDirect({}, 0);
    ArmBodyReadTimer();
    body_read_in_flight_ = true;
    stream_.socket().async_read_some(
        net::buffer(chunk_.data() + filled_, room),
        net::bind_executor(stream_.get_executor(),
                           beast::bind_front_handler(&Session::OnBodyDirect, shared_from_this())));
  }

  void OnBodyDirect(beast::error_code ec, size_t n) {
    body_read_in_flight_ = false;
    const bool timed_out = ReadTimedOut(ec);
    if (sink_ended_) return;  // the sink already answered (it failed); the read was cancelled
    sh_.counters.bytes_in += n;
    filled_ += n;
    *direct_left_ -= n;
    const size_t got = filled_;
    if (ec) {
      Status why;
      if (timed_out) {
        sh_.counters.CountRejection(deadline_bound_ ? "request_timeout" : "body_timeout");
        why = Status::Error(ErrorCode::kTimeout,
                            deadline_bound_ ? "the request took longer than the server allows"
                                            : "no body bytes arrived for too long");
      } else {
        why = Status::Error(ErrorCode::kConnectionLost,
                            "the connection closed mid-body: " + ec.message());
      }
      direct_left_.reset();
      filled_ = 0;
      return FailBody(why, got);  // bytes that arrived with the error are kept (tus)
    }
    const bool done = *direct_left_ == 0;
    if (!done && filled_ < chunk_.size()) return ReadBodyDirect();
    if (done) direct_left_.reset();
    HandOff(got, done);
  }

  // Body bytes go to the sink on the pool, one call at a time and in order, while the loop
  // reads on into the other buffer: receiving the next chunk overlaps writing the last one.
  // Reading pauses only when both buffers are full.
  void HandOff(size_t got, bool done) {
    if (pool_busy_) {
      queued_ = Queued{got, done};  // chunk_ holds it until the pool is free
      return;
    }
    std::swap(chunk_, consuming_);
    filled_ = 0;
    RunOnPool(got, done, std::nullopt);
    if (!done) ReadBody();
  }

  void PostFinish() { RunOnPool(0, true, std::nullopt); }

  // Ends the body with an error: the bytes that arrived with it (`got`, in chunk_) are still
  // given to the sink, then the sink says how it failed.
  void FailBody(const Status& why, size_t got = 0) {
    if (sink_ended_) return;  // an answer is already on its way
    if (pool_busy_) {
      queued_fail_ = QueuedFail{why, got};
      return;
    }
    std::swap(chunk_, consuming_);
    filled_ = 0;
    RunOnPool(got, false, why);
  }

  // One sink call on the pool: Consume `got` bytes of consuming_, then Finish (`done`) or Fail
  // (`fail`, or Consume's own error). The answer, if any, comes back to the loop.
  void RunOnPool(size_t got, bool done, std::optional<Status> fail) {
    pool_busy_ = true;
    if (done || fail) sink_ended_ = true;
    auto self = shared_from_this();
    net::post(sh_.pool, [self, got, done, fail = std::move(fail)] {
      Status s = Guarded([&] {
        return got ? self->sink_->Consume(std::as_bytes(std::span(self->consuming_.data(), got)))
                   : Status::Ok();
      });
      std::shared_ptr<Response> answer;
      bool close = false;
      if (fail) {
        answer = std::make_shared<Response>(FailGuarded(*self->sink_, *fail));
        close = fail->code() == ErrorCode::kConnectionLost;  // nobody to answer
      } else if (!s.ok()) {
        answer = std::make_shared<Response>(FailGuarded(*self->sink_, s));
        answer->close = true;
      } else if (done) {
        answer = std::make_shared<Response>(FinishGuarded(*self->sink_));
      }
      net::post(self->stream_.get_executor(),
                [self, answer, close, failed = fail.has_value() || !s.ok()] {
                  self->OnPoolDone(answer, close, failed);
                });
    });
  }

  void OnPoolDone(const std::shared_ptr<Response>& answer, bool close, bool failed) {
    pool_busy_ = false;
    if (answer) {
      sink_ended_ = true;
      queued_.reset();
      queued_fail_.reset();
      sink_.reset();
      consuming_ = {};
      // A read still in flight ends now, so that the drain after the answer reads alone.
      if (body_read_in_flight_) {
        beast::error_code ignored;
        stream_.socket().cancel(ignored);
      }
      if (close) return Close();
      if (failed) answer->close = true;
      return Send(std::move(*answer));
    }
    if (queued_fail_) {
      QueuedFail f = std::move(*queued_fail_);
      queued_fail_.reset();
      return FailBody(f.why, f.got);
    }
    if (queued_) {
      const Queued q = *queued_;
      queued_.reset();
      HandOff(q.got, q.done);
    }
  }

  void SendError(unsigned status, ErrorCode code, const std::string& message) {
    Response r = ErrorResponse(status, code, message);
    r.close = true;
    Send(std::move(r));
  }

  void Send(Response r) {
    close_after_ = r.close || !keep_alive_;
    const bool bodiless = r.status == 204 || r.status == 304 || r.status < 200;
    sh_.counters.CountResponse(r.status);
    r.headers.insert(r.headers.begin(), {{"Server", "zerofarm"},
                                         {"Access-Control-Allow-Origin", "*"},
                                         {"Access-Control-Allow-Headers", kAllowHeaders},
                                         {"Access-Control-Expose-Headers", kExposeHeaders}});
    head_ = FormatResponseHead(r.status, r.headers,
                               bodiless ? std::nullopt : std::optional<uint64_t>(r.size()),
                               close_after_);
    head_sent_ = 0;
    pieces_.clear();
    if (!r.head && !bodiless) pieces_ = std::move(r.body);
    piece_ = 0;
    piece_offset_ = 0;
    file_.Close();
    reads_ = false;
    for (const Piece& p : pieces_) reads_ |= p.reader != nullptr;
    WritePieces();
  }

  // Writes the answer from the connection's loop, without blocking it: the head and the literal
  // bytes after it in one sendmsg(2) (MSG_MORE while more follows, so a head and a file's
  // bytes leave together), file bytes by sendfile(2) from the page cache with no copy through
  // user space (as nginx with `sendfile on`). An answer with bytes read from a store (readers)
  // is read into out_ in steps instead, on the pool when it needs the disk.
  void WritePieces() {
    for (;;) {
      while (piece_ < pieces_.size() && pieces_[piece_].size() == 0) ++piece_;
      const bool literal = piece_ < pieces_.size() && !reads_ && pieces_[piece_].file.empty();
      if (head_sent_ < head_.size() || literal) {
        std::array<iovec, 8> iov{};
        size_t n = 0;
        if (head_sent_ < head_.size())
          iov[n++] = {head_.data() + head_sent_, head_.size() - head_sent_};
        size_t at = piece_;
        uint64_t offset = piece_offset_;
        for (; !reads_ && at < pieces_.size() && n < iov.size(); ++at, offset = 0) {
          const Piece& p = pieces_[at];
          if (!p.file.empty()) break;
          if (p.size() == 0) continue;
          iov[n++] = {const_cast<char*>(p.literal.data()) + offset, p.literal.size() - offset};
        }
        if (!WriteVector(iov.data(), n, at < pieces_.size())) return;
        continue;
      }
      if (piece_ == pieces_.size()) return AnswerDone();
      if (reads_) return NextChunk();
      return SendFile();
    }
  }

  // One non-blocking sendmsg of `iov`, advancing the head and the literal pieces by what it
  // took. False when the loop must stop: the socket is full (a wait resumes WritePieces) or
  // the connection failed (closed).
  bool WriteVector(iovec* iov, size_t n, bool more) {
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = n;
    const int flags = MSG_NOSIGNAL | MSG_DONTWAIT | (more ? MSG_MORE : 0);
    ssize_t sent;
    do {
      sent = ::sendmsg(stream_.socket().native_handle(), &msg, flags);
    } while (sent < 0 && errno == EINTR);
    if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      WaitWritable([](Session& s) { s.WritePieces(); });
      return false;
    }
    if (sent <= 0) {
      Close();
      return false;
    }
    auto left = static_cast<uint64_t>(sent);
    const uint64_t head_part = std::min<uint64_t>(left, head_.size() - head_sent_);
    head_sent_ += head_part;
    left -= head_part;
    sh_.counters.bytes_out += left;
    while (left > 0) {  // literal pieces, in order (empty ones were skipped when gathering)
      const Piece& p = pieces_[piece_];
      const uint64_t take = std::min<uint64_t>(left, p.size() - piece_offset_);
      piece_offset_ += take;
      left -= take;
      if (piece_offset_ == p.size()) {
        ++piece_;
        piece_offset_ = 0;
      }
      while (piece_ < pieces_.size() && pieces_[piece_].size() == 0) ++piece_;
    }
    return true;
  }

  // Waits until the socket takes more bytes (within the idle timeout), then runs `next`.
  template <typename Next>
  void WaitWritable(Next next) {
    ArmDeadline(sh_.opt.idle_timeout);
    stream_.socket().async_wait(tcp::socket::wait_write,
                                [self = shared_from_this(), next](beast::error_code ec) {
                                  if (ec) return self->Close();
                                  next(*self);
                                });
  }

  // Sends the rest of the current file piece, at most kSendfileTurn bytes before yielding to
  // the loop's other connections; waits for the socket to drain when it is full.
  void SendFile() {
    const Piece& p = pieces_[piece_];
    const int fd = FileOf(p);
    if (fd < 0) return Close();  // as a failed read: the answer cannot be completed
    const int sock = stream_.socket().native_handle();
    uint64_t budget = kSendfileTurn;
    while (piece_offset_ < p.length) {
      if (budget == 0) {
        return net::post(stream_.get_executor(), [self = shared_from_this()] { self->SendFile(); });
      }
      off_t at = static_cast<off_t>(p.offset + piece_offset_);
      const size_t want = static_cast<size_t>(std::min(p.length - piece_offset_, budget));
      const ssize_t sent = ::sendfile(sock, fd, &at, want);
      if (sent > 0) {
        piece_offset_ += static_cast<uint64_t>(sent);
        budget -= static_cast<uint64_t>(sent);
        sh_.counters.bytes_out += static_cast<uint64_t>(sent);
        continue;
      }
      if (sent < 0 && errno == EINTR) continue;
      if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return WaitWritable([](Session& s) { s.SendFile(); });
      return Close();  // the file shrank (sent == 0) or the connection failed
    }
    file_.Close();
    ++piece_;
    piece_offset_ = 0;
    WritePieces();
  }

  bool PiecesLeft() const { return piece_ < pieces_.size(); }

  // The descriptor of file piece `p`: the one the answer opened, else `p.file` opened now
  // (held in file_ until the piece is done); -1 when it cannot be opened.
  int FileOf(const Piece& p) {
    if (p.fd) return p.fd->get();
    if (!file_.valid()) file_ = UniqueFd(::open(p.file.c_str(), O_RDONLY | O_CLOEXEC));
    return file_.valid() ? file_.get() : -1;
  }

  // Fills out_ from the pieces; false on a read error.
  bool Fill(size_t& n) {
    n = 0;
    if (!out_) out_ = std::make_unique_for_overwrite<char[]>(kChunk);
    while (n < kChunk && piece_ < pieces_.size()) {
      const Piece& p = pieces_[piece_];
      const uint64_t left = p.size() - piece_offset_;
      const size_t take = static_cast<size_t>(std::min<uint64_t>(left, kChunk - n));
      if (p.reader) {
        auto got = p.reader->Read(std::as_writable_bytes(std::span(out_.get() + n, take)));
        if (!got.ok() || *got == 0) return false;  // a checksum mismatch or a lost node
        n += *got;
        piece_offset_ += *got;
        if (piece_offset_ == p.size()) {
          ++piece_;
          piece_offset_ = 0;
        }
        continue;
      }
      if (p.file.empty()) {
        std::memcpy(out_.get() + n, p.literal.data() + piece_offset_, take);
      } else {
        const int fd = FileOf(p);
        if (fd < 0) return false;
        ssize_t got =
            ::pread(fd, out_.get() + n, take, static_cast<off_t>(p.offset + piece_offset_));
        if (got <= 0) return false;
        n += static_cast<size_t>(got);
        piece_offset_ += static_cast<uint64_t>(got);
        if (piece_offset_ == p.size()) {
          ++piece_;
          piece_offset_ = 0;
          file_.Close();
        }
        continue;
      }
      n += take;
      piece_offset_ += take;
      if (piece_offset_ == p.size()) {
        ++piece_;
        piece_offset_ = 0;
      }
    }
    return true;
  }

  // The next step of an answer read from stores: fill out_ (on the pool when it needs the
  // disk or a node), write it, repeat.
  void NextChunk() {
    bool needs_disk = false;
    for (size_t i = piece_; i < pieces_.size(); ++i)
      needs_disk |= !pieces_[i].file.empty() || pieces_[i].reader;
    auto self = shared_from_this();
    auto write = [self](bool ok, size_t n) {
      if (!ok || n == 0) return self->Close();
      self->sh_.counters.bytes_out += n;
      self->ArmDeadline(self->sh_.opt.idle_timeout);
      net::async_write(self->stream_.socket(), net::buffer(self->out_.get(), n),
                       [self](beast::error_code ec, size_t) {
                         if (ec) return self->Close();
                         self->WritePieces();
                       });
    };
    if (!needs_disk) {
      size_t n;
      bool ok = Fill(n);
      return write(ok, n);
    }
    net::post(sh_.pool, [self, write] {
      size_t n;
      bool ok = self->Fill(n);
      net::post(self->stream_.get_executor(), [write, ok, n] { write(ok, n); });
    });
  }

  // The answer is out: the next request, or the end of the connection.
  void AnswerDone() {
    deadline_ = kNoDeadline;
    file_.Close();
    pieces_.clear();
    if (close_after_) return Linger();
    ReadHeader();
  }

  // After an answer that ends the connection: stop sending, read and drop what the client
  // still sends (so it sees our answer instead of a reset), then close.
  void Linger() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    if (ec) return Close();
    deadline_ = kNoDeadline;
    drained_ = 0;
    stream_.expires_after(kDrainTime);
    if (chunk_.size() < kChunk) chunk_.resize(kChunk);  // a body's buffers may have swapped
    Drain();
  }
  void Drain() {
    stream_.async_read_some(net::buffer(chunk_),
                            [self = shared_from_this()](beast::error_code ec, size_t n) {
                              self->drained_ += n;
                              if (ec || self->drained_ > kMaxDrain) return self->Close();
                              self->Drain();
                            });
  }

  void Close() {
    deadline_ = kNoDeadline;
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.close();
  }

  static constexpr std::chrono::steady_clock::time_point kNoDeadline =
      std::chrono::steady_clock::time_point::max();
  beast::tcp_stream stream_;
  net::steady_timer read_timer_;  // the connection's one deadline timer
  bool read_timed_out_ = false;   // the last deadline passed and cancelled the socket
  std::chrono::steady_clock::time_point deadline_ = kNoDeadline;  // of the pending operation
  bool timer_set_ = false;                                        // read_timer_ has a wait pending
  std::chrono::steady_clock::time_point timer_at_;                // when that wait ends
  uint64_t timer_gen_ = 0;  // the generation of the pending wait
  Shared& sh_;
  beast::flat_buffer buffer_{16 * 1024};
  std::optional<http::request_parser<http::empty_body>> header_;
  std::optional<http::request_parser<http::buffer_body>> body_;
  std::unique_ptr<BodySink> sink_;
  // The body's second buffer: the pool's sink reads it while the loop fills chunk_.
  std::vector<char> consuming_;
  bool pool_busy_ = false;   // a sink call runs on the pool
  bool sink_ended_ = false;  // the sink finished or failed: reading stops, the answer is coming
  bool body_read_in_flight_ = false;
  struct Queued {
    size_t got = 0;
    bool done = false;
  };
  std::optional<Queued> queued_;  // a full chunk_ waiting for the pool
  struct QueuedFail {
    Status why;
    size_t got = 0;
  };
  std::optional<QueuedFail> queued_fail_;  // an error waiting for the pool's current call
  bool keep_alive_ = false;
  bool expect_continue_ = false;
  bool close_after_ = false;
  std::chrono::steady_clock::time_point request_deadline_;  // the body must end by then
  bool deadline_bound_ = false;  // the current read ends at the deadline, not the idle timeout
  std::optional<uint64_t> direct_left_;  // body bytes still to read straight from the socket
  // Buffers are made when first needed: a connection that only GETs (players polling, range
  // readers) holds neither, which keeps 256 such connections' working set small.
  std::vector<char> chunk_;      // kBodyChunk while reading a body, kChunk while draining
  size_t filled_ = 0;            // body bytes gathered in chunk_
  std::unique_ptr<char[]> out_;  // kChunk bytes: answers read from stores or files in steps
  std::string head_;             // the current answer's head
  size_t head_sent_ = 0;         // of head_
  bool reads_ = false;           // the answer has pieces read from stores: written from out_
  std::vector<Piece> pieces_;
  size_t piece_ = 0;
  uint64_t piece_offset_ = 0;
  UniqueFd file_;
  size_t drained_ = 0;
};

// The socket threads' event loops: each is run by one thread, so a connection's handlers never
// run at once and need no strand; connections are dealt to the loops in turn.
using Loops = std::vector<std::unique_ptr<net::io_context>>;

class Listener : public std::enable_shared_from_this<Listener> {
 public:
  Listener(Loops& loops, Shared& sh)
      : loops_(loops), acceptor_(loops.front()->get_executor()), sh_(sh) {}

  Status Listen(const tcp::endpoint& endpoint) {
    beast::error_code ec;
    acceptor_.open(endpoint.protocol(), ec);
    if (!ec) acceptor_.set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(endpoint, ec);
    if (!ec) acceptor_.listen(net::socket_base::max_listen_connections, ec);
    if (!ec) acceptor_.non_blocking(true, ec);
    if (ec)
      return Status::Error(ErrorCode::kIoError,
                           "cannot listen on " + endpoint.address().to_string() + ":" +
                               std::to_string(endpoint.port()) + ": " + ec.message());
    return Status::Ok();
  }
  uint16_t port() const { return acceptor_.local_endpoint().port(); }
  void Accept() {
    net::io_context& loop = *loops_[next_++ % loops_.size()];
    acceptor_.async_accept(loop.get_executor(),
                           beast::bind_front_handler(&Listener::OnAccept, shared_from_this()));
  }

 private:
  void OnAccept(beast::error_code ec, tcp::socket socket) {
    if (ec == net::error::operation_aborted) return;
    if (!ec) Admit(std::move(socket));
    // Connections already waiting are taken now: one per turn of a busy loop left the last of
    // 256 connections opened at once waiting seconds for their first answer.
    for (int i = 0; !ec && i < kAcceptBatch; ++i) {
      tcp::socket more(*loops_[next_ % loops_.size()]);
      acceptor_.accept(more, ec);  // the acceptor is non-blocking: would_block ends the batch
      if (!ec) {
        ++next_;
        Admit(std::move(more));
      }
    }
    Accept();
  }
  void Admit(tcp::socket socket) {
    const bool reject = sh_.counters.connections.load() >= sh_.opt.max_connections;
    std::make_shared<Session>(std::move(socket), sh_)->Start(reject);
  }

  static constexpr int kAcceptBatch = 64;  // connections taken at once when many wait

  Loops& loops_;
  tcp::acceptor acceptor_;
  Shared& sh_;
  size_t next_ = 0;  // the loop of the next connection
};

class ServerImpl final : public Server {
 public:
  ServerImpl(const ServerOptions& o, scheduler::VideoService& v, TokenStore& t)
      : sh_(std::make_unique<Shared>(o, v, t)) {
    for (int i = 0; i < IoThreads(o); ++i) {
      loops_.push_back(std::make_unique<net::io_context>(1));
      idle_.push_back(net::make_work_guard(*loops_.back()));
    }
  }

  ~ServerImpl() override {
    for (auto& loop : loops_) loop->stop();
    for (auto& t : threads_) t.join();
    sh_->pool.join();  // handlers in flight finish; their answers are never sent
  }

  Status Start() {
    beast::error_code ec;
    auto address = net::ip::make_address(sh_->opt.address, ec);
    if (ec)
      return Status::Error(ErrorCode::kInvalidArgument, "bad listen address " + sh_->opt.address);
    listener_ = std::make_shared<Listener>(loops_, *sh_);
    ZF_RETURN_IF_ERROR(listener_->Listen(tcp::endpoint(address, sh_->opt.port)));
    port_ = listener_->port();
    listener_->Accept();
    for (auto& loop : loops_) threads_.emplace_back([&loop = *loop] { loop.run(); });
    return Status::Ok();
  }
  uint16_t port() const override { return port_; }

 private:
  // Playback reads are answered on the socket threads (Session::OnHeader): one per CPU lets
  // them use every core, as nginx's workers do.
  static int IoThreads(const ServerOptions& o) {
    if (o.io_threads > 0) return o.io_threads;
    return static_cast<int>(std::clamp(std::thread::hardware_concurrency(), 1u, 4u));
  }

  std::unique_ptr<Shared> sh_;  // outlives loops_: sessions destroyed with them still use it
  Loops loops_;
  std::vector<net::executor_work_guard<net::io_context::executor_type>> idle_;  // loops wait
  std::shared_ptr<Listener> listener_;
  std::vector<std::thread> threads_;
  uint16_t port_ = 0;
};

}  // namespace

Result<std::unique_ptr<Server>> Server::Start(const ServerOptions& options,
                                              scheduler::VideoService& videos, TokenStore& tokens) {
  auto server = std::make_unique<ServerImpl>(options, videos, tokens);
  ZF_RETURN_IF_ERROR(server->Start());
  return std::unique_ptr<Server>(std::move(server));
}

}  // namespace zerofarm::api
