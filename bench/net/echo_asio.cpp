// TCP echo server on standalone Asio with C++20 coroutines: one io_context on one thread, a coroutine per
// connection with its buffer in the coroutine frame, async_read_some / async_write with use_awaitable.
// Follows the server protocol in common.hpp.
#include <asio.hpp>

#include "common.hpp"

namespace net = weft::bench::net;
using asio::ip::tcp;

namespace {

asio::awaitable<void> echo(tcp::socket socket) {
  char data[4096];
  try {
    for (;;) {
      std::size_t n = co_await socket.async_read_some(asio::buffer(data), asio::use_awaitable);
      co_await asio::async_write(socket, asio::buffer(data, n), asio::use_awaitable);
    }
  } catch (const std::exception&) {
    // EOF or a connection error: the socket closes as the coroutine ends.
  }
}

asio::awaitable<void> listen(tcp::acceptor& acceptor) {
  for (;;) {
    tcp::socket socket = co_await acceptor.async_accept(asio::use_awaitable);
    socket.set_option(tcp::no_delay(true));
    asio::co_spawn(acceptor.get_executor(), echo(std::move(socket)), asio::detached);
  }
}

}  // namespace

int main(int argc, char** argv) {
  net::Args args(argc, argv, {{"port", 0}});
  net::raise_open_file_limit();
  asio::io_context context(1);
  tcp::acceptor acceptor(context);
  tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(args["port"]));
  acceptor.open(endpoint.protocol());
  acceptor.set_option(asio::socket_base::reuse_address(true));
  acceptor.bind(endpoint);
  acceptor.listen(net::kBacklog);
  asio::signal_set signals(context, SIGINT, SIGTERM);
  signals.async_wait([&](const std::error_code&, int) { context.stop(); });
  // An accept error (such as running out of descriptors) ends the run with the exception, not silently.
  asio::co_spawn(context, listen(acceptor), [](std::exception_ptr error) {
    if (error) std::rethrow_exception(error);
  });
  net::announce_port(acceptor.local_endpoint().port());
  context.run();
  return 0;
}
