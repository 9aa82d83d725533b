// examples/echo_server.cpp — a TCP echo server on weft's event loop, two ways.
//
//   1. A task per connection: the plainest async code. Each connection is a coroutine that reads and writes
//      back until the client closes; a task group holds them all, so none outlives the server.
//   2. io::serve: the same service for many mostly-idle connections. An idle connection is parked as a small
//      record with one pending read — no coroutine frame, no buffer — and the handler runs only when bytes
//      arrive.
//
// Usage: example_echo_server [--port N] [--parked]   (Ctrl-C stops it)
//        example_echo_server --self-test             (starts both servers, talks to them, exits 0 on success)
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>

#include "weft/io.hpp"
#include "weft/io/serve.hpp"

namespace io = weft::io;

// 1. One task per connection.
io::Task<void> echo_connection(io::Stream s) {
  for (;;) {
    io::Buffer data = co_await s.read_some();  // a buffer from the loop's pool, taken only when bytes arrive
    if (data.empty()) co_return;               // the client closed
    co_await s.write_all(data.view());         // suspends only while the kernel's send buffer is full
  }
}

io::Task<void> serve_with_tasks(io::Listener& listener) {
  co_await io::task_group([&](io::TaskGroup& g) -> io::Task<void> {
    for (;;) g.spawn(echo_connection(co_await listener.accept()));
  });
}

// 2. Parked connections: the handler gets the bytes that woke the connection and says whether to keep it.
io::Task<io::Next> echo_parked(io::Stream& s, io::Buffer data) {
  co_await s.write_all(data.view());
  co_return io::Next::keep;
}

// Runs `server` until SIGINT/SIGTERM: the signal cancels the group, which cancels the server's accept and
// every connection.
io::Task<void> until_signalled(io::Task<void> server) {
  io::SignalSet stop{SIGINT, SIGTERM};
  co_await io::task_group([&](io::TaskGroup& g) -> io::Task<void> {
    g.spawn(std::move(server));
    int sig = co_await stop.wait();
    std::printf("signal %d: stopping\n", sig);
    g.cancel();
  });
}

// A client: sends `rounds` messages and checks each comes back.
io::Task<bool> talk(io::Address at, int rounds) {
  io::Stream c = co_await io::Stream::connect(at, std::chrono::seconds(5));
  for (int i = 0; i < rounds; ++i) {
    const std::string msg = "message " + std::to_string(i);
    co_await c.write_all(msg);
    std::string back(msg.size(), '\0');
    co_await c.read_exact(std::as_writable_bytes(std::span(back)));
    if (back != msg) co_return false;
  }
  co_return true;
}

io::Task<int> self_test() {
  io::Listener a = io::Listener::bind(io::Address::loopback(0));
  io::Listener b = io::Listener::bind(io::Address::loopback(0));
  bool ok = true;
  co_await io::task_group([&](io::TaskGroup& g) -> io::Task<void> {
    g.spawn(serve_with_tasks(a));
    g.spawn(io::serve(b, echo_parked));
    std::vector<io::Task<bool>> clients;
    for (int i = 0; i < 20; ++i) clients.push_back(talk((i % 2 ? a : b).local_address(), 10));
    for (bool r : co_await io::gather(std::move(clients))) ok = ok && r;
    g.cancel();  // stops both servers: cancelling a group is how a scope ends its children
  });
  std::printf("self-test: 20 clients x 10 echoes through both servers: %s\n", ok ? "ok" : "FAILED");
  co_return ok ? 0 : 1;
}

int main(int argc, char** argv) {
  std::uint16_t port = 7000;
  bool parked = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--self-test") == 0) return io::run(self_test());
    if (std::strcmp(argv[i], "--parked") == 0) parked = true;
    else if (std::strcmp(argv[i], "--port") == 0 && i + 1 < argc) port = static_cast<std::uint16_t>(std::stoi(argv[++i]));
    else {
      std::fprintf(stderr, "usage: %s [--port N] [--parked] | --self-test\n", argv[0]);
      return 2;
    }
  }
  return io::run([](std::uint16_t p, bool use_serve) -> io::Task<int> {
    io::Listener listener = io::Listener::bind(io::Address::loopback(p));
    std::printf("echo server on %s (%s); Ctrl-C stops it\n", listener.local_address().to_string().c_str(),
                use_serve ? "parked connections" : "a task per connection");
    std::fflush(stdout);
    co_await until_signalled(use_serve ? io::serve(listener, echo_parked) : serve_with_tasks(listener));
    co_return 0;
  }(port, parked));
}
