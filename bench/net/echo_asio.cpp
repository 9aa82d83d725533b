// TCP echo server on standalone Asio with C++20 coroutines: one io_context on one thread, a coroutine per
// connection with its buffer in the coroutine frame, async_read_some / async_write with use_awaitable.
// Follows the server protocol in common.hpp.
#include <asio.hpp>

#include "asio_server.hpp"

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

}  // namespace

int main(int argc, char** argv) { return net::run_asio_server(argc, argv, echo); }
