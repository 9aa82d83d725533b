// HTTP/1.1 "hello world" server on weft's io::http::Server: one event loop on one thread (io_uring or epoll,
// `--backend uring|epoll`), a connection task per client, a synchronous handler that returns the benchmark's
// response as prebuilt bytes (no header is added: the bytes on the wire are exactly common.hpp's). Follows the
// server protocol in common.hpp.
#include <csignal>
#include <cstdio>
#include <string_view>
#include <vector>

#include "common.hpp"
#include "weft/io/group.hpp"
#include "weft/io/http/server.hpp"
#include "weft/io/loop.hpp"
#include "weft/io/signal.hpp"
#include "weft/io/socket.hpp"

namespace net = weft::bench::net;
namespace io = weft::io;
namespace http = weft::io::http;

namespace {

io::Task<void> run_server(std::uint16_t port) {
  io::SignalSet signals{SIGINT, SIGTERM};
  http::ServerOptions options;
  options.max_connections = 100'000;  // bounded by RLIMIT_NOFILE first
  http::Server server([](const http::Request&) { return http::Response::prebuilt(net::kHttpResponse); }, options);
  io::ListenOptions listen;
  listen.backlog = net::kBacklog;
  io::Listener listener = io::Listener::bind(io::Address::loopback(port), listen);
  net::announce_port(listener.local_address().port());
  co_await io::task_group([&](io::TaskGroup& g) -> io::Task<void> {
    g.spawn(server.serve(listener));
    co_await signals.wait();
    server.stop();  // drain: idle connections close at once, serve() returns, the group ends
  });
}

}  // namespace

int main(int argc, char** argv) {
  // `--backend` takes a word, which net::Args (whole numbers only) does not: take it out first.
  io::LoopOptions loop;
  std::vector<char*> rest{argv[0]};
  for (int i = 1; i < argc; ++i) {
    std::string_view flag = argv[i];
    if (flag == "--backend" && i + 1 < argc) {
      std::string_view name = argv[++i];
      if (name == "uring") loop.backend = io::Backend::uring;
      else if (name == "epoll") loop.backend = io::Backend::epoll;
      else net::die(argv[0], "--backend must be uring or epoll, not " + std::string(name));
    } else {
      rest.push_back(argv[i]);
    }
  }
  net::Args args(static_cast<int>(rest.size()), rest.data(), {{"port", 0}});
  net::raise_open_file_limit();
  std::signal(SIGPIPE, SIG_IGN);
  io::run(run_server(static_cast<std::uint16_t>(args["port"])), loop);
  return 0;
}
