#pragma once
// io::serve: a stream server whose idle connections cost almost nothing — no task, no coroutine frame and no
// read buffer while a connection waits for data, only a ~128-byte record with one pending read.
//
// A coroutine per connection (`for (;;) { co_await s.read_some(); ... }`) is the simplest server, and fine for
// hundreds of connections; but its frame (several hundred bytes) stays allocated while the connection idles.
// serve() instead parks each connection as a record holding the stream and one read into the loop's pool
// (io_uring: a provided buffer is picked only when data arrives; epoll: the read is retried on readiness). When
// data arrives it starts `handler(stream, data)` as a task; the handler may await more reads and writes, and
// returns Next::keep to park the connection again or Next::close to close it.
//
// Protocol (stop): when the serve task is cancelled it (1) stops accepting, (2) cancels every parked read and
// lets running handlers see weft::Cancelled, (3) waits until every handler has finished and every cancelled
// read has completed (the kernel may still be writing into a record until then), closing each connection, and
// (4) finishes with weft::Cancelled like any cancelled task.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <utility>

#include "weft/io/buffer.hpp"
#include "weft/io/group.hpp"
#include "weft/io/socket.hpp"
#include "weft/io/task.hpp"

namespace weft::io {

enum class Next : std::uint8_t { keep, close };

struct ServeOptions {
  /// Connections open at once; a connection accepted beyond it is closed at once (counted in `rejected`), so a
  /// flood of connections cannot exhaust descriptors or memory.
  std::size_t max_connections = 10000;
  /// A parked connection idle longer than this is closed (0: never). Checked by one sweep timer every
  /// idle_timeout / 4, so a connection may idle up to 1.25 × idle_timeout.
  std::chrono::nanoseconds idle_timeout{};
};

struct ServeStats {
  std::size_t open = 0;         // connections now open (parked or in a handler)
  std::uint64_t accepted = 0;   // connections accepted and served
  std::uint64_t rejected = 0;   // accepted beyond max_connections and closed at once
  std::uint64_t handled = 0;    // handler runs
  std::uint64_t idle_closed = 0;
  std::uint64_t failed = 0;     // handler runs that ended with an exception other than IoError/Cancelled
};

namespace detail {

class ParkedServer {
 public:
  using Call = Task<Next> (*)(void* ctx, Stream& stream, Buffer data);
  ParkedServer(ServeOptions options, void* ctx, Call call, ServeStats* stats) noexcept
      : options_(options), ctx_(ctx), call_(call), stats_(stats != nullptr ? stats : &own_stats_) {}
  ParkedServer(const ParkedServer&) = delete;
  ParkedServer& operator=(const ParkedServer&) = delete;
  ~ParkedServer();

  Task<void> run(Listener& listener);
  struct Conn;

 private:
  void park(Conn* c);
  void close(Conn* c) noexcept;
  static void on_read(IoOp* op);
  Task<void> handle(Conn* c, Buffer data);
  void stop_all() noexcept;
  void sweep() noexcept;

  ServeOptions options_;
  void* ctx_;
  Call call_;
  TaskGroup* group_ = nullptr;
  Conn* parked_ = nullptr;           // intrusive list of connections waiting for data
  std::size_t pending_reads_ = 0;    // parked reads not yet completed (records the kernel may still touch)
  std::coroutine_handle<> drained_;  // step 3: waits for pending_reads_ == 0
  TimerNode sweep_timer_;
  bool stopping_ = false;
  ServeStats* stats_;
  ServeStats own_stats_;
};

}  // namespace detail

/// Accepts connections on `listener` and serves them with `handler` (see the top of this file) until cancelled.
/// `handler` is called as `handler(Stream&, Buffer data) -> Task<Next>` with the bytes that woke the connection
/// (never empty; a connection that ends while parked is closed without a call). The Stream stays valid for the
/// handler's run. A handler that throws closes its connection only: IoError and Cancelled quietly, anything
/// else through weft's unhandled-exception handler (counted in stats().failed). `stats`, when given, is
/// updated live. Loop thread only.
template <class Handler>
Task<void> serve(Listener& listener, Handler handler, ServeOptions options = {}, ServeStats* stats = nullptr) {
  detail::ParkedServer server(
      options, &handler,
      [](void* ctx, Stream& s, Buffer data) -> Task<Next> { return (*static_cast<Handler*>(ctx))(s, std::move(data)); },
      stats);
  co_await server.run(listener);
}

}  // namespace weft::io
