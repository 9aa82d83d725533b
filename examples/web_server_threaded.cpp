// web_server_threaded.cpp — the classic multi-threaded web server: blocking sockets, one accept loop, and each
// connection handled by a worker of a bounded weft::ThreadPool.
//
// Python: socketserver.ThreadingTCPServer / http.server.ThreadingHTTPServer, but bounded. An unbounded
// thread-per-connection server is easy to knock over (open enough connections and it runs out of threads or
// memory); here the pool has a fixed number of workers and a fixed queue, and when the queue is full the
// acceptor answers `503 Service Unavailable` at once instead of queueing without bound.
//
// A blocking worker is busy for as long as its connection is open, idle keep-alive time included — the reason
// an event loop serves many mostly-idle clients better (see web_server_async.cpp for the same site on it).
//
// Shutdown (SIGINT/SIGTERM): the handler writes a byte to a pipe (the self-pipe trick: write() is
// async-signal-safe); the acceptor, which poll()s the listening socket and the pipe, stops accepting; workers
// finish the request in hand, answer it with `Connection: close` and end; the pool drains; exit status 0.
//
//   example_web_server_threaded --port 8080 [--threads 4] [--queue 16]
//   example_web_server_threaded --self-test      (serves itself a few requests, then stops itself)
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <thread>

#include "weft/core/errors.hpp"
#include "weft/io/http/message.hpp"
#include "weft/io/http/request_parser.hpp"
#include "weft/thread/thread_pool.hpp"

namespace http = weft::io::http;

namespace {

int stop_pipe[2] = {-1, -1};
std::atomic<bool> stopping{false};

// The site: the same pages as web_server_async.cpp.
http::Response site(const http::Request& req) {
  if (req.path() == "/") {
    return http::Response::html(200, "<h1>weft</h1><a href=\"/hello?name=you\">hello</a> <a href=\"/slow\">slow</a>");
  }
  if (req.path() == "/hello") {
    std::string_view q = req.query();
    std::string_view name = q.starts_with("name=") ? q.substr(5) : "world";
    return http::Response::text(200, "Hello, " + std::string(name) + "!\n");
  }
  if (req.path() == "/slow") {  // pretend to wait for a database: this worker blocks meanwhile
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    return http::Response::text(200, "slow page\n");
  }
  return http::Response::text(404, "no such page\n");
}

bool send_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

// One connection, on a pool worker: read, parse, answer, until the client or the shutdown closes it.
void serve_connection(int fd) {
  timeval tick{1, 0};  // recv wakes every second to look at the stop flag and the idle time
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tick, sizeof tick);
  http::RequestParser parser;
  std::string out;
  char buf[4096];
  int idle_seconds = 0;
  bool open = true;
  while (open) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      // Nothing arrived this second. Between requests, give up at shutdown or after 5 idle seconds; with a
      // request started, its client has 10 seconds in all (slow clients must not hold a worker forever).
      ++idle_seconds;
      if ((parser.idle() && (stopping || idle_seconds >= 5)) || idle_seconds >= 10) break;
      continue;
    }
    if (n <= 0) break;
    idle_seconds = 0;
    std::string_view data(buf, static_cast<std::size_t>(n));
    while (!data.empty() && open) {  // pipelined requests: one at a time, answers in order
      data.remove_prefix(parser.feed(data));
      if (parser.failed()) {
        http::ResponseContext ctx;
        ctx.close = true;
        http::append_response(out, http::Response::text(parser.error().status(), parser.error().message), ctx);
        open = false;
        break;
      }
      if (!parser.done()) break;  // the rest of this request is still to come
      const http::Request& req = parser.request();
      bool close = stopping || !req.keep_alive();
      http::ResponseContext ctx;
      ctx.close = close;
      ctx.head = req.method() == "HEAD";
      ctx.http10_keep_alive = !close && req.version_minor() == 0;
      http::append_response(out, site(req), ctx);
      parser.next();
      open = !close;
    }
    if (!send_all(fd, out)) break;
    out.clear();
  }
  ::close(fd);
}

int listen_on(std::uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd, 1024) != 0) {
    std::perror("bind/listen");
    std::exit(1);
  }
  return fd;
}

std::uint16_t port_of(int fd) {
  sockaddr_in addr{};
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  return ntohs(addr.sin_port);
}

// --self-test: a client on its own thread asks for a few pages on one keep-alive connection, checks the
// answers, then sends SIGTERM to this process, as an operator would.
void self_test(std::uint16_t port, std::atomic<bool>& ok) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string got;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      send_all(fd, "GET /hello?name=threads HTTP/1.1\r\n\r\nGET /slow HTTP/1.1\r\n\r\n"
                   "GET /missing HTTP/1.1\r\nConnection: close\r\n\r\n")) {
    char buf[4096];
    for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) got.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  ok = got.find("Hello, threads!") != std::string::npos && got.find("slow page") != std::string::npos &&
       got.find("HTTP/1.1 404") != std::string::npos;
  std::printf("self-test client: %s\n", ok ? "3 answers as expected" : "unexpected answers");
  ::kill(::getpid(), SIGTERM);
}

}  // namespace

int main(int argc, char** argv) {
  std::uint16_t port = 8080;
  std::size_t threads = 4;
  std::size_t queue = 16;
  bool test = false;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--self-test") test = true;
    else if (a == "--port" && i + 1 < argc) port = static_cast<std::uint16_t>(std::atoi(argv[++i]));
    else if (a == "--threads" && i + 1 < argc) threads = static_cast<std::size_t>(std::atoi(argv[++i]));
    else if (a == "--queue" && i + 1 < argc) queue = static_cast<std::size_t>(std::atoi(argv[++i]));
    else return std::fprintf(stderr, "usage: %s [--port N] [--threads N] [--queue N] [--self-test]\n", argv[0]), 2;
  }
  if (test) port = 0;

  // The self-pipe: SIGINT/SIGTERM only write one byte; the acceptor sees it in poll().
  if (::pipe2(stop_pipe, O_CLOEXEC | O_NONBLOCK) != 0) return 1;
  struct sigaction sa {};
  sa.sa_handler = [](int) { (void)!::write(stop_pipe[1], "x", 1); };
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  int listener = listen_on(port);
  std::printf("serving on http://127.0.0.1:%u with %zu threads, %zu queued connections at most\n",
              port_of(listener), threads, queue);
  std::fflush(stdout);

  weft::ThreadPoolOptions options;
  options.threads = threads;
  options.capacity = queue;                       // connections waiting for a worker, at most
  options.overflow = weft::Overflow::reject;      // beyond: post() throws QueueFull, and we answer 503
  options.name = "http";
  weft::ThreadPool pool(options);
  std::atomic<bool> test_ok{false};
  std::thread client;
  if (test) client = std::thread(self_test, port_of(listener), std::ref(test_ok));

  std::size_t rejected = 0;
  for (;;) {
    pollfd fds[2] = {{listener, POLLIN, 0}, {stop_pipe[0], POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) continue;  // EINTR: the handler ran; the pipe says so next time round
    if (fds[1].revents != 0) break;
    int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    try {
      pool.post([fd] { serve_connection(fd); });
    } catch (const weft::QueueFull&) {  // every worker busy and the queue full: say so and hang up
      ++rejected;
      send_all(fd, "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
      ::close(fd);
    }
  }
  std::printf("stopping: no new connections; finishing the requests in progress\n");
  stopping = true;
  ::close(listener);
  pool.shutdown();  // drain: queued connections are served (and closed after one answer), workers joined
  if (client.joinable()) client.join();
  std::printf("stopped (%zu connections turned away with 503)\n", rejected);
  return test && !test_ok ? 1 : 0;
}
