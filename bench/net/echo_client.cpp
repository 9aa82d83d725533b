// net_echo_client: the load generator of the echo benchmark. One thread, epoll, non-blocking sockets; every
// connection keeps exactly one message of --size bytes in flight: send it, read back exactly --size bytes,
// check them, send the next. After --warmup seconds it counts the round trips that complete in the next
// --seconds and records each one's latency in a histogram; then it prints one JSON line:
//   {"round_trips_per_s": ..., "p50_us": ..., "p99_us": ..., "connections": ..., ...}
// Any error, early close or wrong byte ends it with a message and exit status 2.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#include "common.hpp"

namespace net = weft::bench::net;

namespace {

const char* program = "net_echo_client";

[[noreturn]] void fail(const std::string& what) { net::die(program, what + ": " + std::strerror(errno)); }

std::int64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

// Log-linear latency histogram in nanoseconds: values below 2^kSubBits exact, then 2^kSubBits buckets per
// power of two, so a reported percentile is within 1/64 (1.6%) of the true one.
class Histogram {
 public:
  void add(std::int64_t ns) {
    ++counts_[index(static_cast<std::uint64_t>(ns < 0 ? 0 : ns))];
    ++total_;
  }
  void clear() {
    counts_.fill(0);
    total_ = 0;
  }
  std::uint64_t total() const { return total_; }

  // The midpoint of the bucket that holds the q-quantile, in microseconds.
  double quantile_us(double q) const {
    if (total_ == 0) return 0.0;
    auto rank = static_cast<std::uint64_t>(q * static_cast<double>(total_ - 1)) + 1;
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < counts_.size(); ++i) {
      seen += counts_[i];
      if (seen >= rank) {
        auto [low, width] = bucket(i);
        return (static_cast<double>(low) + static_cast<double>(width - 1) / 2.0) / 1e3;
      }
    }
    return 0.0;
  }

 private:
  static constexpr int kSubBits = 6;
  static constexpr std::uint64_t kSub = std::uint64_t{1} << kSubBits;

  static std::size_t index(std::uint64_t v) {
    if (v < kSub) return v;
    int shift = 63 - __builtin_clzll(v) - kSubBits;
    return (static_cast<std::size_t>(shift + 1) << kSubBits) + ((v >> shift) & (kSub - 1));
  }
  static std::pair<std::uint64_t, std::uint64_t> bucket(std::size_t i) {
    if (i < kSub) return {i, 1};
    int shift = static_cast<int>(i >> kSubBits) - 1;
    return {(kSub + (i & (kSub - 1))) << shift, std::uint64_t{1} << shift};
  }

  std::array<std::uint64_t, (64 - kSubBits + 1) << kSubBits> counts_{};
  std::uint64_t total_ = 0;
};

struct Connection {
  int fd = -1;
  std::uint32_t round = 0;
  std::size_t sent = 0;
  std::size_t received = 0;
  std::int64_t started_ns = 0;
  std::vector<char> message;
  std::vector<char> reply;
};

class Client {
 public:
  Client(int port, std::size_t connections, std::size_t size) : size_(size), connections_(connections) {
    epoll_ = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_ < 0) fail("epoll_create1");
    for (std::size_t i = 0; i < connections_.size(); ++i) open(i, port);
  }

  // Runs the warm-up and the measured window; returns the measured window's length in seconds.
  double run(double warmup_s, double seconds) {
    for (std::size_t i = 0; i < connections_.size(); ++i) start_round(i, now_ns());
    std::int64_t start = now_ns();
    measure_from_ = start + static_cast<std::int64_t>(warmup_s * 1e9);
    measure_until_ = measure_from_ + static_cast<std::int64_t>(seconds * 1e9);
    std::array<epoll_event, 256> events;
    while (now_ns() < measure_until_) {
      int n = epoll_wait(epoll_, events.data(), static_cast<int>(events.size()), 100);
      if (n < 0 && errno == EINTR && !net::stop_requested) continue;
      if (net::stop_requested) net::die(program, "interrupted");
      if (n < 0) fail("epoll_wait");
      for (int e = 0; e < n; ++e) handle(events[e].data.u32, events[e].events);
    }
    return static_cast<double>(measure_until_ - measure_from_) / 1e9;
  }

  const Histogram& latencies() const { return histogram_; }

 private:
  void open(std::size_t i, int port) {
    Connection& c = connections_[i];
    c.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c.fd < 0) fail("socket");
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<std::uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(c.fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) fail("connect");
    int one = 1;
    setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(c.fd, F_SETFL, fcntl(c.fd, F_GETFL) | O_NONBLOCK);
    c.message.resize(size_);
    c.reply.resize(size_);
    watch(i, EPOLL_CTL_ADD, EPOLLIN);
  }

  void watch(std::size_t i, int op, std::uint32_t events) {
    epoll_event event{};
    event.events = events;
    event.data.u32 = static_cast<std::uint32_t>(i);
    if (epoll_ctl(epoll_, op, connections_[i].fd, &event) != 0) fail("epoll_ctl");
  }

  // A new message whose bytes depend on the connection and the round, so a reply that belongs to another
  // connection or round cannot pass the check.
  void start_round(std::size_t i, std::int64_t now) {
    Connection& c = connections_[i];
    ++c.round;
    for (std::size_t b = 0; b < size_; ++b) c.message[b] = static_cast<char>(i * 131 + c.round * 7 + b);
    c.sent = 0;
    c.received = 0;
    c.started_ns = now;
    send_rest(i);
  }

  void send_rest(std::size_t i) {
    Connection& c = connections_[i];
    while (c.sent < size_) {
      ssize_t n = send(c.fd, c.message.data() + c.sent, size_ - c.sent, MSG_NOSIGNAL);
      if (n < 0 && errno == EAGAIN) {
        watch(i, EPOLL_CTL_MOD, EPOLLIN | EPOLLOUT);  // the rest goes when the socket has room
        return;
      }
      if (n < 0) fail("send");
      c.sent += static_cast<std::size_t>(n);
    }
  }

  void handle(std::size_t i, std::uint32_t events) {
    Connection& c = connections_[i];
    if (events & EPOLLOUT) {
      watch(i, EPOLL_CTL_MOD, EPOLLIN);
      send_rest(i);
    }
    if (!(events & (EPOLLIN | EPOLLERR | EPOLLHUP))) return;
    ssize_t n = recv(c.fd, c.reply.data() + c.received, size_ - c.received, 0);
    if (n < 0 && errno == EAGAIN) return;
    if (n < 0) fail("recv");
    if (n == 0) net::die(program, "the server closed a connection");
    c.received += static_cast<std::size_t>(n);
    if (c.received < size_) return;
    if (c.sent < size_ || std::memcmp(c.reply.data(), c.message.data(), size_) != 0) {
      net::die(program, "the echoed bytes differ from the bytes sent");
    }
    std::int64_t now = now_ns();
    if (now >= measure_from_ && now < measure_until_) histogram_.add(now - c.started_ns);
    start_round(i, now);
  }

  std::size_t size_;
  std::vector<Connection> connections_;
  int epoll_ = -1;
  std::int64_t measure_from_ = 0;
  std::int64_t measure_until_ = 0;
  Histogram histogram_;
};

}  // namespace

int main(int argc, char** argv) {
  net::Args args(argc, argv, {{"port", 0}, {"connections", 50}, {"size", 64}, {"seconds", 5}, {"warmup", 1}});
  if (args["port"] <= 0 || args["connections"] <= 0 || args["size"] <= 0 || args["seconds"] <= 0 ||
      args["warmup"] < 0) {
    net::die(program, "--port, --connections, --size and --seconds must be positive, --warmup not negative");
  }
  net::raise_open_file_limit();
  net::install_stop_handler();
  Client client(static_cast<int>(args["port"]), static_cast<std::size_t>(args["connections"]),
                static_cast<std::size_t>(args["size"]));
  double seconds = client.run(static_cast<double>(args["warmup"]), static_cast<double>(args["seconds"]));
  const Histogram& h = client.latencies();
  if (h.total() == 0) net::die(program, "no round trip completed in the measured window");
  std::printf(
      "{\"round_trips_per_s\": %.1f, \"p50_us\": %.2f, \"p99_us\": %.2f, \"connections\": %ld, \"size\": %ld, "
      "\"seconds\": %.3f, \"round_trips\": %llu}\n",
      static_cast<double>(h.total()) / seconds, h.quantile_us(0.50), h.quantile_us(0.99), args["connections"],
      args["size"], seconds, static_cast<unsigned long long>(h.total()));
  return 0;
}
