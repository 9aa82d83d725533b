// TCP echo server on weft::io, one thread (protocol in common.hpp), plus `--backend uring|epoll`.
// io::serve parks every connection as a small record with one pending read into the loop's pool: an idle
// connection holds no task, no coroutine frame and no buffer. Data wakes a handler task that writes it back and
// parks the connection again. SIGINT/SIGTERM cancel the server, which closes every connection.
#include <csignal>
#include <cstring>
#include <string>

#include "common.hpp"
#include "weft/io.hpp"
#include "weft/io/serve.hpp"

namespace io = weft::io;
namespace net = weft::bench::net;

namespace {

io::Task<io::Next> echo(io::Stream& s, io::Buffer data) {
  co_await s.write_all(data.view());
  co_return io::Next::keep;
}

io::Task<void> run_server(unsigned port) {
  io::Listener listener = io::Listener::bind(io::Address::loopback(static_cast<std::uint16_t>(port)),
                                             io::ListenOptions{.backlog = net::kBacklog});
  io::SignalSet signals{SIGINT, SIGTERM};
  net::announce_port(listener.local_address().port());
  co_await io::task_group([&](io::TaskGroup& g) -> io::Task<void> {
    g.spawn(io::serve(listener, echo, io::ServeOptions{.max_connections = 100000}));
    co_await signals.wait();
    g.cancel();
  });
}

}  // namespace

int main(int argc, char** argv) {
  unsigned port = 0;
  io::Backend backend = io::Backend::automatic;
  for (int i = 1; i < argc; i += 2) {
    std::string flag = argv[i];
    if (i + 1 >= argc) net::die(argv[0], "usage: net_echo_weft [--port N] [--backend uring|epoll]");
    if (flag == "--port") port = static_cast<unsigned>(std::stoul(argv[i + 1]));
    else if (flag == "--backend") backend = std::strcmp(argv[i + 1], "epoll") == 0 ? io::Backend::epoll : io::Backend::uring;
    else net::die(argv[0], "usage: net_echo_weft [--port N] [--backend uring|epoll]");
  }
  net::raise_open_file_limit();
  io::run(run_server(port), io::LoopOptions{.backend = backend});
  return 0;
}
