// Unix-domain stream sockets (a path in a temporary directory, stale and foreign files at the path, the
// abstract namespace) and UDP (send_to / recv_from, the sender's address, truncation, cancellation).
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include "io_test_support.hpp"

namespace {

using namespace weft::test::iotest;
namespace fs = std::filesystem;

class IoUnix : public BackendTest {};
WEFT_IO_INSTANTIATE(IoUnix);
class IoUdp : public BackendTest {};
WEFT_IO_INSTANTIATE(IoUdp);

/// A fresh directory under the system's temporary directory, removed with its contents afterwards.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "weft-io-test-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string file(const char* name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

// An abstract-namespace name no other test run uses.
std::string abstract_name() {
  static std::atomic<int> counter{0};
  return "@weft-io-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
}

// Both directions, then the end of the stream in both directions.
io::Task<void> exchange(StreamPair& p) {
  co_await p.client.write_all(std::string_view("to server"));
  std::string a = co_await read_up_to(p.server, 9);
  EXPECT_EQ(a, "to server");
  co_await p.server.write_all(std::string_view("to client"));
  std::string b = co_await read_up_to(p.client, 9);
  EXPECT_EQ(b, "to client");
  p.client.shutdown_write();
  std::string end = co_await read_to_end(p.server);
  EXPECT_EQ(end, "");
  p.server.close();
  end = co_await read_to_end(p.client);
  EXPECT_EQ(end, "");
}

TEST_P(IoUnix, StreamOverAPathInATempDirectory) {
  TempDir dir;
  const std::string path = dir.file("echo.sock");
  run([](std::string at) -> io::Task<void> {
    io::Listener listener = io::Listener::bind(io::Address::unix_path(at));
    io::Address local = listener.local_address();
    EXPECT_EQ(local.family(), AF_UNIX);
    EXPECT_EQ(local.port(), 0);
    EXPECT_EQ(local.to_string(), "unix:" + at);
    EXPECT_TRUE(fs::is_socket(at));
    io::Stream client = co_await io::Stream::connect(io::Address::unix_path(at));
    io::Stream server = co_await listener.accept();
    StreamPair p{std::move(client), std::move(server)};
    co_await exchange(p);
    listener.close();
    EXPECT_FALSE(fs::exists(at)) << "closing a Unix-domain listener must remove its socket file";
  }(path));
}

TEST_P(IoUnix, StaleSocketFileIsReplacedButOtherFilesAreNot) {
  TempDir dir;
  const std::string stale = dir.file("stale.sock");
  {
    // A socket file left behind by a process that is gone.
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::strncpy(sa.sun_path, stale.c_str(), sizeof sa.sun_path - 1);
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    ::close(fd);
    ASSERT_TRUE(fs::is_socket(stale));
  }
  const std::string regular = dir.file("data.txt");
  std::ofstream(regular) << "keep me";
  run([](std::string s, std::string r) -> io::Task<void> {
    StreamPair p = co_await pair_at(io::Address::unix_path(s));
    co_await exchange(p);
    std::exception_ptr err = co_await error_of([](std::string path) -> io::Task<void> {
      io::Listener l = io::Listener::bind(io::Address::unix_path(path));
      co_return;
    }(r));
    EXPECT_TRUE(is_io_error(err, {EADDRINUSE})) << "binding over a regular file must fail";
  }(stale, regular));
  EXPECT_TRUE(fs::is_regular_file(regular)) << "a file that is not a socket was removed";
}

TEST_P(IoUnix, BindingOverALiveListenerFails) {
  TempDir dir;
  const std::string path = dir.file("live.sock");
  run([](std::string at) -> io::Task<void> {
    io::Listener live = io::Listener::bind(io::Address::unix_path(at));
    std::exception_ptr err = co_await error_of([](std::string p) -> io::Task<void> {
      io::Listener second = io::Listener::bind(io::Address::unix_path(p));
      co_return;
    }(at));
    EXPECT_TRUE(is_io_error(err, {EADDRINUSE})) << "a second listener took over a live listener's path";
    // The live listener still gets the connections made to its path.
    EXPECT_TRUE(fs::is_socket(at));
    std::exception_ptr conn = co_await error_of([](io::Listener& l, std::string p) -> io::Task<void> {
      io::Stream c = co_await io::Stream::connect(io::Address::unix_path(p));
      io::Stream s = co_await io::wait_for(as_task(l.accept()), 10s);
    }(live, at));
    EXPECT_FALSE(conn) << weft::describe_exception(conn);
  }(path));
}

TEST_P(IoUnix, AbstractNamespace) {
  const std::string name = abstract_name();
  run([](std::string n) -> io::Task<void> {
    io::Listener listener = io::Listener::bind(io::Address::unix_path(n));
    EXPECT_EQ(listener.local_address().family(), AF_UNIX);
    EXPECT_NE(listener.local_address().to_string().find(n.substr(1)), std::string::npos)
        << listener.local_address().to_string();
    io::Stream client = co_await io::Stream::connect(io::Address::unix_path(n));
    io::Stream server = co_await listener.accept();
    StreamPair p{std::move(client), std::move(server)};
    co_await exchange(p);
  }(name));
  EXPECT_FALSE(fs::exists(name)) << "an abstract name must not create a file";
}

TEST_P(IoUnix, CancelledReadConsumesNothing) {
  run([](std::string n) -> io::Task<void> {
    StreamPair p = co_await pair_at(io::Address::unix_path(n));
    char buf[32];
    std::exception_ptr err = co_await error_of(io::wait_for(p.server.read(buf, sizeof buf), 10ms));
    EXPECT_TRUE(is_error<weft::Timeout>(err));
    co_await p.client.write_all(std::string_view("intact"));
    std::string got = co_await read_up_to(p.server, 6);
    EXPECT_EQ(got, "intact");
  }(abstract_name()));
}

TEST_P(IoUnix, PathTooLongIsRefused) {
  EXPECT_THROW(io::Address::unix_path(std::string(200, 'p')), weft::Error);
}

std::span<std::byte> writable(char* p, std::size_t n) { return {reinterpret_cast<std::byte*>(p), n}; }

TEST_P(IoUdp, SendToAndRecvFromWithTheSendersAddress) {
  run([]() -> io::Task<void> {
    io::UdpSocket a = io::UdpSocket::bind(io::Address::loopback(0));
    io::UdpSocket b = io::UdpSocket::bind(io::Address::loopback(0));
    EXPECT_NE(a.local_address().port(), 0);
    std::size_t sent = co_await a.send_to(bytes_of("ping"), b.local_address());
    EXPECT_EQ(sent, 4u);
    char buf[64];
    auto [n, from] = co_await b.recv_from(writable(buf, sizeof buf));
    EXPECT_EQ(std::string_view(buf, n), "ping");
    EXPECT_EQ(from.to_string(), a.local_address().to_string());
    co_await b.send_to(bytes_of("pong"), from);
    auto [m, from_b] = co_await a.recv_from(writable(buf, sizeof buf));
    EXPECT_EQ(std::string_view(buf, m), "pong");
    EXPECT_EQ(from_b.port(), b.local_address().port());
  }());
}

TEST_P(IoUdp, TruncationReportsTheFullDatagramSize) {
  run([]() -> io::Task<void> {
    io::UdpSocket a = io::UdpSocket::bind(io::Address::loopback(0));
    io::UdpSocket b = io::UdpSocket::bind(io::Address::loopback(0));
    std::string big(100, '\0');
    for (int i = 0; i < 100; ++i) big[i] = static_cast<char>('A' + i % 26);
    co_await a.send_to(bytes_of(big), b.local_address());
    co_await a.send_to(bytes_of("next"), b.local_address());
    char small[10];
    auto [n, from] = co_await b.recv_from(writable(small, sizeof small));
    EXPECT_EQ(n, 100u) << "the size of a truncated datagram must be its full size";
    EXPECT_EQ(std::string_view(small, 10), big.substr(0, 10));
    EXPECT_EQ(from.port(), a.local_address().port());
    // The rest of the truncated datagram is gone: the next receive gets the next datagram.
    char buf[64];
    auto [m, from2] = co_await b.recv_from(writable(buf, sizeof buf));
    EXPECT_EQ(std::string_view(buf, m), "next");
    (void)from2;
    // An empty datagram is a datagram.
    co_await a.send_to(std::span<const std::byte>(), b.local_address());
    auto [z, from3] = co_await b.recv_from(writable(buf, sizeof buf));
    EXPECT_EQ(z, 0u);
    EXPECT_EQ(from3.port(), a.local_address().port());
  }());
}

TEST_P(IoUdp, CancelledRecvConsumesNothing) {
  run([]() -> io::Task<void> {
    io::UdpSocket a = io::UdpSocket::bind(io::Address::loopback(0));
    io::UdpSocket b = io::UdpSocket::bind(io::Address::loopback(0));
    char buf[64];
    std::exception_ptr err = co_await error_of(io::wait_for(b.recv_from(writable(buf, sizeof buf)), 10ms));
    EXPECT_TRUE(is_error<weft::Timeout>(err));
    co_await a.send_to(bytes_of("later"), b.local_address());
    // Through wait_for, which moves the awaiter into a task before it starts.
    auto [n, from] = co_await io::wait_for(b.recv_from(writable(buf, sizeof buf)), 10s);
    EXPECT_EQ(std::string_view(buf, n), "later");
    EXPECT_EQ(from.to_string(), a.local_address().to_string()) << "the sender's address was lost";
  }());
}

TEST_P(IoUdp, ManyDatagramsWithAConcurrentReceiver) {
  constexpr int kCount = 100;
  run([]() -> io::Task<void> {
    io::UdpSocket a = io::UdpSocket::bind(io::Address::loopback(0));
    io::UdpSocket b = io::UdpSocket::bind(io::Address::loopback(0));
    std::set<std::string> got;
    co_await io::task_group([&](io::TaskGroup& g) -> io::Task<void> {
      g.spawn([](io::UdpSocket& r, std::set<std::string>& out) -> io::Task<void> {
        char buf[64];
        for (int i = 0; i < kCount; ++i) {
          auto [n, from] = co_await r.recv_from(writable(buf, sizeof buf));
          out.emplace(buf, n);
        }
      }(b, got));
      for (int i = 0; i < kCount; ++i) {
        std::string d = "datagram " + std::to_string(i);
        co_await a.send_to(bytes_of(d), b.local_address());
        if (i % 10 == 9) co_await io::sleep(0ms);  // let the receiver drain (a socket buffer is finite)
      }
    });
    EXPECT_EQ(got.size(), static_cast<std::size_t>(kCount));
  }());
}

TEST_P(IoUdp, OversizedDatagramIsAnIoError) {
  run([]() -> io::Task<void> {
    io::UdpSocket a = io::UdpSocket::bind(io::Address::loopback(0));
    io::UdpSocket b = io::UdpSocket::bind(io::Address::loopback(0));
    std::string huge(70'000, 'h');
    std::exception_ptr err = co_await error_of(as_task(a.send_to(bytes_of(huge), b.local_address())));
    EXPECT_TRUE(is_io_error(err, {EMSGSIZE}));
  }());
}

}  // namespace
