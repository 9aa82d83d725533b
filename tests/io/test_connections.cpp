// Many connections on one loop: 1,000 concurrent echo clients, and clean shutdown of servers holding open
// connections in the middle of reads (a cancelled server group; spawned servers at the end of run()), with no
// descriptor left open afterwards.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "io_test_support.hpp"

namespace {

using namespace weft::test::iotest;
using weft::Cancelled;

class IoConnections : public BackendTest {};
WEFT_IO_INSTANTIATE(IoConnections);

constexpr std::size_t kMessage = 64;

// Echoes fixed-size messages until the end of the stream.
io::Task<void> echo_connection(io::Stream s) {
  std::string buf(kMessage, '\0');
  for (;;) {
    std::size_t n = co_await s.read(buf.data(), buf.size());
    if (n == 0) co_return;
    co_await s.write_all(std::string_view(buf.data(), n));
  }
}

io::Task<void> echo_server(io::Listener& listener, int connections) {
  co_await io::task_group([&](io::TaskGroup& g) -> io::Task<void> {
    for (int i = 0; i < connections; ++i) g.spawn(echo_connection(co_await listener.accept()));
  });
}

io::Task<void> echo_client(io::Address to, int id, int rounds, int& completed) {
  io::Stream s = co_await io::Stream::connect(to);
  for (int r = 0; r < rounds; ++r) {
    std::string msg = "client " + std::to_string(id) + " round " + std::to_string(r);
    msg.resize(kMessage, '.');
    co_await s.write_all(msg);
    std::string back(kMessage, '\0');
    co_await s.read_exact(std::as_writable_bytes(std::span(back.data(), back.size())));
    EXPECT_EQ(back, msg);
    ++completed;
  }
  s.shutdown_write();
  char c;
  std::size_t n = co_await s.read(&c, 1);
  EXPECT_EQ(n, 0u);
}

TEST_P(IoConnections, ThousandConcurrentEchoConnections) {
  constexpr int kConnections = 1000;
  const int rounds = static_cast<int>(scaled(5, 3));
  ScopedFdLimit limit(2 * kConnections + 256);
  if (!limit.ok())
    GTEST_SKIP() << "RLIMIT_NOFILE's hard limit (" << limit.hard() << ") is below the " << 2 * kConnections + 256
                 << " descriptors this test needs";
  const int fds_before = open_fd_count();
  int completed = 0;
  run(
      [](int rnds, int& done) -> io::Task<void> {
        io::Listener listener = loopback_listener();
        co_await io::task_group([&](io::TaskGroup& g) -> io::Task<void> {
          g.spawn(echo_server(listener, kConnections));
          for (int i = 0; i < kConnections; ++i) g.spawn(echo_client(listener.local_address(), i, rnds, done));
          co_return;
        });
        EXPECT_EQ(io::Loop::current()->stats().buffers_in_use, 0u);
      }(rounds, completed),
      {}, std::chrono::seconds(120));
  EXPECT_EQ(completed, kConnections * rounds);
  EXPECT_EQ(open_fd_count(), fds_before) << "descriptors leaked";
}

// A server that accepts `connections` and reads from each (nothing is ever sent), counting the handlers that
// are waiting and those that were cancelled. `self` lets the test cancel the server's group.
io::Task<void> reading_server(io::Listener& listener, int connections, io::TaskGroup*& self, int& waiting,
                              int& cancelled) {
  co_await io::task_group([&](io::TaskGroup& g) -> io::Task<void> {
    self = &g;
    for (int i = 0; i < connections; ++i) {
      g.spawn([](io::Stream s, bool pooled, int& w, int& c) -> io::Task<void> {
        ++w;
        try {
          if (pooled) {
            io::Buffer b = co_await s.read_some();
          } else {
            char buf[256];
            co_await s.read(buf, sizeof buf);
          }
        } catch (const Cancelled&) {
          ++c;
          throw;
        }
      }(co_await listener.accept(), i % 2 == 0, waiting, cancelled));
    }
  });
}

TEST_P(IoConnections, CancellingAServerGroupClosesEveryConnection) {
  const int n = static_cast<int>(scaled(300, 100));
  ScopedFdLimit limit(2 * n + 256);
  if (!limit.ok()) GTEST_SKIP() << "RLIMIT_NOFILE's hard limit (" << limit.hard() << ") is too low";
  const int fds_before = open_fd_count();  // before the loop exists: its own descriptors must go too
  int waiting = 0;
  int cancelled = 0;
  run([](int count, int& w, int& c) -> io::Task<void> {
    io::Listener listener = loopback_listener();
    std::vector<io::Stream> clients;
    io::TaskGroup* server = nullptr;
    co_await io::task_group([&](io::TaskGroup& g) -> io::Task<void> {
      g.spawn(reading_server(listener, count, server, w, c));
      for (int i = 0; i < count; ++i) clients.push_back(co_await io::Stream::connect(listener.local_address()));
      bool all_waiting = co_await yield_until([&] { return w == count; }, 100'000);
      EXPECT_TRUE(all_waiting);
      co_await io::sleep(0ms);  // one more turn: the loop submits what the waiters asked for
      server->cancel();
    });
    EXPECT_EQ(c, count) << "not every pending read was cancelled";
    EXPECT_EQ(io::Loop::current()->stats().buffers_in_use, 0u);
    // The server's ends are closed: every client reads the end of the stream.
    int eofs = 0;
    for (auto& s : clients) {
      char ch;
      std::size_t got = co_await s.read(&ch, 1);
      if (got == 0) ++eofs;
    }
    EXPECT_EQ(eofs, count);
  }(n, waiting, cancelled));
  EXPECT_EQ(waiting, n);
  EXPECT_EQ(cancelled, n);
  EXPECT_EQ(open_fd_count(), fds_before) << "descriptors leaked";
}

io::Task<void> background_server(io::Listener listener, int connections, int& waiting, int& cancelled) {
  io::TaskGroup* self = nullptr;
  co_await reading_server(listener, connections, self, waiting, cancelled);
}

TEST_P(IoConnections, SpawnedServerIsShutDownWhenRunEnds) {
  const int n = static_cast<int>(scaled(200, 50));
  ScopedFdLimit limit(2 * n + 256);
  if (!limit.ok()) GTEST_SKIP() << "RLIMIT_NOFILE's hard limit (" << limit.hard() << ") is too low";
  const int fds_before = open_fd_count();
  int waiting = 0;
  int cancelled = 0;
  {
    io::Loop loop(options());
    expect_backend(loop);
    // The clients outlive the main task (they are destroyed before the loop): closing them would end the
    // server's reads with the end of the stream instead of the cancellation under test.
    std::vector<io::Stream> clients;
    loop.run(io::wait_for(
        [](int count, std::vector<io::Stream>& cl, int& w, int& c) -> io::Task<void> {
          io::Listener listener = loopback_listener();
          io::Address at = listener.local_address();
          // The server owns its listener: it outlives this task, until run() cancels it.
          io::Loop::current()->spawn(background_server(std::move(listener), count + 1, w, c));
          for (int i = 0; i < count; ++i) cl.push_back(co_await io::Stream::connect(at));
          bool all_waiting = co_await yield_until([&] { return w == count; }, 100'000);
          EXPECT_TRUE(all_waiting);
          co_await io::sleep(0ms);  // one more turn: the loop submits what the waiters asked for
          // Returning ends run(): the server (in accept) and its connections (in reads) are cancelled.
        }(n, clients, waiting, cancelled),
        kScenarioLimit));
    EXPECT_EQ(waiting, n);
    EXPECT_EQ(cancelled, n);
    EXPECT_EQ(loop.stats().buffers_in_use, 0u);
    // The loop runs again: the server's ends were closed, every client reads the end of the stream.
    int eofs = loop.run([](std::vector<io::Stream>& cl) -> io::Task<int> {
      int e = 0;
      for (auto& s : cl) {
        char ch;
        std::size_t got = co_await io::wait_for(s.read(&ch, 1), 10s);
        if (got == 0) ++e;
      }
      co_return e;
    }(clients));
    EXPECT_EQ(eofs, n);
  }
  EXPECT_EQ(open_fd_count(), fds_before) << "descriptors leaked";
}

}  // namespace
