// HTTP/1.1 "hello world" server on libuv: one uv_loop on one thread, uv_read_start with an alloc callback that
// lends every read the loop's one buffer (a read's bytes are consumed before the callback returns), and the
// responses written straight from a constant block: uv_try_write first, uv_write for whatever the socket did
// not take. Follows the server protocol in common.hpp.
#include <uv.h>

#include <algorithm>
#include <string>

#include "libuv_server.hpp"

namespace net = weft::bench::net;

namespace {

constexpr std::size_t kBlockResponses = 64;      // responses in the constant block
constexpr std::size_t kMaxBufs = 64;             // block slices per write: 4,096 responses
constexpr std::size_t kMaxPartialRequest = 8192;  // a longer unfinished request head closes the connection

struct Connection {
  uv_tcp_t tcp;
  std::string partial;  // the start of a request whose end has not arrived yet; usually empty
};

const std::string& response_block() {
  static const std::string block = [] {
    std::string text;
    for (std::size_t i = 0; i < kBlockResponses; ++i) text.append(net::kHttpResponse);
    return text;
  }();
  return block;
}

void close_connection(uv_stream_t* stream) {
  if (uv_is_closing(reinterpret_cast<uv_handle_t*>(stream))) return;
  uv_close(reinterpret_cast<uv_handle_t*>(stream),
           [](uv_handle_t* handle) { delete static_cast<Connection*>(handle->data); });
}

void lend_buffer(uv_handle_t*, std::size_t, uv_buf_t* buf) {
  static char buffer[64 * 1024];
  *buf = uv_buf_init(buffer, sizeof buffer);
}

// Drops the first `done` bytes of bufs[0, n), fewer than they hold; returns the first buffer with bytes left.
unsigned drop_written(uv_buf_t* bufs, unsigned n, std::size_t done) {
  unsigned first = 0;
  while (first < n && done >= bufs[first].len) done -= bufs[first++].len;
  bufs[first].base += done;
  bufs[first].len -= static_cast<unsigned>(done);
  return first;
}

// Writes `count` responses in one go; what uv_try_write leaves goes through uv_write, which needs no copy
// because the block is constant.
void respond(uv_stream_t* stream, std::size_t count) {
  const std::string& block = response_block();
  while (count > 0) {
    uv_buf_t bufs[kMaxBufs];
    unsigned n = 0;
    std::size_t total = 0;
    for (; n < kMaxBufs && count > 0; ++n) {
      std::size_t k = std::min(count, kBlockResponses);
      bufs[n] = uv_buf_init(const_cast<char*>(block.data()), static_cast<unsigned>(k * net::kHttpResponse.size()));
      total += bufs[n].len;
      count -= k;
    }
    int written = uv_try_write(stream, bufs, n);
    if (written == UV_EAGAIN) written = 0;
    if (written < 0) return close_connection(stream);
    if (static_cast<std::size_t>(written) == total) continue;
    unsigned first = drop_written(bufs, n, static_cast<std::size_t>(written));
    auto* request = new uv_write_t;
    if (uv_write(request, stream, bufs + first, n - first, [](uv_write_t* req, int) { delete req; }) != 0) {
      delete request;
      return close_connection(stream);
    }
  }
}

void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) {
  if (nread < 0) return close_connection(stream);
  if (nread == 0) return;
  auto* connection = static_cast<Connection*>(stream->data);
  std::string_view data(buf->base, static_cast<std::size_t>(nread));
  bool joined = !connection->partial.empty();
  if (joined) {
    connection->partial.append(data);
    data = connection->partial;
  }
  net::RequestScan scan = net::scan_requests(data);
  if (data.size() - scan.consumed > kMaxPartialRequest) return close_connection(stream);
  if (scan.count > 0) respond(stream, scan.count);
  if (joined) {
    connection->partial.erase(0, scan.consumed);
  } else {
    connection->partial.assign(data.substr(scan.consumed));
  }
}

void on_connection(uv_stream_t* server, int status) {
  if (status < 0) net::die("net_http_libuv", std::string("accept: ") + uv_strerror(status));
  auto* connection = new Connection;
  uv_tcp_init(server->loop, &connection->tcp);
  connection->tcp.data = connection;
  auto* stream = reinterpret_cast<uv_stream_t*>(&connection->tcp);
  if (uv_accept(server, stream) != 0) return close_connection(stream);
  uv_tcp_nodelay(&connection->tcp, 1);
  uv_read_start(stream, lend_buffer, on_read);
}

}  // namespace

int main(int argc, char** argv) { return net::run_libuv_server(argc, argv, on_connection); }
