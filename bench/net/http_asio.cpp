// HTTP/1.1 "hello world" server on standalone Asio with C++20 coroutines: one io_context on one thread, a
// coroutine per connection (co_spawn), async_read_some / async_write with use_awaitable. Follows the server
// protocol in common.hpp.
#include <asio.hpp>

#include <array>
#include <cstring>
#include <string>

#include "asio_server.hpp"

namespace net = weft::bench::net;
using asio::ip::tcp;

namespace {

// Reads requests into a fixed buffer; every complete one gets a response, the responses to one read go out in
// one write, and an incomplete request's bytes move to the front of the buffer to wait for the rest.
asio::awaitable<void> serve(tcp::socket socket) {
  std::array<char, 4096> buffer;
  std::size_t held = 0;
  std::string replies;
  try {
    for (;;) {
      held += co_await socket.async_read_some(asio::buffer(buffer.data() + held, buffer.size() - held),
                                              asio::use_awaitable);
      net::RequestScan scan = net::scan_requests({buffer.data(), held});
      if (scan.count == 0) {
        if (held == buffer.size()) co_return;  // a request head larger than the buffer: not ours to serve
        continue;
      }
      replies.clear();
      for (std::size_t i = 0; i < scan.count; ++i) replies.append(net::kHttpResponse);
      held -= scan.consumed;
      std::memmove(buffer.data(), buffer.data() + scan.consumed, held);
      co_await asio::async_write(socket, asio::buffer(replies), asio::use_awaitable);
    }
  } catch (const std::exception&) {
    // EOF or a connection error: the socket closes as the coroutine ends.
  }
}

}  // namespace

int main(int argc, char** argv) { return net::run_asio_server(argc, argv, serve); }
