// io::http::Server: the accept loop, one task per connection, and the drain (protocol in server.hpp).
//
// A connection's task, in a loop:
//  1. Picks the deadline of its next read: idle_timeout between requests, the head's deadline (header_timeout
//     from the request's first byte, or from the accept) while a head is incomplete, the body's deadline
//     (body_timeout from the end of the head) while a body is incomplete.
//  2. Reads with Stream::read_some: the pool buffer exists only while bytes are in hand, so an idle
//     keep-alive connection holds no read buffer.
//  3. Feeds the bytes to its RequestParser, one request at a time; each complete request goes to the handler
//     and its response is appended to the connection's output string (which keeps its capacity).
//  4. Writes the output once per read (or every max_pipelined responses), then reads again.
// Before anything that may suspend in the middle of a read's bytes (an async handler, a flush), the bytes not
// yet parsed move to a per-connection string and the pool buffer goes back at once: a slow handler never pins
// a pool buffer.
#include "weft/io/http/server.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <stdexcept>
#include <string_view>

#include "weft/core/errors.hpp"
#include "weft/io/time.hpp"

namespace weft::io::http {

namespace {

using namespace std::chrono_literals;

constexpr std::string_view kServiceUnavailable =
    "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 20\r\n"
    "Connection: close\r\n\r\nService Unavailable\n";
constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
// 503 answers that may wait for their write and linger at once; beyond, the answer is best effort.
constexpr std::size_t kMaxRejecting = 64;
// After an error answer, what the client still sends is read and dropped for this long (or this much) before
// closing, so that the close does not reset the connection and destroy the answer before the client reads it.
constexpr auto kLingerTime = 500ms;
constexpr std::size_t kLingerBytes = std::size_t{256} << 10;

std::int64_t ns(std::chrono::nanoseconds d) noexcept { return d.count(); }

// Half-closes, then drops what the client sends until it closes, kLingerTime passes or kLingerBytes arrived.
Task<void> linger_close(Stream& s) {
  try {
    s.shutdown_write();
    s.set_timeouts(kLingerTime, 0ns);
    std::size_t dropped = 0;
    while (dropped < kLingerBytes) {
      Buffer b = co_await s.read_some();
      if (b.empty()) break;
      dropped += b.size();
    }
  } catch (const Timeout&) {
  } catch (const IoError&) {
  }
  s.close();
}

// How an error answer is written: the connection closes after it.
ResponseContext closing(std::string_view server) {
  ResponseContext ctx;
  ctx.close = true;
  ctx.server = server;
  return ctx;
}

Response error_response(int status) {
  std::string body(reason_phrase(status));
  body.push_back('\n');
  return Response::text(status, std::move(body));
}

}  // namespace

struct Server::Conn {
  Stream* stream = nullptr;
  bool idle = false;  // waiting for a next request with nothing of it received
  Conn* prev = nullptr;
  Conn* next = nullptr;
};

void Server::link(Conn& c) noexcept {
  c.next = conns_;
  if (conns_ != nullptr) conns_->prev = &c;
  conns_ = &c;
}

void Server::unlink(Conn& c) noexcept {
  if (c.prev != nullptr) c.prev->next = c.next;
  else conns_ = c.next;
  if (c.next != nullptr) c.next->prev = c.prev;
  c.prev = c.next = nullptr;
}

void Server::report_handler_error(std::exception_ptr e) noexcept {
  ++stats_.handler_errors;
  if (options_.on_handler_error) {
    try {
      options_.on_handler_error(e);
    } catch (...) {
      report_unhandled_exception(std::current_exception(), "weft::io::http::Server on_handler_error");
    }
  } else {
    report_unhandled_exception(e, "weft::io::http::Server handler");
  }
}

void Server::stop() {
  if (!serving_) return;
  stop_requested_ = true;
  if (accept_scope_ != nullptr) accept_scope_->cancel();
}

Task<void> Server::serve(Listener& listener) {
  if (serving_) throw std::logic_error("weft::io::http::Server::serve: already serving");
  serving_ = true;
  draining_ = false;
  stop_requested_ = false;
  // The connections' group has no parent scope: cancelling our caller ends the accept loop only, and the drain
  // decides what happens to the connections (steps 2-4).
  TaskGroup connections(nullptr, /*report_only=*/true);
  std::exception_ptr error;
  try {
    co_await task_group([&](TaskGroup& scope) -> Task<void> {
      accept_scope_ = &scope;
      co_await accept_loop(listener, connections);
    });
  } catch (const Cancelled&) {
    // step 1: stop() or our caller's cancellation
  } catch (...) {
    error = std::current_exception();
  }
  accept_scope_ = nullptr;
  const bool cancelled = co_await stop_requested{};

  draining_ = true;  // step 3: from now on every response says Connection: close
  for (Conn* c = conns_; c != nullptr;) {  // step 2
    Conn* next = c->next;
    if (c->idle) c->stream->close();  // its pending read ends with Cancelled
    c = next;
  }
  if (connections.live() > 0) {  // step 4
    TaskGroup timer(nullptr);
    timer.spawn([](TaskGroup& conns, std::chrono::milliseconds limit) -> Task<void> {
      co_await sleep(limit);
      conns.cancel();
    }(connections, options_.drain_timeout));
    co_await connections.join();
    timer.cancel();
    co_await timer.join();
  }
  serving_ = false;
  draining_ = false;
  if (error) std::rethrow_exception(error);  // step 5
  if (cancelled) throw Cancelled("weft::io::http::Server::serve: cancelled");
}

Task<void> Server::accept_loop(Listener& listener, TaskGroup& connections) {
  for (;;) {
    Stream s;
    bool backoff = false;
    try {
      s = co_await listener.accept();
    } catch (const IoError& e) {
      int code = e.code().value();
      if (code != EMFILE && code != ENFILE && code != ENOBUFS && code != ENOMEM) throw;
      ++stats_.accept_errors;  // out of descriptors or memory: wait for connections to end, then retry
      backoff = true;
    }
    if (backoff) {
      co_await sleep(50ms);
      continue;
    }
    if (stats_.connections_open >= options_.max_connections) {
      ++stats_.connections_rejected;
      if (rejecting_ < kMaxRejecting) {
        ++rejecting_;
        connections.spawn(reject(std::move(s)));
      } else {  // a flood: answer if the socket takes it at once, and close
        (void)::send(s.native_handle(), kServiceUnavailable.data(), kServiceUnavailable.size(),
                     MSG_DONTWAIT | MSG_NOSIGNAL);
      }
      continue;
    }
    ++stats_.connections_open;  // counted now, so the limit holds before the task starts
    ++stats_.connections_accepted;
    connections.spawn(connection(std::move(s)));
  }
}

Task<void> Server::reject(Stream s) {
  try {
    s.set_timeouts(kLingerTime, kLingerTime);
    co_await s.write_all(kServiceUnavailable);
    co_await linger_close(s);
  } catch (const Error&) {  // Timeout, IoError, Cancelled: the answer is best effort
  }
  --rejecting_;
}

Task<void> Server::connection(Stream s) {
  Conn self;
  self.stream = &s;
  link(self);
  struct Unlink {
    Server* server;
    Conn* conn;
    ~Unlink() {
      server->unlink(*conn);
      --server->stats_.connections_open;
    }
  } unlink_on_exit{this, &self};

  detail::LoopCore& core = detail::current_core();
  const std::int64_t idle_ns = ns(options_.idle_timeout);
  const std::int64_t header_ns = ns(options_.header_timeout);
  const std::int64_t body_ns = ns(options_.body_timeout);
  const std::chrono::nanoseconds write_timeout = options_.write_timeout;
  const std::size_t max_pipelined = options_.max_pipelined > 0 ? options_.max_pipelined : 1;
  const std::string_view server_name = options_.name;

  RequestParser parser(options_.limits);
  std::string out;    // responses waiting to be written; keeps its capacity
  std::string carry;  // unparsed bytes moved out of a pool buffer before a suspension
  std::int64_t head_deadline = core.now() + header_ns;
  std::int64_t body_deadline = 0;
  bool fresh = true;  // nothing received yet on this connection
  bool body_clock = false;
  bool continue_sent = false;

  try {
    for (;;) {
      if (draining_ && parser.idle()) break;  // shutdown step 3: answered what was in progress
      // Step 1: the read's deadline.
      std::int64_t now = core.now();
      const bool between_requests = parser.idle() && !fresh;
      std::int64_t deadline = between_requests          ? now + idle_ns
                              : parser.head_complete() ? body_deadline
                                                       : head_deadline;
      bool timed_out = deadline <= now;
      Buffer buf;
      if (!timed_out) {
        s.set_timeouts(std::chrono::nanoseconds(deadline - now), write_timeout);
        self.idle = parser.idle();
        try {
          buf = co_await s.read_some();  // step 2
        } catch (const Timeout&) {
          timed_out = true;
        }
        self.idle = false;
      }
      if (timed_out) {
        if (between_requests) {
          ++stats_.idle_closed;
        } else {
          ++stats_.timeouts;
          if (!parser.idle()) {  // a request had started: say why it ends
            out.clear();
            append_response(out, error_response(408), closing(server_name));
            co_await s.write_all(out);
          }
        }
        break;
      }
      if (buf.empty()) break;  // the client closed
      fresh = false;

      // Step 3.
      const char* p = buf.data();
      std::size_t n = buf.size();
      bool from_carry = false;
      // Keeps the unparsed bytes and gives the pool buffer back, before a suspension.
      auto park_rest = [&] {
        if (n > 0 && !from_carry) {
          carry.assign(p, n);
          p = carry.data();
          from_carry = true;
        }
        buf.reset();
      };
      std::size_t queued = 0;
      bool close = false;
      bool linger = false;
      while (n > 0) {
        const bool was_idle = parser.idle();
        std::size_t used = parser.feed(p, n);
        p += used;
        n -= used;
        if (was_idle && used > 0) head_deadline = core.now() + header_ns;
        if (parser.failed()) {
          const ParseError& e = parser.error();
          switch (e.kind) {
            case ParseError::Kind::headers_too_large: ++stats_.headers_too_large; break;
            case ParseError::Kind::body_too_large: ++stats_.bodies_too_large; break;
            default: ++stats_.bad_requests; break;
          }
          append_response(out, error_response(e.status()), closing(server_name));
          close = linger = true;
          break;
        }
        if (!parser.done()) {  // the rest of the request is still to come
          if (parser.head_complete() && !body_clock) {
            body_deadline = core.now() + body_ns;
            body_clock = true;
          }
          if (parser.expects_continue() && !continue_sent) {
            out.append(kContinue);
            continue_sent = true;
          }
          break;
        }

        const Request& req = parser.request();
        ++stats_.requests;
        Response resp;
        bool failed = false;
        if (sync_) {
          try {
            resp = sync_(req);
          } catch (...) {
            report_handler_error(std::current_exception());
            failed = true;
          }
        } else {
          park_rest();
          if (!out.empty()) {  // earlier answers need not wait for this handler
            co_await s.write_all(out);
            out.clear();
            queued = 0;
          }
          std::exception_ptr error;
          try {
            resp = co_await async_(req);
          } catch (const Cancelled&) {
            throw;  // the drain's time is up
          } catch (...) {
            error = std::current_exception();
          }
          if (error) {
            report_handler_error(error);
            failed = true;
          }
        }
        if (failed) resp = error_response(500);

        close = draining_ || !req.keep_alive() || parser.upgrade();
        ResponseContext ctx;
        ctx.close = close;
        ctx.head = req.method() == "HEAD";
        ctx.http10_keep_alive = !close && req.version_minor() == 0;
        ctx.server = server_name;
        if (options_.date_header && !resp.is_prebuilt()) ctx.date = http_date();
        append_response(out, resp, ctx);
        parser.next();
        body_clock = false;
        continue_sent = false;
        if (close) break;
        if (++queued >= max_pipelined) {  // step 4, early: bound the output
          park_rest();
          co_await s.write_all(out);
          out.clear();
          queued = 0;
        }
      }
      // Closing with unread bytes makes the kernel reset the connection, which can destroy the answer before
      // the client reads it: when more was sent after the last answered request, linger first.
      if (close && n > 0) linger = true;
      buf.reset();
      // Step 4.
      if (!out.empty()) {
        co_await s.write_all(out);
        out.clear();
      }
      if (close) {
        if (linger) co_await linger_close(s);
        break;
      }
    }
  } catch (const Cancelled&) {
    // closed by the drain (idle), or the drain's time ran out
  } catch (const Timeout&) {
    ++stats_.io_errors;  // a write that made no progress within write_timeout
  } catch (const IoError&) {
    ++stats_.io_errors;
  }
}

}  // namespace weft::io::http
