// TCP echo server on libuv: one uv_loop on one thread, uv_read_start with an alloc callback that lends every
// read the loop's one buffer, and the bytes written back with uv_try_write; whatever the socket does not take
// at once is copied into a write request of its own and queued with uv_write (which keeps the order: a later
// uv_try_write fails while a write is queued). An idle connection costs its uv_tcp_t only. Follows the server
// protocol in common.hpp.
#include <uv.h>

#include <cstring>
#include <new>
#include <string>

#include "libuv_server.hpp"

namespace net = weft::bench::net;

namespace {

void close_connection(uv_stream_t* stream) {
  if (uv_is_closing(reinterpret_cast<uv_handle_t*>(stream))) return;
  uv_close(reinterpret_cast<uv_handle_t*>(stream), [](uv_handle_t* handle) {
    delete reinterpret_cast<uv_tcp_t*>(handle);
  });
}

void lend_buffer(uv_handle_t*, std::size_t, uv_buf_t* buf) {
  static char buffer[64 * 1024];
  *buf = uv_buf_init(buffer, sizeof buffer);
}

void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  if (nread < 0) return close_connection(stream);
  if (nread == 0) return;
  uv_buf_t out = uv_buf_init(buf->base, static_cast<unsigned>(nread));
  int written = uv_try_write(stream, &out, 1);
  if (written == UV_EAGAIN) written = 0;
  if (written < 0) return close_connection(stream);
  if (written == nread) return;
  std::size_t rest = static_cast<std::size_t>(nread - written);
  // The write request and the bytes it writes, in one allocation: the bytes follow the request.
  auto* request = static_cast<uv_write_t*>(::operator new(sizeof(uv_write_t) + rest));
  char* copy = reinterpret_cast<char*>(request + 1);
  std::memcpy(copy, buf->base + written, rest);
  uv_buf_t pending = uv_buf_init(copy, static_cast<unsigned>(rest));
  auto done = [](uv_write_t* finished, int) { ::operator delete(finished); };
  if (uv_write(request, stream, &pending, 1, done) != 0) {
    ::operator delete(request);
    close_connection(stream);
  }
}

void on_connection(uv_stream_t* server, int status) {
  if (status < 0) net::die("net_echo_libuv", std::string("accept: ") + uv_strerror(status));
  auto* tcp = new uv_tcp_t;
  uv_tcp_init(server->loop, tcp);
  auto* stream = reinterpret_cast<uv_stream_t*>(tcp);
  if (uv_accept(server, stream) != 0) return close_connection(stream);
  uv_tcp_nodelay(tcp, 1);
  uv_read_start(stream, lend_buffer, on_read);
}

}  // namespace

int main(int argc, char** argv) { return net::run_libuv_server(argc, argv, on_connection); }
