// io::serve: parked connections — echo through many connections, the idle sweep, the connection limit,
// handler failures that close only their connection, and the stop protocol (serve.hpp) with connections
// parked and handlers mid-await.
#include "io_test_support.hpp"
#include "weft/io/serve.hpp"

namespace weft::test::iotest {
namespace {

class Serve : public BackendTest {};
WEFT_IO_INSTANTIATE(Serve);

io::Task<io::Next> echo_handler(io::Stream& s, io::Buffer data) {
  co_await s.write_all(data.view());
  co_return io::Next::keep;
}

// One client: `rounds` round trips of a message naming the client and the round.
io::Task<void> echo_client(io::Address at, int id, int rounds) {
  io::Stream c = co_await io::Stream::connect(at);
  for (int r = 0; r < rounds; ++r) {
    std::string msg = "client " + std::to_string(id) + " round " + std::to_string(r);
    co_await c.write_all(msg);
    std::string back = co_await read_up_to(c, msg.size());
    EXPECT_EQ(back, msg);
  }
}

TEST_P(Serve, EchoesThroughManyConnectionsAndCountsThem) {
  io::ServeStats stats;
  run([](io::ServeStats& st) -> io::Task<void> {
    io::Listener l = loopback_listener();
    co_await io::task_group([&](io::TaskGroup& g) -> io::Task<void> {
      g.spawn(io::serve(l, echo_handler, {}, &st));
      std::vector<io::Task<void>> clients;
      for (int i = 0; i < 100; ++i) clients.push_back(echo_client(l.local_address(), i, 5));
      co_await io::gather(std::move(clients));
      EXPECT_EQ(st.accepted, 100u);
      EXPECT_EQ(st.handled, 500u);  // each round trip is one wake-up: the client waits for the answer
      g.cancel();
    });
  }(stats));
  EXPECT_EQ(stats.open, 0u);
  EXPECT_EQ(stats.failed, 0u);
}

TEST_P(Serve, HandlerMayReadMoreBeforeAnswering) {
  // A length-prefixed protocol: the first byte says how many bytes follow; the handler reads the rest itself.
  run([]() -> io::Task<void> {
    io::Listener l = loopback_listener();
    auto handler = [](io::Stream& s, io::Buffer data) -> io::Task<io::Next> {
      std::string msg(data.view());
      data.reset();
      const std::size_t want = static_cast<unsigned char>(msg[0]) + 1u;
      while (msg.size() < want) {
        io::Buffer more = co_await s.read_some();
        if (more.empty()) co_return io::Next::close;
        msg.append(more.view());
      }
      co_await s.write_all(std::string_view(msg).substr(1));
      co_return io::Next::keep;
    };
    co_await io::task_group([&](io::TaskGroup& g) -> io::Task<void> {
      g.spawn(io::serve(l, handler));
      io::Stream c = co_await io::Stream::connect(l.local_address());
      std::string body(200, 'x');
      co_await c.write_all(std::string(1, static_cast<char>(body.size())) + body.substr(0, 50));
      co_await io::sleep(5ms);  // the work under test: the rest arrives later, while the handler waits
      co_await c.write_all(body.substr(50));
      EXPECT_EQ(co_await read_up_to(c, body.size()), body);
      g.cancel();
    });
  }());
}

TEST_P(Serve, IdleConnectionsAreClosedAfterTheTimeout) {
  io::ServeStats stats;
  run([](io::ServeStats& st) -> io::Task<void> {
    io::Listener l = loopback_listener();
    co_await io::task_group([&](io::TaskGroup& g) -> io::Task<void> {
      g.spawn(io::serve(l, echo_handler, io::ServeOptions{.idle_timeout = 200ms}, &st));
      io::Stream quiet = co_await io::Stream::connect(l.local_address());
      io::Stream busy = co_await io::Stream::connect(l.local_address());
      co_await busy.write_all(std::string_view("ping"));
      EXPECT_EQ(co_await read_up_to(busy, 4), "ping");
      // The quiet connection sends nothing: the server closes it (the read below sees the end of stream).
      char b;
      EXPECT_EQ(co_await quiet.read(&b, 1), 0u);
      EXPECT_GE(st.idle_closed, 1u);
      g.cancel();
    });
  }(stats));
}

TEST_P(Serve, ConnectionsBeyondTheLimitAreClosedAtOnce) {
  io::ServeStats stats;
  run([](io::ServeStats& st) -> io::Task<void> {
    io::Listener l = loopback_listener();
    co_await io::task_group([&](io::TaskGroup& g) -> io::Task<void> {
      g.spawn(io::serve(l, echo_handler, io::ServeOptions{.max_connections = 2}, &st));
      io::Stream a = co_await io::Stream::connect(l.local_address());
      io::Stream b = co_await io::Stream::connect(l.local_address());
      co_await a.write_all(std::string_view("a"));
      co_await b.write_all(std::string_view("b"));
      EXPECT_EQ(co_await read_up_to(a, 1), "a");  // both served: the server has accepted them
      EXPECT_EQ(co_await read_up_to(b, 1), "b");
      io::Stream c = co_await io::Stream::connect(l.local_address());
      char x;
      EXPECT_EQ(co_await c.read(&x, 1), 0u);  // closed without a word
      EXPECT_EQ(st.rejected, 1u);
      EXPECT_EQ(st.open, 2u);
      // Once one closes, a new connection is served again.
      a.close();
      EXPECT_TRUE(co_await yield_until([&] { return st.open < 2; }));  // the server notices a's end
      io::Stream d = co_await io::Stream::connect(l.local_address());
      co_await d.write_all(std::string_view("d"));
      EXPECT_EQ(co_await read_up_to(d, 1), "d");
      g.cancel();
    });
  }(stats));
}

TEST_P(Serve, AFailingHandlerClosesOnlyItsConnection) {
  CapturingHandler reports;
  io::ServeStats stats;
  run([](io::ServeStats& st) -> io::Task<void> {
    io::Listener l = loopback_listener();
    auto handler = [](io::Stream& s, io::Buffer data) -> io::Task<io::Next> {
      if (data.view() == "boom") throw TestError(7);
      co_await s.write_all(data.view());
      co_return io::Next::keep;
    };
    co_await io::task_group([&](io::TaskGroup& g) -> io::Task<void> {
      g.spawn(io::serve(l, handler, {}, &st));
      io::Stream bad = co_await io::Stream::connect(l.local_address());
      io::Stream good = co_await io::Stream::connect(l.local_address());
      co_await bad.write_all(std::string_view("boom"));
      char b;
      EXPECT_EQ(co_await bad.read(&b, 1), 0u);
      co_await good.write_all(std::string_view("fine"));
      EXPECT_EQ(co_await read_up_to(good, 4), "fine");
      g.cancel();
    });
  }(stats));
  EXPECT_EQ(stats.failed, 1u);
  auto r = reports.reports();
  ASSERT_EQ(r.size(), 1u);
  EXPECT_NE(r[0].what.find("test error 7"), std::string::npos);
}

TEST_P(Serve, NextCloseClosesTheConnection) {
  run([]() -> io::Task<void> {
    io::Listener l = loopback_listener();
    auto once = [](io::Stream& s, io::Buffer data) -> io::Task<io::Next> {
      co_await s.write_all(data.view());
      co_return io::Next::close;
    };
    co_await io::task_group([&](io::TaskGroup& g) -> io::Task<void> {
      g.spawn(io::serve(l, once));
      io::Stream c = co_await io::Stream::connect(l.local_address());
      co_await c.write_all(std::string_view("bye"));
      EXPECT_EQ(co_await read_to_end(c), "bye");
      g.cancel();
    });
  }());
}

TEST_P(Serve, StopClosesParkedAndBusyConnectionsAndLeaksNothing) {
  const int fds_before = open_fd_count();
  io::ServeStats stats;
  run([](io::ServeStats& st) -> io::Task<void> {
    io::Listener l = loopback_listener();
    auto slow = [](io::Stream& s, io::Buffer data) -> io::Task<io::Next> {
      if (data.view() == "slow") co_await io::sleep(10s);  // cancelled by the stop, long before 10 s
      co_await s.write_all(data.view());
      co_return io::Next::keep;
    };
    std::vector<io::Stream> clients;
    co_await io::task_group([&](io::TaskGroup& g) -> io::Task<void> {
      g.spawn(io::serve(l, slow, {}, &st));
      for (int i = 0; i < 50; ++i) {
        clients.push_back(co_await io::Stream::connect(l.local_address()));
        co_await clients.back().write_all(std::string_view("hi"));
        EXPECT_EQ(co_await read_up_to(clients.back(), 2), "hi");  // parked again after answering
      }
      co_await clients[0].write_all(std::string_view("slow"));
      EXPECT_TRUE(co_await yield_until([&] { return st.handled == 51; }));
      g.cancel();  // serve stops: parked reads cancelled, the slow handler cancelled
    });
    EXPECT_EQ(st.open, 0u);
    for (auto& c : clients) {  // every connection was closed by the server
      char b;
      EXPECT_EQ(co_await c.read(&b, 1), 0u);
    }
  }(stats));
  EXPECT_EQ(open_fd_count(), fds_before);
}

}  // namespace
}  // namespace weft::test::iotest
