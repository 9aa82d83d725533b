// HTTP/1.1 "hello world" server on standalone Asio with C++20 coroutines: one io_context on one thread, a
// coroutine per connection (co_spawn), async_read_some / async_write with use_awaitable. Follows the server
// protocol in common.hpp.
#include <asio.hpp>

#include <array>
#include <cstring>
#include <string>

#include "common.hpp"

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

asio::awaitable<void> listen(tcp::acceptor& acceptor) {
  for (;;) {
    tcp::socket socket = co_await acceptor.async_accept(asio::use_awaitable);
    socket.set_option(tcp::no_delay(true));
    asio::co_spawn(acceptor.get_executor(), serve(std::move(socket)), asio::detached);
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
