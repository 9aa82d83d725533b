#pragma once
// io::http::Server: an HTTP/1.1 server on weft's event loop.
//
//   io::http::Server server([](const io::http::Request& req) {
//     return io::http::Response::text(200, "Hello, " + std::string(req.path()));
//   });
//   auto listener = io::Listener::bind(io::Address::loopback(8080));
//   co_await server.serve(listener);        // until server.stop() or cancellation
//
// A handler is either synchronous, `Response(const Request&)`, called inline (no allocation of its own), or
// asynchronous, `io::Task<Response>(const Request&)`, awaited by the connection's task (it may sleep, read
// sockets, await a weft::Future from a pool...). The Request is valid until the handler returns or finishes.
//
// Behaviour:
// - Keep-alive (HTTP/1.1 by default, HTTP/1.0 with `Connection: keep-alive`), pipelining: requests that arrive
//   together are answered in order and their responses leave in one write (at most max_pipelined responses
//   are queued before they are written; reading waits meanwhile, which pushes back on the client).
// - Errors are answered and the connection closed: malformed request 400, head too large 431, body too large
//   413, HTTP/2+ 505, a head not complete within header_timeout 408 (slow-loris). A handler that throws gets
//   its client a 500 without the exception's message; the exception goes to ServerOptions::on_handler_error
//   (default: weft::report_unhandled_exception) and is counted in stats().handler_errors. The connection
//   stays usable.
// - Overload: at max_connections open connections, a new connection is accepted, answered
//   `503 Service Unavailable` with `Connection: close`, and closed (counted in stats().connections_rejected).
// - Timeouts: a new connection or a started request must deliver its whole head within header_timeout; a body
//   must arrive within body_timeout of its head; a keep-alive connection may wait idle_timeout for its next
//   request; a write that makes no progress for write_timeout ends the connection.
//
// Shutdown protocol (serve() returning):
//  1. stop() or a cancellation of the task awaiting serve() ends the accept loop (the listener stays open: it
//     belongs to the caller).
//  2. Idle keep-alive connections (waiting for a next request with nothing received) are closed at once.
//  3. Connections with a request in progress finish it; its response carries `Connection: close` and the
//     connection closes after writing it.
//  4. After drain_timeout, whatever is still running is cancelled.
//  5. serve() returns once every connection has ended: normally after stop(), by rethrowing weft::Cancelled
//     after a cancellation (so the awaiting task sees its cancellation, as io::Task conventions ask).
//
// Thread safety: a Server belongs to the loop thread that runs serve(); stop() and stats() are loop-thread
// calls too (from another thread, post them with Loop::call_soon_threadsafe). One serve() at a time.
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <string>
#include <type_traits>
#include <utility>

#include "weft/core/function.hpp"
#include "weft/io/group.hpp"
#include "weft/io/http/message.hpp"
#include "weft/io/http/request_parser.hpp"
#include "weft/io/socket.hpp"
#include "weft/io/task.hpp"

namespace weft::io::http {

struct ServerOptions {
  /// Open connections at most; beyond, new ones get 503 and are closed.
  std::size_t max_connections = 10000;
  /// Per-request limits (431 / 413 beyond them).
  ParserLimits limits;
  /// Time for a whole request head (line and headers) to arrive, from its first byte (or from the accept).
  std::chrono::milliseconds header_timeout{10'000};
  /// Time a keep-alive connection may wait for its next request.
  std::chrono::milliseconds idle_timeout{60'000};
  /// Time for a whole body to arrive, from the end of its head.
  std::chrono::milliseconds body_timeout{30'000};
  /// Time a write may wait for the client to make room.
  std::chrono::milliseconds write_timeout{30'000};
  /// How long the shutdown waits for requests in progress before cancelling them.
  std::chrono::milliseconds drain_timeout{10'000};
  /// Responses queued (pipelining) before they are written and reading resumes.
  std::size_t max_pipelined = 64;
  /// The Server header; empty: none.
  std::string name = "weft";
  /// Write a Date header (formatted once a second).
  bool date_header = true;
  /// Receives exceptions thrown by the handler (the client gets a 500). Empty: report_unhandled_exception.
  /// Called on the loop thread; must not throw.
  std::function<void(std::exception_ptr)> on_handler_error;
};

/// Counters since the Server was made (loop thread).
struct ServerStats {
  std::uint64_t connections_open = 0;      // now
  std::uint64_t connections_accepted = 0;  // served (not counting rejected ones)
  std::uint64_t connections_rejected = 0;  // answered 503 at max_connections
  std::uint64_t requests = 0;              // complete requests handed to the handler
  std::uint64_t bad_requests = 0;          // 400 and 505
  std::uint64_t headers_too_large = 0;     // 431
  std::uint64_t bodies_too_large = 0;      // 413
  std::uint64_t handler_errors = 0;        // 500: the handler threw
  std::uint64_t timeouts = 0;              // header (408) or body timeout
  std::uint64_t idle_closed = 0;           // keep-alive connections closed by idle_timeout
  std::uint64_t io_errors = 0;             // connections ended by a socket error (reset, broken pipe, write timeout)
  std::uint64_t accept_errors = 0;         // accept failures that were waited out (out of descriptors)
};

class Server {
 public:
  using SyncHandler = UniqueFunction<Response(const Request&)>;
  using AsyncHandler = UniqueFunction<Task<Response>(const Request&)>;

  /// A server with a synchronous or asynchronous handler (see the top of this file). Throws nothing but
  /// std::bad_alloc.
  template <class F>
    requires std::invocable<F&, const Request&>
  explicit Server(F handler, ServerOptions options = {}) : options_(std::move(options)) {
    using R = std::invoke_result_t<F&, const Request&>;
    if constexpr (std::is_same_v<R, Task<Response>>) {
      async_ = AsyncHandler(std::move(handler));
    } else {
      static_assert(std::is_convertible_v<R, Response>,
                    "a handler returns io::http::Response or io::Task<io::http::Response>");
      sync_ = SyncHandler(std::move(handler));
    }
  }
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;
  /// Precondition: serve() is not running.
  ~Server() = default;

  /// Accepts connections on `listener` and serves them until stop() or cancellation, then drains (the protocol
  /// at the top of this file). Each connection is a task of the server's own group: cancelling the caller does
  /// not cut requests in progress short (drain_timeout does). Throws weft::Cancelled after a cancellation,
  /// IoError when accepting fails for a reason other than running out of descriptors (then too after
  /// draining), std::logic_error when this server is already serving. Loop thread only.
  Task<void> serve(Listener& listener);

  /// Ends serve()'s accept loop and starts the drain. No effect when not serving. Loop thread only.
  void stop();

  /// Counters (loop thread).
  const ServerStats& stats() const noexcept { return stats_; }
  const ServerOptions& options() const noexcept { return options_; }

 private:
  struct Conn;
  Task<void> accept_loop(Listener& listener, TaskGroup& connections);
  Task<void> connection(Stream stream);
  Task<void> reject(Stream stream);
  void report_handler_error(std::exception_ptr e) noexcept;
  void link(Conn& c) noexcept;
  void unlink(Conn& c) noexcept;

  ServerOptions options_;
  SyncHandler sync_;
  AsyncHandler async_;
  ServerStats stats_;
  Conn* conns_ = nullptr;            // intrusive list of live connections (to close the idle ones on drain)
  TaskGroup* accept_scope_ = nullptr;  // while serving: cancelling it ends the accept loop
  std::size_t rejecting_ = 0;        // 503 answers in progress
  bool serving_ = false;
  bool draining_ = false;
  bool stop_requested_ = false;
};

}  // namespace weft::io::http
