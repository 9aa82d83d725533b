// The part every Asio server of bench/net shares: the listener on 127.0.0.1, the accept loop that co_spawns one
// session coroutine per connection (TCP_NODELAY set), SIGINT/SIGTERM handling, and the protocol of common.hpp.
#pragma once

#include <asio.hpp>

#include "common.hpp"

namespace weft::bench::net {

/// Runs a one-thread Asio server until SIGINT/SIGTERM. `session(tcp::socket)` returns asio::awaitable<void>.
template <class Session>
int run_asio_server(int argc, char** argv, Session session) {
  using asio::ip::tcp;
  Args args(argc, argv, {{"port", 0}});
  raise_open_file_limit();
  asio::io_context context(1);
  tcp::acceptor acceptor(context);
  tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(args["port"]));
  acceptor.open(endpoint.protocol());
  acceptor.set_option(asio::socket_base::reuse_address(true));
  acceptor.bind(endpoint);
  acceptor.listen(kBacklog);
  asio::signal_set signals(context, SIGINT, SIGTERM);
  signals.async_wait([&](const std::error_code&, int) { context.stop(); });
  auto listen = [](tcp::acceptor& a, Session s) -> asio::awaitable<void> {
    for (;;) {
      tcp::socket socket = co_await a.async_accept(asio::use_awaitable);
      socket.set_option(tcp::no_delay(true));
      asio::co_spawn(a.get_executor(), s(std::move(socket)), asio::detached);
    }
  };
  // An accept error (such as running out of descriptors) ends the run with the exception, not silently.
  asio::co_spawn(context, listen(acceptor, session), [](std::exception_ptr error) {
    if (error) std::rethrow_exception(error);
  });
  announce_port(acceptor.local_endpoint().port());
  context.run();
  return 0;
}

}  // namespace weft::bench::net
