// io::http::Server on both backends: keep-alive, pipelining, HTTP/1.0, chunked bodies, limits, malformed
// requests, timeouts (slow-loris, idle), overload, handler failures, async handlers, graceful shutdown.
//
// The clients are raw io::Streams on the server's own loop, run as tasks beside it; every wait is on an event
// (a response, the end of the stream, a future), never on a sleep.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "weft/core/future.hpp"
#include "weft/io/future.hpp"
#include "weft/io/group.hpp"
#include "weft/io/http/server.hpp"
#include "weft/io/loop.hpp"
#include "weft/io/socket.hpp"
#include "weft/io/time.hpp"
#include "weft/thread/thread_pool.hpp"

namespace io = weft::io;
namespace http = weft::io::http;
using io::Task;
using namespace std::chrono_literals;

namespace {

// A test client speaking raw bytes.
struct Client {
  io::Stream s;
  std::string in;  // received, not yet consumed

  static Task<Client> connect(std::uint16_t port) {
    Client c;
    c.s = co_await io::Stream::connect(io::Address::loopback(port));
    co_return c;
  }

  Task<void> send(std::string_view bytes) { co_await s.write_all(bytes); }

  // Reads more; false at the end of the stream (or a reset, which a closing server may cause).
  Task<bool> fill() {
    char buf[4096];
    std::size_t n = 0;
    try {
      n = co_await s.read(buf, sizeof buf);
    } catch (const io::IoError&) {
      n = 0;
    }
    in.append(buf, n);
    co_return n > 0;
  }

  // One complete response (head and Content-Length body) or "" when the stream ends first.
  Task<std::string> response() {
    for (int guard = 0; guard < 10000; ++guard) {
      std::size_t head_end = in.find("\r\n\r\n");
      if (head_end != std::string::npos) {
        std::size_t length = 0;
        std::size_t at = in.find("Content-Length: ");
        if (at != std::string::npos && at < head_end) length = std::strtoul(in.c_str() + at + 16, nullptr, 10);
        std::size_t total = head_end + 4 + length;
        if (in.size() >= total) {
          std::string r = in.substr(0, total);
          in.erase(0, total);
          co_return r;
        }
      }
      if (!co_await fill()) co_return std::string();
    }
    co_return std::string();
  }

  // Everything until the server closes.
  Task<std::string> until_eof() {
    for (int guard = 0; guard < 100000 && co_await fill();) ++guard;
    co_return std::exchange(in, std::string());
  }
};

int status_of(std::string_view response) {
  if (response.size() < 12 || !response.starts_with("HTTP/1.1 ")) return 0;
  return std::atoi(std::string(response.substr(9, 3)).c_str());
}

std::string_view body_of(std::string_view response) {
  std::size_t at = response.find("\r\n\r\n");
  return at == std::string_view::npos ? std::string_view() : response.substr(at + 4);
}

// Awaits server.serve(listener) inside a scope published through `scope`, so that a test can cancel the task
// awaiting serve(); `cancelled` records that serve() ended with weft::Cancelled.
Task<void> serve_in_scope(http::Server& server, io::Listener& listener, io::TaskGroup*& scope, bool& cancelled) {
  co_await io::task_group([&](io::TaskGroup& s) -> Task<void> {
    scope = &s;
    try {
      co_await server.serve(listener);
    } catch (const weft::Cancelled&) {
      cancelled = true;
      throw;
    }
  });
}

bool closes(std::string_view response) { return response.find("Connection: close\r\n") != std::string_view::npos; }

http::Response echo_path(const http::Request& req) { return http::Response::text(200, std::string(req.target())); }

class HttpServer : public ::testing::TestWithParam<io::Backend> {
 protected:
  // Runs body(server, port) beside server.serve() on a loop of the parameter's backend; stops the server after
  // the body. A generous time limit turns a hang into a failure.
  template <class Handler, class Body>
  void with_server(Handler handler, http::ServerOptions options, Body body) {
    io::LoopOptions lo;
    lo.backend = GetParam();
    io::run(
        [&]() -> Task<void> {
          http::Server server(std::move(handler), options);
          io::Listener listener = io::Listener::bind(io::Address::loopback(0));
          const std::uint16_t port = listener.local_address().port();
          co_await io::wait_for(io::task_group([&](io::TaskGroup& g) -> Task<void> {
                                  g.spawn(server.serve(listener));
                                  co_await body(server, port);
                                  server.stop();
                                }),
                                30s);
        }(),
        lo);
  }
};

http::ServerOptions quiet_options() {
  http::ServerOptions o;
  o.on_handler_error = [](std::exception_ptr) {};
  return o;
}

}  // namespace

TEST_P(HttpServer, KeepAliveServesSeveralRequestsOnOneConnection) {
  with_server(echo_path, quiet_options(), [](http::Server& server, std::uint16_t port) -> Task<void> {
    Client c = co_await Client::connect(port);
    for (int i = 0; i < 3; ++i) {
      std::string path = "/page" + std::to_string(i);
      co_await c.send("GET " + path + " HTTP/1.1\r\nHost: t\r\n\r\n");
      std::string r = co_await c.response();
      EXPECT_EQ(status_of(r), 200);
      EXPECT_EQ(body_of(r), path);
      EXPECT_FALSE(closes(r));
      EXPECT_NE(r.find("Content-Type: text/plain"), std::string::npos);
    }
    EXPECT_EQ(server.stats().connections_accepted, 1u);
    EXPECT_EQ(server.stats().requests, 3u);
  });
}

TEST_P(HttpServer, PipelinedRequestsAreAnsweredInOrder) {
  with_server(echo_path, quiet_options(), [](http::Server&, std::uint16_t port) -> Task<void> {
    Client c = co_await Client::connect(port);
    std::string batch;
    for (int i = 0; i < 20; ++i) batch += "GET /" + std::to_string(i) + " HTTP/1.1\r\nHost: t\r\n\r\n";
    batch += "POST /body HTTP/1.1\r\nContent-Length: 4\r\n\r\nabcdGET /last HTTP/1.1\r\n\r\n";
    co_await c.send(batch);
    for (int i = 0; i < 20; ++i) EXPECT_EQ(body_of(co_await c.response()), "/" + std::to_string(i));
    EXPECT_EQ(body_of(co_await c.response()), "/body");
    EXPECT_EQ(body_of(co_await c.response()), "/last");
  });
}

TEST_P(HttpServer, ManyPipelinedRequestsPassTheQueueBound) {
  http::ServerOptions o = quiet_options();
  o.max_pipelined = 4;  // the output is written every 4 responses: the answers must still all come, in order
  with_server(echo_path, o, [](http::Server&, std::uint16_t port) -> Task<void> {
    Client c = co_await Client::connect(port);
    std::string batch;
    for (int i = 0; i < 50; ++i) batch += "GET /" + std::to_string(i) + " HTTP/1.1\r\n\r\n";
    co_await c.send(batch);
    for (int i = 0; i < 50; ++i) EXPECT_EQ(body_of(co_await c.response()), "/" + std::to_string(i));
  });
}

TEST_P(HttpServer, Http10ClosesUnlessKeepAliveIsAsked) {
  with_server(echo_path, quiet_options(), [](http::Server&, std::uint16_t port) -> Task<void> {
    Client old = co_await Client::connect(port);
    co_await old.send("GET /old HTTP/1.0\r\n\r\n");
    std::string all = co_await old.until_eof();
    EXPECT_EQ(status_of(all), 200);
    EXPECT_TRUE(closes(all));
    EXPECT_EQ(body_of(all), "/old");

    Client kept = co_await Client::connect(port);
    co_await kept.send("GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    std::string r = co_await kept.response();
    EXPECT_NE(r.find("Connection: keep-alive\r\n"), std::string::npos);
    co_await kept.send("GET /b HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    EXPECT_EQ(body_of(co_await kept.response()), "/b");

    Client closing = co_await Client::connect(port);
    co_await closing.send("GET /c HTTP/1.1\r\nConnection: close\r\n\r\n");
    std::string last = co_await closing.until_eof();
    EXPECT_TRUE(closes(last));
    EXPECT_EQ(body_of(last), "/c");
  });
}

TEST_P(HttpServer, ChunkedBodyArrivesDecoded) {
  auto echo_body = [](const http::Request& req) {
    return http::Response::text(200, std::string(req.method()) + ":" + req.body());
  };
  with_server(echo_body, quiet_options(), [](http::Server&, std::uint16_t port) -> Task<void> {
    Client c = co_await Client::connect(port);
    co_await c.send("POST /up HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki");
    co_await c.send("\r\n5\r\npedia\r\n");
    co_await c.send("0\r\n\r\n");
    EXPECT_EQ(body_of(co_await c.response()), "POST:Wikipedia");
  });
}

TEST_P(HttpServer, HeadAnswersWithoutBodyAndExpectContinueGetsA100) {
  auto fixed = [](const http::Request& req) { return http::Response::text(200, "body:" + req.body()); };
  with_server(fixed, quiet_options(), [](http::Server&, std::uint16_t port) -> Task<void> {
    Client c = co_await Client::connect(port);
    co_await c.send("HEAD / HTTP/1.1\r\n\r\n");
    // The HEAD answer has Content-Length: 5 but no body: read its head, then check no byte follows it by
    // sending the next request and finding its answer right after.
    co_await c.send("PUT /f HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n");
    for (int guard = 0; guard < 100 && c.in.find("100 Continue") == std::string::npos; ++guard) {
      if (!co_await c.fill()) break;
    }
    std::size_t head_end = c.in.find("\r\n\r\n");
    EXPECT_NE(head_end, std::string::npos);
    if (head_end == std::string::npos) co_return;
    std::string head = c.in.substr(0, head_end + 4);
    EXPECT_EQ(status_of(head), 200);
    EXPECT_NE(head.find("Content-Length: 5\r\n"), std::string::npos);
    EXPECT_TRUE(c.in.substr(head_end + 4).starts_with("HTTP/1.1 100 Continue\r\n\r\n"));
    c.in.clear();
    co_await c.send("abc");
    EXPECT_EQ(body_of(co_await c.response()), "body:abc");
  });
}

TEST_P(HttpServer, OversizedHeadIs431AndOversizedBodyIs413) {
  http::ServerOptions o = quiet_options();
  o.limits.max_header_bytes = 512;
  o.limits.max_body_bytes = 100;
  with_server(echo_path, o, [](http::Server& server, std::uint16_t port) -> Task<void> {
    Client big_head = co_await Client::connect(port);
    co_await big_head.send("GET / HTTP/1.1\r\nX-Big: " + std::string(600, 'h') + "\r\n\r\n");
    std::string r1 = co_await big_head.until_eof();
    EXPECT_EQ(status_of(r1), 431);
    EXPECT_TRUE(closes(r1));

    Client big_body = co_await Client::connect(port);
    co_await big_body.send("POST / HTTP/1.1\r\nContent-Length: 101\r\n\r\n");
    std::string r2 = co_await big_body.until_eof();
    EXPECT_EQ(status_of(r2), 413);

    Client big_chunks = co_await Client::connect(port);
    co_await big_chunks.send("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n64\r\n" + std::string(100, 'x') +
                             "\r\n1\r\nx\r\n0\r\n\r\n");
    EXPECT_EQ(status_of(co_await big_chunks.until_eof()), 413);

    EXPECT_EQ(server.stats().headers_too_large, 1u);
    EXPECT_EQ(server.stats().bodies_too_large, 2u);
  });
}

TEST_P(HttpServer, MalformedRequestIs400WhileOtherConnectionsAreServed) {
  with_server(echo_path, quiet_options(), [](http::Server& server, std::uint16_t port) -> Task<void> {
    Client good = co_await Client::connect(port);
    co_await good.send("GET /before HTTP/1.1\r\n\r\n");
    EXPECT_EQ(body_of(co_await good.response()), "/before");

    Client bad = co_await Client::connect(port);
    co_await bad.send("THIS IS NOT HTTP\r\n\r\n");
    std::string r = co_await bad.until_eof();
    EXPECT_EQ(status_of(r), 400);
    EXPECT_TRUE(closes(r));

    co_await good.send("GET /after HTTP/1.1\r\n\r\n");
    EXPECT_EQ(body_of(co_await good.response()), "/after");
    Client next = co_await Client::connect(port);
    co_await next.send("GET /new HTTP/1.1\r\n\r\n");
    EXPECT_EQ(body_of(co_await next.response()), "/new");
    EXPECT_EQ(server.stats().bad_requests, 1u);
  });
}

TEST_P(HttpServer, SlowLorisIsDroppedAfterTheHeaderTimeout) {
  http::ServerOptions o = quiet_options();
  o.header_timeout = 200ms;
  with_server(echo_path, o, [](http::Server& server, std::uint16_t port) -> Task<void> {
    // A partial head, then nothing.
    auto start = std::chrono::steady_clock::now();  // before the connection: its head's clock starts later
    Client stalled = co_await Client::connect(port);
    co_await stalled.send("GET / HTTP/1.1\r\nHost: slow\r\n");
    std::string r = co_await stalled.until_eof();  // the server must end it
    EXPECT_GE(std::chrono::steady_clock::now() - start, 190ms);
    EXPECT_EQ(status_of(r), 408);

    // A head trickled a byte at a time, each read well within the timeout: the whole head's deadline still ends
    // it (a per-read timeout would not).
    Client trickler = co_await Client::connect(port);
    bool closed = false;
    co_await io::task_group([&](io::TaskGroup& g) -> Task<void> {
      g.spawn([](Client& c, bool& done) -> Task<void> {
        co_await c.until_eof();
        done = true;
      }(trickler, closed));
      const std::string head = "GET / HTTP/1.1\r\nX-Slow: " + std::string(1000, 's');
      for (std::size_t i = 0; i < head.size() && !closed; ++i) {
        try {
          co_await trickler.send(head.substr(i, 1));
        } catch (const io::IoError&) {
          break;  // the server has closed
        }
        co_await io::sleep(20ms);  // the slowness under test
      }
    });
    EXPECT_TRUE(closed);
    EXPECT_EQ(server.stats().timeouts, 2u);
  });
}

TEST_P(HttpServer, IdleKeepAliveConnectionIsClosedAfterTheIdleTimeout) {
  http::ServerOptions o = quiet_options();
  o.idle_timeout = 200ms;
  with_server(echo_path, o, [](http::Server& server, std::uint16_t port) -> Task<void> {
    Client c = co_await Client::connect(port);
    auto start = std::chrono::steady_clock::now();  // before the request: the idle clock starts after its answer
    co_await c.send("GET /once HTTP/1.1\r\n\r\n");
    EXPECT_EQ(body_of(co_await c.response()), "/once");
    EXPECT_EQ(co_await c.until_eof(), "");  // closed without a word
    EXPECT_GE(std::chrono::steady_clock::now() - start, 190ms);
    EXPECT_EQ(server.stats().idle_closed, 1u);
  });
}

TEST_P(HttpServer, BeyondMaxConnectionsNewOnesGet503) {
  http::ServerOptions o = quiet_options();
  o.max_connections = 2;
  with_server(echo_path, o, [](http::Server& server, std::uint16_t port) -> Task<void> {
    Client a = co_await Client::connect(port);
    Client b = co_await Client::connect(port);
    for (Client* c : {&a, &b}) {  // both are served (and so counted as open)
      co_await c->send("GET /x HTTP/1.1\r\n\r\n");
      EXPECT_EQ(status_of(co_await c->response()), 200);
    }
    Client extra = co_await Client::connect(port);
    co_await extra.send("GET /x HTTP/1.1\r\n\r\n");
    std::string r = co_await extra.until_eof();
    EXPECT_EQ(status_of(r), 503);
    EXPECT_TRUE(closes(r));
    EXPECT_EQ(server.stats().connections_rejected, 1u);
    EXPECT_EQ(server.stats().connections_open, 2u);
    co_await a.send("GET /still HTTP/1.1\r\n\r\n");  // the open ones are unaffected
    EXPECT_EQ(body_of(co_await a.response()), "/still");
  });
}

TEST_P(HttpServer, HandlerExceptionIs500AndTheConnectionSurvives) {
  int reported = 0;
  http::ServerOptions o;
  o.on_handler_error = [&](std::exception_ptr e) {
    ++reported;
    EXPECT_THROW(std::rethrow_exception(e), std::runtime_error);
  };
  auto handler = [](const http::Request& req) -> http::Response {
    if (req.path() == "/boom") throw std::runtime_error("secret detail");
    return http::Response::text(200, "fine");
  };
  with_server(handler, o, [&](http::Server& server, std::uint16_t port) -> Task<void> {
    Client c = co_await Client::connect(port);
    co_await c.send("GET /boom HTTP/1.1\r\n\r\n");
    std::string r = co_await c.response();
    EXPECT_EQ(status_of(r), 500);
    EXPECT_EQ(r.find("secret"), std::string::npos);
    EXPECT_FALSE(closes(r));
    co_await c.send("GET /ok HTTP/1.1\r\n\r\n");
    EXPECT_EQ(body_of(co_await c.response()), "fine");
    EXPECT_EQ(server.stats().handler_errors, 1u);
    EXPECT_EQ(reported, 1);
  });
}

TEST_P(HttpServer, AsyncHandlerAwaitsSleepAndAThreadPoolFuture) {
  weft::ThreadPool pool(2);
  int reported = 0;
  http::ServerOptions o;
  o.on_handler_error = [&](std::exception_ptr) { ++reported; };
  auto handler = [&pool](const http::Request& req) -> Task<http::Response> {
    co_await io::sleep(5ms);
    if (req.path() == "/fail") throw std::runtime_error("async failure");
    std::string path(req.path());
    // The future is made in its own statement: g++ 12 mis-copies a lambda temporary that captures a string when
    // it is built inside the co_await expression itself.
    weft::Future<std::size_t> work = pool.submit([path] { return path.size() * 10; });
    std::size_t n = co_await std::move(work);
    co_return http::Response::text(200, path + "=" + std::to_string(n));
  };
  with_server(handler, o, [&](http::Server&, std::uint16_t port) -> Task<void> {
    std::vector<std::string> got(4);
    co_await io::task_group([&](io::TaskGroup& g) -> Task<void> {
      for (int i = 0; i < 4; ++i) {
        g.spawn([](std::uint16_t p, int k, std::string& out) -> Task<void> {
          Client c = co_await Client::connect(p);
          co_await c.send("GET /c" + std::to_string(k) + " HTTP/1.1\r\n\r\nGET /fail HTTP/1.1\r\n\r\n");
          out = std::string(body_of(co_await c.response()));
          EXPECT_EQ(status_of(co_await c.response()), 500);
        }(port, i, got[i]));
      }
      co_return;
    });
    for (int i = 0; i < 4; ++i) EXPECT_EQ(got[i], "/c" + std::to_string(i) + "=30");
  });
  EXPECT_EQ(reported, 4);
}

TEST_P(HttpServer, GracefulShutdownFinishesInFlightRequestsAndClosesIdleOnes) {
  weft::Promise<void> started;
  weft::Future<void> started_future = started.get_future();
  weft::Promise<void> gate;
  weft::Future<void> gate_future = gate.get_future();
  auto handler = [&](const http::Request& req) -> Task<http::Response> {
    if (req.path() == "/slow") {
      started.set_value();
      co_await std::move(gate_future);
    }
    co_return http::Response::text(200, std::string(req.path()));
  };
  io::LoopOptions lo;
  lo.backend = GetParam();
  io::run(
      [&]() -> Task<void> {
        http::Server server(handler, quiet_options());
        io::Listener listener = io::Listener::bind(io::Address::loopback(0));
        const std::uint16_t port = listener.local_address().port();
        io::TaskGroup* serve_scope = nullptr;
        bool serve_cancelled = false;
        co_await io::wait_for(
            io::task_group([&](io::TaskGroup& g) -> Task<void> {
              g.spawn(serve_in_scope(server, listener, serve_scope, serve_cancelled));
              Client idle = co_await Client::connect(port);
              co_await idle.send("GET /quick HTTP/1.1\r\n\r\n");
              EXPECT_EQ(body_of(co_await idle.response()), "/quick");
              Client busy = co_await Client::connect(port);
              co_await busy.send("GET /slow HTTP/1.1\r\n\r\n");
              co_await std::move(started_future);  // the slow request is in the handler

              EXPECT_NE(serve_scope, nullptr);
              if (serve_scope != nullptr) serve_scope->cancel();  // cancel the task awaiting serve()
              EXPECT_EQ(co_await idle.until_eof(), "");          // the idle connection is closed at once
              gate.set_value();                                   // let the slow request finish
              std::string r = co_await busy.until_eof();
              EXPECT_EQ(status_of(r), 200);
              EXPECT_EQ(body_of(r), "/slow");
              EXPECT_TRUE(closes(r));
            }),
            30s);
        EXPECT_TRUE(serve_cancelled);
        EXPECT_EQ(server.stats().connections_open, 0u);
      }(),
      lo);
}

TEST_P(HttpServer, DrainTimeoutCancelsHandlersThatDoNotFinish) {
  weft::Promise<void> never;  // set only after the test, so the handler waits until cancelled
  weft::Promise<void> started;
  weft::Future<void> started_future = started.get_future();
  bool handler_cancelled = false;
  auto handler = [&](const http::Request&) -> Task<http::Response> {
    started.set_value();
    try {
      co_await never.get_future();
    } catch (const weft::Cancelled&) {
      handler_cancelled = true;
      throw;
    }
    co_return http::Response::text(200, "unreachable");
  };
  http::ServerOptions o = quiet_options();
  o.drain_timeout = 100ms;
  with_server(handler, o, [&](http::Server& server, std::uint16_t port) -> Task<void> {
    Client c = co_await Client::connect(port);
    co_await c.send("GET /stuck HTTP/1.1\r\n\r\n");
    co_await std::move(started_future);
    server.stop();
    EXPECT_EQ(co_await c.until_eof(), "");  // cancelled after the drain timeout: closed without an answer
  });
  EXPECT_TRUE(handler_cancelled);
}

TEST_P(HttpServer, PrebuiltResponsesAreWrittenAsTheyAre) {
  static constexpr std::string_view kBytes =
      "HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nHello, world!";
  auto handler = [](const http::Request&) { return http::Response::prebuilt(kBytes); };
  with_server(handler, quiet_options(), [](http::Server&, std::uint16_t port) -> Task<void> {
    Client c = co_await Client::connect(port);
    co_await c.send("GET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n");
    EXPECT_EQ(co_await c.response(), kBytes);
    EXPECT_EQ(co_await c.response(), kBytes);
  });
}

INSTANTIATE_TEST_SUITE_P(Backends, HttpServer, ::testing::Values(io::Backend::uring, io::Backend::epoll),
                         [](const ::testing::TestParamInfo<io::Backend>& param) {
                           return std::string(io::to_string(param.param));
                         });
