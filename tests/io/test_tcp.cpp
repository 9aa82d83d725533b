// TCP streams and listeners: echo, end of stream, read_exact, back-pressure of write_all, half-close, peer
// reset, refused and timed-out connects, cancellation of reads, connects and accepts, per-read timeouts, the
// pooled read buffers (and their exhaustion), closing a stream under a pending read, addresses.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "io_test_support.hpp"

namespace {

using namespace weft::test::iotest;
using weft::Cancelled;
using Clock = std::chrono::steady_clock;

class IoTcp : public BackendTest {};
WEFT_IO_INSTANTIATE(IoTcp);

std::span<std::byte> writable(std::string& s) { return std::as_writable_bytes(std::span(s.data(), s.size())); }

// Accepts one connection and echoes it until the end of the stream.
io::Task<void> echo_one(io::Listener& listener) {
  io::Stream s = co_await listener.accept();
  char buf[4096];
  for (;;) {
    std::size_t n = co_await s.read(buf, sizeof buf);
    if (n == 0) break;
    co_await s.write_all(std::string_view(buf, n));
  }
}

TEST_P(IoTcp, EchoRoundTrip) {
  run([]() -> io::Task<void> {
    io::Listener listener = loopback_listener();
    io::Address addr = listener.local_address();
    EXPECT_EQ(addr.family(), AF_INET);
    EXPECT_NE(addr.port(), 0);
    EXPECT_EQ(addr.to_string(), "127.0.0.1:" + std::to_string(addr.port()));
    co_await io::task_group([&](io::TaskGroup& g) -> io::Task<void> {
      g.spawn(echo_one(listener));
      io::Stream c = co_await io::Stream::connect(addr);
      EXPECT_EQ(c.peer_address().to_string(), addr.to_string());
      for (std::string msg : {std::string("hello"), std::string("w"), std::string(100'000, 'q')}) {
        co_await c.write_all(msg);
        std::string back(msg.size(), '\0');
        co_await c.read_exact(writable(back));
        EXPECT_EQ(back, msg);
      }
      c.shutdown_write();
      std::string rest = co_await read_to_end(c);
      EXPECT_EQ(rest, "") << "the server wrote more than it was sent";
    });
  }());
}

TEST_P(IoTcp, ReadReturnsZeroAtTheEndOfTheStream) {
  run([]() -> io::Task<void> {
    StreamPair p = co_await tcp_pair();
    co_await p.client.write_all(std::string_view("last"));
    p.client.close();
    EXPECT_FALSE(p.client.is_open());
    std::string got = co_await read_up_to(p.server, 100);
    EXPECT_EQ(got, "last");
    char buf[8];
    std::size_t n = co_await p.server.read(buf, sizeof buf);
    EXPECT_EQ(n, 0u);
    n = co_await p.server.read(buf, sizeof buf);
    EXPECT_EQ(n, 0u) << "the end of the stream is not sticky";
    io::Buffer b = co_await p.server.read_some();
    EXPECT_TRUE(b.empty());
  }());
}

TEST_P(IoTcp, ReadExactAndEndOfStream) {
  run([]() -> io::Task<void> {
    StreamPair p = co_await tcp_pair();
    co_await p.client.write_all(std::string_view("abcde"));
    co_await p.client.write_all(std::string_view("fghij"));
    p.client.shutdown_write();
    std::string first(4, '\0');
    co_await p.server.read_exact(writable(first));
    EXPECT_EQ(first, "abcd");
    std::string rest(10, '\0');
    std::exception_ptr err = co_await error_of(p.server.read_exact(writable(rest)));
    EXPECT_TRUE(is_error<io::EndOfStream>(err));
    EXPECT_EQ(rest.substr(0, 6), "efghij") << "the bytes read before the end must be in the buffer";
  }());
}

TEST_P(IoTcp, WriteAllWaitsForASlowReaderAndDeliversIntact) {
  const std::size_t total = scaled(8u << 20, 4u << 20);
  std::string data(total, '\0');
  std::mt19937_64 rng(7);
  for (std::size_t i = 0; i + 8 <= total; i += 8) {
    std::uint64_t v = rng();
    std::memcpy(&data[i], &v, 8);
  }
  run([](const std::string& payload) -> io::Task<void> {
    StreamPair p = co_await tcp_pair();
    set_socket_buffers(p.client.native_handle(), 16 << 10);
    set_socket_buffers(p.server.native_handle(), 16 << 10);
    bool writer_done = false;
    std::size_t received = 0;
    std::size_t received_while_writer_waited = 0;
    std::uint64_t hash = fnv1a(nullptr, 0);
    co_await io::task_group([&](io::TaskGroup& g) -> io::Task<void> {
      g.spawn([](io::Stream& s, const std::string& d, bool& done) -> io::Task<void> {
        co_await s.write_all(d);
        done = true;
        s.shutdown_write();
      }(p.client, payload, writer_done));
      std::vector<char> buf(64 << 10);
      for (;;) {
        std::size_t n = co_await p.server.read(buf.data(), buf.size());
        if (n == 0) break;
        hash = fnv1a(buf.data(), n, hash);
        received += n;
        if (!writer_done) received_while_writer_waited += n;
        co_await io::sleep(500us);  // the slow reader: the work under test
      }
    });
    EXPECT_EQ(received, payload.size());
    EXPECT_EQ(hash, fnv1a(payload.data(), payload.size())) << "the data arrived damaged or out of order";
    EXPECT_GT(received_while_writer_waited, payload.size() / 2)
        << "write_all did not wait for the reader (was everything buffered in user space?)";
  }(data));
}

TEST_P(IoTcp, ShutdownWriteIsAHalfClose) {
  run([]() -> io::Task<void> {
    StreamPair p = co_await tcp_pair();
    co_await p.client.write_all(std::string_view("request"));
    p.client.shutdown_write();
    std::string req = co_await read_to_end(p.server);
    EXPECT_EQ(req, "request");
    co_await p.server.write_all(std::string_view("response"));
    p.server.close();
    std::string resp = co_await read_to_end(p.client);
    EXPECT_EQ(resp, "response") << "the half-closed side could no longer read";
  }());
}

TEST_P(IoTcp, PeerResetIsAnIoErrorOnRead) {
  run([]() -> io::Task<void> {
    StreamPair p = co_await tcp_pair();
    set_linger_zero(p.client.native_handle());
    p.client.close();  // sends RST
    char buf[16];
    std::exception_ptr err = co_await error_of(as_task(p.server.read(buf, sizeof buf)));
    EXPECT_TRUE(is_io_error(err, {ECONNRESET}));
  }());
}

TEST_P(IoTcp, PeerResetIsAnIoErrorOnWrite) {
  run([]() -> io::Task<void> {
    StreamPair p = co_await tcp_pair();
    set_linger_zero(p.client.native_handle());
    p.client.close();
    std::string big(1 << 20, 'x');
    std::exception_ptr err = co_await error_of([](io::Stream& s, const std::string& d) -> io::Task<void> {
      co_await s.write_all(d);
      co_await s.write_all(d);
    }(p.server, big));
    EXPECT_TRUE(is_io_error(err, {ECONNRESET, EPIPE}));
  }());
}

TEST_P(IoTcp, ConnectRefused) {
  // A port that is bound (so no one else takes it) but not listening answers a SYN with a reset.
  int raw = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(raw, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(raw, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  socklen_t len = sizeof sa;
  ASSERT_EQ(::getsockname(raw, reinterpret_cast<sockaddr*>(&sa), &len), 0);
  const std::uint16_t port = ntohs(sa.sin_port);
  run([](std::uint16_t to) -> io::Task<void> {
    std::exception_ptr err = co_await error_of(io::Stream::connect(io::Address::loopback(to)));
    EXPECT_TRUE(is_io_error(err, {ECONNREFUSED}));
    err = co_await error_of(io::Stream::connect("127.0.0.1", to));
    EXPECT_TRUE(is_io_error(err, {ECONNREFUSED}));
  }(port));
  ::close(raw);
}

// A listener whose accept queue is full (backlog 0, never accepted): a further connect gets no answer.
struct Unanswering {
  io::Listener listener;
  std::vector<io::Stream> held;  // the connections that filled the queue
  bool ok = false;
};

io::Task<Unanswering> unanswering_listener() {
  io::ListenOptions o;
  o.backlog = 0;
  Unanswering u{loopback_listener(o), {}, false};
  for (int i = 0; i < 16; ++i) {
    try {
      u.held.push_back(co_await io::Stream::connect(u.listener.local_address(), 250ms));
    } catch (const weft::Timeout&) {
      u.ok = true;
      break;
    }
  }
  co_return u;
}

TEST_P(IoTcp, ConnectTimesOut) {
  run([]() -> io::Task<void> {
    io::ListenOptions o;
    o.backlog = 0;
    io::Listener listener = loopback_listener(o);
    std::vector<io::Stream> held;
    bool timed_out = false;
    const int fds_before = open_fd_count();
    for (int i = 0; i < 16 && !timed_out; ++i) {
      auto t0 = Clock::now();
      std::exception_ptr err = co_await error_of([](io::Address a, std::vector<io::Stream>& out) -> io::Task<void> {
        out.push_back(co_await io::Stream::connect(a, 200ms));
      }(listener.local_address(), held));
      if (!err) continue;
      EXPECT_TRUE(is_error<weft::Timeout>(err));
      EXPECT_GE(Clock::now() - t0, 190ms);
      timed_out = true;
    }
    EXPECT_TRUE(timed_out) << "no connect stayed pending after " << held.size() << " connections";
    EXPECT_EQ(open_fd_count(), fds_before + static_cast<int>(held.size()))
        << "the timed-out connect left its socket open";
  }());
}

TEST_P(IoTcp, GroupCancellationStopsAReadAndAConnect) {
  run([]() -> io::Task<void> {
    StreamPair p = co_await tcp_pair();
    Unanswering target = co_await unanswering_listener();
    EXPECT_TRUE(target.ok) << "could not make a connect hang";
    const int fds_before = open_fd_count();
    bool read_started = false, read_cancelled = false, connect_started = false, connect_cancelled = false;
    co_await io::task_group([&](io::TaskGroup& g) -> io::Task<void> {
      g.spawn([](io::Stream& s, bool& started, bool& cancelled) -> io::Task<void> {
        char buf[16];
        started = true;
        try {
          co_await s.read(buf, sizeof buf);
        } catch (const Cancelled&) {
          cancelled = true;
        }
      }(p.server, read_started, read_cancelled));
      g.spawn([](io::Address a, bool& started, bool& cancelled) -> io::Task<void> {
        started = true;
        try {
          io::Stream s = co_await io::Stream::connect(a);
        } catch (const Cancelled&) {
          cancelled = true;
        }
      }(target.listener.local_address(), connect_started, connect_cancelled));
      co_await yield_until([&] { return read_started && connect_started; });
      co_await io::sleep(0ms);  // one more turn: the loop submits what the waiters asked for
      g.cancel();
    });
    EXPECT_TRUE(read_cancelled);
    EXPECT_TRUE(connect_cancelled);
    EXPECT_EQ(open_fd_count(), fds_before) << "the cancelled connect left its socket open";
    co_await p.client.write_all(std::string_view("still here"));
    std::string got = co_await read_up_to(p.server, 10);
    EXPECT_EQ(got, "still here") << "the cancelled read consumed data";
  }());
}

TEST_P(IoTcp, ReadAndWriteTimeouts) {
  run([]() -> io::Task<void> {
    StreamPair p = co_await tcp_pair();
    p.server.set_timeouts(30ms, {});
    char buf[32];
    auto t0 = Clock::now();
    std::exception_ptr err = co_await error_of(as_task(p.server.read(buf, sizeof buf)));
    EXPECT_TRUE(is_error<weft::Timeout>(err));
    EXPECT_GE(Clock::now() - t0, 29ms);
    err = co_await error_of(as_task(p.server.read_some()));
    EXPECT_TRUE(is_error<weft::Timeout>(err));
    // Each read has its own deadline, and the timed-out reads consumed nothing.
    co_await p.client.write_all(std::string_view("late data"));
    std::size_t n = co_await p.server.read(buf, sizeof buf);
    EXPECT_EQ(std::string_view(buf, n), "late data");

    // A write that cannot finish because the peer does not read.
    set_socket_buffers(p.client.native_handle(), 16 << 10);
    set_socket_buffers(p.server.native_handle(), 16 << 10);
    p.client.set_timeouts({}, 30ms);
    std::string big(8 << 20, 'w');
    err = co_await error_of([](io::Stream& s, const std::string& d) -> io::Task<void> {
      co_await s.write_all(d);
    }(p.client, big));
    EXPECT_TRUE(is_error<weft::Timeout>(err));
  }());
}

TEST_P(IoTcp, ReadSomeHoldsAPoolBufferOnlyWhileDataIsInHand) {
  run([]() -> io::Task<void> {
    io::Loop& loop = *io::Loop::current();
    StreamPair p = co_await tcp_pair();
    co_await p.client.write_all(std::string_view("abc"));
    io::Buffer b = co_await p.server.read_some();
    EXPECT_EQ(b.view(), "abc");
    EXPECT_EQ(loop.stats().buffers_in_use, 1u);
    io::Buffer moved = std::move(b);
    EXPECT_EQ(loop.stats().buffers_in_use, 1u);
    moved.reset();
    EXPECT_EQ(loop.stats().buffers_in_use, 0u);

    // An idle reader holds no buffer.
    std::string got;
    co_await io::task_group([&](io::TaskGroup& g) -> io::Task<void> {
      bool started = false;
      g.spawn([](io::Stream& s, std::string& out, bool& st) -> io::Task<void> {
        st = true;
        io::Buffer buf = co_await s.read_some();
        out = std::string(buf.view());
      }(p.server, got, started));
      co_await yield_until([&] { return started; });
      co_await io::sleep(0ms);  // one more turn: the loop submits what the waiters asked for
      EXPECT_EQ(loop.stats().buffers_in_use, 0u) << "a pending read_some holds a pool buffer";
      co_await p.client.write_all(std::string_view("xyz"));
    });
    EXPECT_EQ(got, "xyz");

    // More than one buffer's worth arrives in pieces, intact.
    std::string big(3 * loop.options().buffer_size + 123, '\0');
    for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
    co_await p.client.write_all(big);
    p.client.shutdown_write();
    std::string all;
    for (int i = 0; i < 10'000; ++i) {
      io::Buffer piece = co_await p.server.read_some();
      if (piece.empty()) break;
      EXPECT_LE(piece.size(), loop.options().buffer_size);
      all += piece.view();
    }
    EXPECT_EQ(all, big);
    EXPECT_EQ(loop.stats().buffers_in_use, 0u);
  }());
}

TEST_P(IoTcp, ExhaustedBufferPoolFallsBackToOneOffBuffers) {
  const int n = 24;
  io::LoopOptions o;
  o.buffer_count = 2;
  run(
      [](int count) -> io::Task<void> {
        io::Loop& loop = *io::Loop::current();
        std::vector<StreamPair> pairs;
        for (int i = 0; i < count; ++i) pairs.push_back(co_await tcp_pair());
        std::vector<io::Buffer> held(count);  // every reader keeps its buffer until the end
        for (int round = 0; round < 2; ++round) {
          int pending = 0;
          co_await io::task_group([&](io::TaskGroup& g) -> io::Task<void> {
            for (int i = 0; i < count; ++i) {
              g.spawn([](io::Stream& s, io::Buffer& out, int& pend) -> io::Task<void> {
                ++pend;
                out = co_await s.read_some();
              }(pairs[i].server, held[i], pending));
            }
            co_await yield_until([&] { return pending == count; });
            co_await io::sleep(0ms);  // one more turn: the loop submits what the waiters asked for
            for (int i = 0; i < count; ++i) co_await pairs[i].client.write_all("message " + std::to_string(i));
          });
          for (int i = 0; i < count; ++i) EXPECT_EQ(held[i].view(), "message " + std::to_string(i));
          EXPECT_LE(loop.stats().buffers_in_use, 2u);
          EXPECT_GE(loop.stats().buffer_fallbacks, static_cast<std::uint64_t>((round + 1) * (count - 2)));
          for (auto& b : held) b.reset();
          EXPECT_EQ(loop.stats().buffers_in_use, 0u) << "buffers were not given back to the pool";
        }
      }(n),
      o);
}

TEST_P(IoTcp, ClosingAStreamCancelsItsPendingRead) {
  run([]() -> io::Task<void> {
    StreamPair p = co_await tcp_pair();
    bool started = false, cancelled = false;
    co_await io::task_group([&](io::TaskGroup& g) -> io::Task<void> {
      g.spawn([](io::Stream& s, bool& st, bool& c) -> io::Task<void> {
        char buf[8];
        st = true;
        try {
          co_await s.read(buf, sizeof buf);
        } catch (const Cancelled&) {
          c = true;
        }
      }(p.server, started, cancelled));
      co_await yield_until([&] { return started; });
      co_await io::sleep(0ms);  // one more turn: the loop submits what the waiters asked for
      p.server.close();
    });
    EXPECT_TRUE(cancelled) << "the reader of a closed stream did not get weft::Cancelled";
    EXPECT_FALSE(p.server.is_open());
    std::string rest = co_await read_to_end(p.client);
    EXPECT_EQ(rest, "") << "the peer should see the end of the stream";
  }());
}

// Waits in accept until cancelled; records that it started and that it saw weft::Cancelled.
io::Task<void> accept_until_cancelled(io::Listener& l, bool& started, bool& cancelled) {
  started = true;
  try {
    io::Stream s = co_await l.accept();
  } catch (const Cancelled&) {
    cancelled = true;
  }
}

TEST_P(IoTcp, CancelledAcceptTakesNoConnection) {
  run([]() -> io::Task<void> {
    io::Listener listener = loopback_listener();
    bool started = false, cancelled = false;
    co_await io::task_group([&](io::TaskGroup& g) -> io::Task<void> {
      g.spawn(accept_until_cancelled(listener, started, cancelled));
      co_await yield_until([&] { return started; });
      co_await io::sleep(0ms);  // one more turn: the loop submits what the waiters asked for
      g.cancel();
    });
    EXPECT_TRUE(cancelled);
    // The next connection goes to the next accept, not to a leftover of the cancelled one.
    io::Stream client = co_await io::Stream::connect(listener.local_address());
    io::Stream server = co_await io::wait_for(as_task(listener.accept()), 10s);
    co_await server.write_all(std::string_view("hi"));
    std::string got = co_await read_up_to(client, 2);
    EXPECT_EQ(got, "hi");

    // Closing the listener cancels a pending accept too.
    started = cancelled = false;
    co_await io::task_group([&](io::TaskGroup& g) -> io::Task<void> {
      g.spawn(accept_until_cancelled(listener, started, cancelled));
      co_await yield_until([&] { return started; });
      co_await io::sleep(0ms);  // one more turn: the loop submits what the waiters asked for
      listener.close();
    });
    EXPECT_TRUE(cancelled);
  }());
}

TEST_P(IoTcp, AddressesAndResolve) {
  EXPECT_EQ(io::Address::ip("::1", 80).to_string(), "[::1]:80");
  EXPECT_EQ(io::Address::ip("10.1.2.3", 8080).port(), 8080);
  EXPECT_EQ(io::Address::loopback(9).to_string(), "127.0.0.1:9");
  EXPECT_THROW(io::Address::ip("not an address", 1), weft::Error);
  EXPECT_EQ(io::Address::try_ip("[::1]", 8).value().to_string(), "[::1]:8");
  EXPECT_FALSE(io::Address::try_ip("localhost", 8).has_value());
  EXPECT_FALSE(io::Address::try_ip("", 8).has_value());
  run([]() -> io::Task<void> {
    std::vector<io::Address> addrs = co_await io::resolve("127.0.0.1", 443);
    EXPECT_FALSE(addrs.empty());
    if (!addrs.empty()) {
      EXPECT_EQ(addrs.front().to_string(), "127.0.0.1:443");
    }
    // A name goes to getaddrinfo on the resolver's threads ("localhost" is in /etc/hosts: no query leaves the
    // machine).
    addrs = co_await io::resolve("localhost", 80);
    EXPECT_FALSE(addrs.empty());
    for (const io::Address& a : addrs) {
      const std::string text = a.to_string();
      EXPECT_TRUE(text == "127.0.0.1:80" || text == "[::1]:80") << text;
    }
    // Connect by host name and port, echoing once.
    io::Listener listener = loopback_listener();
    co_await io::task_group([&](io::TaskGroup& g) -> io::Task<void> {
      g.spawn(echo_one(listener));
      io::Stream c = co_await io::Stream::connect("127.0.0.1", listener.local_address().port());
      co_await c.write_all(std::string_view("ping"));
      c.shutdown_write();
      std::string back = co_await read_to_end(c);
      EXPECT_EQ(back, "ping");
    });
  }());
}

}  // namespace
