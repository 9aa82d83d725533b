// net_idle_client: opens --connections connections to an echo server and holds them idle. Connects are
// non-blocking, at most --in-flight of them under way at once; on each connection it sends one 16-byte
// message and waits for its echo, so that the server has accepted it and sits in its next read. Then it
// prints `ready <N>`, waits until its standard input is closed (or SIGTERM / SIGINT), resets every connection
// and exits 0. Any error, or not all connections ready within --timeout seconds, ends it with exit status 2.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#include "common.hpp"

namespace net = weft::bench::net;

namespace {

const char* program = "net_idle_client";
constexpr std::size_t kMessage = 16;

[[noreturn]] void fail(const std::string& what) { net::die(program, what + ": " + std::strerror(errno)); }

double now_s() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

// The 16 bytes connection i sends: its number, so an echo that went to the wrong connection fails the check.
std::array<char, kMessage + 1> message_of(std::size_t i) {
  std::array<char, kMessage + 1> text{};
  std::snprintf(text.data(), text.size(), "idle%012zu", i);
  return text;
}

struct Connection {
  int fd = -1;
  bool connected = false;
  std::size_t received = 0;
  std::array<char, kMessage> reply{};
};

class IdleClient {
 public:
  IdleClient(int port, std::size_t count) : connections_(count) {
    address_.sin_family = AF_INET;
    address_.sin_port = htons(static_cast<std::uint16_t>(port));
    address_.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    epoll_ = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_ < 0) fail("epoll_create1");
  }

  // Opens every connection and waits for every echo; returns false on SIGTERM / SIGINT.
  bool open_all(std::size_t max_in_flight, double timeout_s) {
    double deadline = now_s() + timeout_s;
    std::array<epoll_event, 256> events;
    while (ready_ < connections_.size()) {
      while (opened_ < connections_.size() && opened_ - ready_ < max_in_flight) start(opened_++);
      int n = epoll_wait(epoll_, events.data(), static_cast<int>(events.size()), 100);
      if (net::stop_requested) return false;
      if (n < 0 && errno != EINTR) fail("epoll_wait");
      for (int e = 0; e < n; ++e) handle(events[e].data.u32, events[e].events);
      if (now_s() > deadline) {
        net::die(program, std::to_string(ready_) + " of " + std::to_string(connections_.size()) +
                              " connections echoed within " + std::to_string(timeout_s) + " s");
      }
    }
    return true;
  }

  // Closes with a reset (SO_LINGER of 0) rather than a FIN: an orderly close would leave every connection in
  // TIME_WAIT here for a minute, and a few runs of 10,000 would tie up most of the loopback's ephemeral ports.
  // The servers see a reset instead of an end-of-file; both end the connection.
  void close_all() {
    linger abort{1, 0};
    for (Connection& c : connections_) {
      if (c.fd < 0) continue;
      setsockopt(c.fd, SOL_SOCKET, SO_LINGER, &abort, sizeof abort);
      close(c.fd);
    }
  }

 private:
  void start(std::size_t i) {
    Connection& c = connections_[i];
    c.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c.fd < 0) fail("socket (connection " + std::to_string(i) + ")");
    epoll_event event{};
    event.events = EPOLLOUT;
    event.data.u32 = static_cast<std::uint32_t>(i);
    if (epoll_ctl(epoll_, EPOLL_CTL_ADD, c.fd, &event) != 0) fail("epoll_ctl");
    if (connect(c.fd, reinterpret_cast<sockaddr*>(&address_), sizeof address_) != 0 && errno != EINPROGRESS) {
      fail("connect");
    }
  }

  void handle(std::size_t i, std::uint32_t events) {
    Connection& c = connections_[i];
    if (!c.connected) {
      int error = 0;
      socklen_t length = sizeof error;
      getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &error, &length);
      if (error != 0) {
        errno = error;
        fail("connect");
      }
      if (!(events & EPOLLOUT)) return;
      c.connected = true;
      if (send(c.fd, message_of(i).data(), kMessage, MSG_NOSIGNAL) != static_cast<ssize_t>(kMessage)) fail("send");
      epoll_event event{};
      event.events = EPOLLIN;
      event.data.u32 = static_cast<std::uint32_t>(i);
      if (epoll_ctl(epoll_, EPOLL_CTL_MOD, c.fd, &event) != 0) fail("epoll_ctl");
      return;
    }
    ssize_t n = recv(c.fd, c.reply.data() + c.received, kMessage - c.received, 0);
    if (n < 0 && errno == EAGAIN) return;
    if (n < 0) fail("recv");
    if (n == 0) net::die(program, "the server closed connection " + std::to_string(i));
    c.received += static_cast<std::size_t>(n);
    if (c.received < kMessage) return;
    if (std::memcmp(c.reply.data(), message_of(i).data(), kMessage) != 0) {
      net::die(program, "the echo on connection " + std::to_string(i) + " differs from what was sent");
    }
    if (epoll_ctl(epoll_, EPOLL_CTL_DEL, c.fd, nullptr) != 0) fail("epoll_ctl");
    ++ready_;
  }

  std::vector<Connection> connections_;
  sockaddr_in address_{};
  int epoll_ = -1;
  std::size_t opened_ = 0;
  std::size_t ready_ = 0;
};

// Blocks until standard input reaches its end (or is closed), or a stop signal arrives.
void wait_for_end_of_input() {
  std::array<char, 256> sink;
  while (!net::stop_requested) {
    pollfd fd{STDIN_FILENO, POLLIN, 0};
    if (poll(&fd, 1, -1) < 0) {
      if (errno == EINTR) continue;
      fail("poll");
    }
    if (fd.revents & POLLNVAL) return;
    ssize_t n = read(STDIN_FILENO, sink.data(), sink.size());
    if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) return;
  }
}

}  // namespace

int main(int argc, char** argv) {
  net::Args args(argc, argv, {{"port", 0}, {"connections", 10000}, {"in-flight", 256}, {"timeout", 120}});
  if (args["port"] <= 0 || args["connections"] <= 0 || args["in-flight"] <= 0 || args["timeout"] <= 0) {
    net::die(program, "--port, --connections, --in-flight and --timeout must be positive");
  }
  rlim_t limit = net::raise_open_file_limit();
  if (limit != RLIM_INFINITY && static_cast<rlim_t>(args["connections"]) + 16 > limit) {
    net::die(program, "the open-file limit (" + std::to_string(limit) + ") is too low for " +
                          std::to_string(args["connections"]) + " connections");
  }
  net::install_stop_handler();
  IdleClient client(static_cast<int>(args["port"]), static_cast<std::size_t>(args["connections"]));
  if (client.open_all(static_cast<std::size_t>(args["in-flight"]), static_cast<double>(args["timeout"]))) {
    std::printf("ready %ld\n", args["connections"]);
    std::fflush(stdout);
    wait_for_end_of_input();
  }
  client.close_all();
  return 0;
}
