// Pipe and Connection: framed messages between processes — values and bytes, sizes, timeouts, closed peers,
// oversized and corrupt input, and several senders at once.
#include "weft/process/pipe.hpp"
#include "weft/process/process.hpp"

#include "support.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using weft::process::Connection;
using weft::process::Pipe;
using weft::process::PipeOptions;
using weft::process::Process;

using weft::test::kLong;

// Answers every vector<int> with its sum as a string, until the pipe closes.
void summer(Connection c) {
  for (;;) {
    std::vector<int> v;
    try {
      v = c.recv<std::vector<int>>();
    } catch (const weft::ChannelClosed&) {
      return;
    }
    long s = 0;
    for (int x : v) s += x;
    c.send(std::to_string(s));
  }
}

// Echoes raw bytes until the pipe closes.
void echo_bytes(Connection c) {
  for (;;) {
    try {
      c.send_bytes(c.recv_bytes());
    } catch (const weft::ChannelClosed&) {
      return;
    }
  }
}

void send_three_then_exit(Connection c) {
  for (int i = 0; i < 3; ++i) c.send(i);
}

std::pair<Connection, Connection> raw_pair(std::size_t max_a, std::size_t max_b) {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) throw std::runtime_error("socketpair");
  return {Connection::adopt(fds[0], true, true, max_a), Connection::adopt(fds[1], true, true, max_b)};
}

TEST(Pipe, ValuesTravelBothWaysBetweenProcesses) {
  auto [here, there] = Pipe();
  Process p(&summer, std::move(there));
  for (int n = 0; n < 50; ++n) {
    std::vector<int> v(n, 3);
    here.send(v);
    EXPECT_EQ(here.recv<std::string>(kLong), std::to_string(3 * n));
  }
  here.close();
  ASSERT_TRUE(p.join(kLong));
  EXPECT_EQ(p.exitcode(), 0);
}

TEST(Pipe, BytesOfEverySizeArriveIntact) {
  auto [here, there] = Pipe();
  Process p(&echo_bytes, std::move(there));
  for (std::size_t size : {std::size_t{0}, std::size_t{1}, std::size_t{65536}, std::size_t{8} << 20}) {
    std::string m(size, '\0');
    for (std::size_t i = 0; i < size; ++i) m[i] = static_cast<char>(i * 131 + size);
    std::thread sender([&] { here.send_bytes(m); });  // 8 MiB does not fit the socket buffer: send meanwhile
    EXPECT_EQ(here.recv_bytes(kLong), m) << size << " bytes";
    sender.join();
  }
  here.close();
  ASSERT_TRUE(p.join(kLong));
}

TEST(Pipe, OneWayPipeHasAReceivingAndASendingEnd) {
  auto [reader, writer] = Pipe(PipeOptions{.duplex = false});
  EXPECT_TRUE(reader.readable());
  EXPECT_FALSE(reader.writable());
  EXPECT_THROW(reader.send(1), std::logic_error);
  EXPECT_THROW((void)writer.recv<int>(), std::logic_error);
  Process p(&send_three_then_exit, std::move(writer));
  for (int i = 0; i < 3; ++i) EXPECT_EQ(reader.recv<int>(kLong), i);
  EXPECT_THROW((void)reader.recv<int>(kLong), weft::ChannelClosed);  // the writer's process ended
  ASSERT_TRUE(p.join(kLong));
}

TEST(Pipe, RecvTimeoutConsumesNothing) {
  auto [a, b] = Pipe();
  EXPECT_THROW((void)a.recv<int>(5ms), weft::Timeout);
  EXPECT_FALSE(a.poll());
  b.send(42);
  EXPECT_TRUE(a.poll(kLong));
  EXPECT_EQ(a.recv<int>(5ms), 42);
}

TEST(Pipe, ClosedPeerIsChannelClosedForRecvAndSendWithoutSigpipe) {
  {
    auto [a, b] = Pipe();
    b.send(1);
    b.close();
    EXPECT_EQ(a.recv<int>(), 1);  // what was sent before the close still arrives
    EXPECT_THROW((void)a.recv<int>(), weft::ChannelClosed);
    EXPECT_THROW(a.send(std::string(1 << 20, 'x')), weft::ChannelClosed);
  }
  {
    auto [reader, writer] = Pipe(PipeOptions{.duplex = false});
    reader.close();
    EXPECT_THROW(writer.send(std::string(100, 'y')), weft::ChannelClosed);  // EPIPE, the process lives on
  }
}

TEST(Pipe, OversizedMessagesAreRefusedAndTheConnectionGoesOn) {
  auto [a, b] = raw_pair(1000, 100);  // a sends up to 1000 bytes; b accepts up to 100
  EXPECT_THROW(a.send_bytes(std::string(1001, 'a')), weft::process::MessageTooLarge);
  a.send_bytes(std::string(500, 'b'));  // a allows it, b does not
  a.send_bytes("after");
  EXPECT_THROW((void)b.recv_bytes(kLong), weft::process::MessageTooLarge);
  EXPECT_EQ(b.recv_bytes(kLong), "after");
}

TEST(Pipe, CorruptBytesAreAProtocolErrorAndTheConnectionStopsReceiving) {
  auto [a, b] = raw_pair(1 << 20, 1 << 20);
  const char garbage[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_EQ(::write(a.fd(), garbage, sizeof garbage - 1), static_cast<ssize_t>(sizeof garbage - 1));
  EXPECT_THROW((void)b.recv_bytes(kLong), weft::process::ProtocolError);
  a.send_bytes("valid");
  EXPECT_THROW((void)b.recv_bytes(kLong), weft::process::ProtocolError);
}

TEST(Pipe, TruncatedMessageIsAProtocolError) {
  auto [a, b] = raw_pair(1 << 20, 1 << 20);
  unsigned char header[16] = {'W', 'F', 'T', '1', 0, 0, 0, 0, 100, 0, 0, 0, 0, 0, 0, 0};
  ASSERT_EQ(::write(a.fd(), header, 16), 16);
  ASSERT_EQ(::write(a.fd(), "0123456789", 10), 10);
  a.close();
  EXPECT_THROW((void)b.recv_bytes(kLong), weft::process::ProtocolError);
}

TEST(Pipe, WrongTypeIsASerializationError) {
  auto [a, b] = Pipe();
  a.send(std::string("text"));
  a.send(7);
  EXPECT_THROW((void)b.recv<int>(), weft::process::SerializationError);
  EXPECT_EQ(b.recv<int>(), 7);
}

TEST(Pipe, ConcurrentSendersNeverInterleaveMessages) {
  for (int threads : {2, 4}) {
    auto [a, b] = Pipe();
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t) {
      ts.emplace_back([&a, t] {
        for (int i = 0; i < 100; ++i) a.send_bytes(std::string(100'000, static_cast<char>('a' + t)));
      });
    }
    for (int i = 0; i < 100 * threads; ++i) {
      std::string m = b.recv_bytes(kLong);
      ASSERT_EQ(m.size(), 100'000u);
      ASSERT_EQ(m.find_first_not_of(m[0]), std::string::npos) << "two messages were interleaved";
    }
    for (auto& th : ts) th.join();
  }
}

TEST(Pipe, ConnectionOutsideAProcessArgumentCannotBeSerialized) {
  auto [a, b] = Pipe();
  EXPECT_THROW((void)weft::process::pack(a), weft::process::SerializationError);
}

}  // namespace
